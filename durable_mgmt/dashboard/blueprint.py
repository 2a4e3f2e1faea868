"""The dashboard inside a deployed Function App, as a Blueprint registered in one line:

    from durable_mgmt.dashboard import dashboard_blueprint
    app.register_functions(dashboard_blueprint())

It serves ``/api/dashboard/`` (``route`` changes the segment). Protection:

* function keys by default (``auth_level``): open ``/api/dashboard/?code=<key>``; the key is carried on
  every link of the dashboard (pages send no Referer, so it does not leak to other sites);
* app setting ``DURABLE_DASHBOARD_ALLOWED_USERS`` (user names) and/or ``DURABLE_DASHBOARD_ALLOWED_ROLES``
  (role claims): when set, only those App Service authentication principals get in (turn App Service
  authentication on: only then are the ``X-MS-CLIENT-PRINCIPAL*`` headers set by the platform, not the caller);
* app setting ``DURABLE_DASHBOARD_READ_ONLY=true``: every action is refused.

The task hub is the app's own, resolved as the Functions host resolves it (the connection setting of
host.json's storage provider, else ``AzureWebJobsStorage``; host.json ``hubName``), and reached in
storage directly, where counts and the history with its parent and child links are cheap to read.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func

from ..errors import DurableError
from ..manager import InstanceManager
from ..settings import load_settings
from .config import DashboardConfig
from .core import Dashboard
from .web import Request, Response, text

SCRIPT_ROOT_SETTING = "AzureWebJobsScriptRoot"
HOSTNAME_SETTING = "WEBSITE_HOSTNAME"
FUNCTION_NAME = "durable_dashboard"


class _Managers:
    """One manager per task hub and event loop, opened on first use and kept for the worker's life.

    At most ``LIMIT`` are kept (the least recently used is closed): the key holds the management API's
    address, which comes from the request when ``WEBSITE_HOSTNAME`` is not set.
    """

    LIMIT = 8

    def __init__(self) -> None:
        self._open: OrderedDict[tuple[Any, ...], InstanceManager] = OrderedDict()
        self._lock = asyncio.Lock()

    async def get(self, connection_string: str, hub_name: str, webhook_base: str) -> InstanceManager:
        key = (connection_string, hub_name, webhook_base, id(asyncio.get_running_loop()))
        async with self._lock:  # two first requests at once must not open two managers
            manager = self._open.get(key)
            if manager is None:
                manager = await InstanceManager.connect(connection_string, hub_name, webhook_base=webhook_base)
                self._open[key] = manager
                while len(self._open) > self.LIMIT:
                    await self._open.popitem(last=False)[1].aclose()
            self._open.move_to_end(key)
            return manager

    async def aclose(self) -> None:
        """Close the managers opened on the running loop (a host that stops, a test session's end)."""
        loop = id(asyncio.get_running_loop())
        for key in [k for k in self._open if k[-1] == loop]:
            await self._open.pop(key).aclose()


_MANAGERS = _Managers()


async def close_managers() -> None:
    await _MANAGERS.aclose()


def dashboard_blueprint(*, route: str = "dashboard", auth_level: func.AuthLevel = func.AuthLevel.FUNCTION,
                        script_root: str | Path | None = None, connection_setting: str | None = None,
                        hub_name: str | None = None, title: str = "Durable Functions") -> func.Blueprint:
    """A Blueprint serving the dashboard at ``/<routePrefix>/<route>/``."""
    route = route.strip("/")
    bp = func.Blueprint()
    handler = blueprint_handler(route=route, script_root=script_root, connection_setting=connection_setting,
                                hub_name=hub_name, title=title)

    @bp.function_name(FUNCTION_NAME)
    @bp.route(route=route + "/{*path}", methods=["GET", "HEAD", "POST"], auth_level=auth_level)
    async def durable_dashboard(req: func.HttpRequest) -> func.HttpResponse:
        return await handler(req)

    return bp


def blueprint_handler(*, route: str = "dashboard", script_root: str | Path | None = None,
                      connection_setting: str | None = None, hub_name: str | None = None,
                      title: str = "Durable Functions", environ: dict[str, str] | None = None):
    """The function body, apart from the Blueprint (tests call it with a ``func.HttpRequest``)."""

    async def handle(req: func.HttpRequest) -> func.HttpResponse:
        env = os.environ if environ is None else environ
        root = script_root or env.get(SCRIPT_ROOT_SETTING) or "."
        try:
            config = DashboardConfig.from_settings(env, title=title)
        except DurableError as e:  # a mistyped setting must not open the dashboard: say which and why
            return to_http_response(text(500, f"The dashboard is misconfigured: {e}"))
        parts = urlsplit(req.url)
        # Azure names the app's own host; locally (funcpy start) the request's address is the host's.
        site = env.get(HOSTNAME_SETTING)
        origin = f"https://{site}" if site else f"{parts.scheme}://{parts.netloc}"
        webhook_base = f"{origin}/runtime/webhooks/durabletask"

        async def manager() -> InstanceManager:
            settings = load_settings(root, environ=env)
            setting = settings.durable_connection_setting(connection_setting)
            return await _MANAGERS.get(settings.connection_string(setting), settings.hub_name(hub_name),
                                       webhook_base)

        path = parts.path
        at = path.lower().find("/" + route.lower())
        mount = path[: at + len(route) + 1] if at >= 0 else "/" + route
        request = Request.build(req.method, req.route_params.get("path") or "", parts.query, dict(req.headers),
                                req.get_body() or b"", mount)
        return to_http_response(await Dashboard(manager, config).handle(request))

    return handle


def to_http_response(response: Response) -> func.HttpResponse:
    headers = dict(response.headers)
    if response.cookies:
        headers["Set-Cookie"] = response.cookies[0]  # the dashboard sets at most one cookie
    kind, _, charset = response.content_type.partition("; charset=")
    return func.HttpResponse(response.body_bytes, status_code=response.status, headers=headers, mimetype=kind,
                             charset=charset or "utf-8")
