"""HTTP triggers: ``/{routePrefix}/{route}`` mapped to functions, and back.

Requests become ``func.HttpRequest`` (method, full URL, headers, query,
route values, body); the function's result (``$return`` or an ``http``
output) becomes the response: a ``func.HttpResponse`` as given, ``str`` or
``bytes`` as a 200, ``None`` as 204. An exception is logged with its
traceback and answered 500 with no body, as the Functions host does.

Auth levels apply only with ``--enable-auth``; like ``func start``, the host
is anonymous otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Awaitable
from urllib.parse import unquote

import azure.functions as func
from aiohttp import web

from ..bindings import BindingInputError
from ..invoker import Invoker
from ..keys import HostKeys
from ..loader import FunctionIndex, FunctionInfo
from ..routing import RouteError, RouteTemplate

log = logging.getLogger("funchost")

HTTP_REASON = "This function was programmatically called via the host APIs."
ALL_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE")


@dataclass(frozen=True)
class HttpRoute:
    function: FunctionInfo
    template: RouteTemplate
    methods: frozenset[str]
    auth_level: str

    def url(self, origin: str, prefix: str) -> str:
        path = "/".join(p for p in (prefix, self.template.text) if p)
        return f"{origin}/{path}"


def build_routes(index: FunctionIndex, problems: list[str]) -> list[HttpRoute]:
    """Every HTTP function's route, most specific first; malformed ones go to ``problems``."""
    routes = []
    for info in index.http.values():
        trigger = info.trigger
        try:
            template = RouteTemplate.parse(str(trigger.get("route") or info.name))
        except RouteError as e:
            problems.append(f"{info.describe()}: {e}")
            continue
        methods = [str(m).upper() for m in (trigger.get("methods") or ALL_METHODS)]
        unknown = [m for m in methods if m not in ALL_METHODS]
        if unknown:
            problems.append(f"{info.describe()}: unknown HTTP method(s) {', '.join(unknown)}; "
                            f"allowed: {', '.join(ALL_METHODS)}.")
            continue
        level = str(trigger.get("authLevel") or "function").lower()
        if level not in ("anonymous", "function", "admin"):
            problems.append(f"{info.describe()}: authLevel {level!r} is not one of anonymous, function, admin.")
            continue
        routes.append(HttpRoute(info, template, frozenset(methods), level))
    routes.sort(key=lambda r: (r.template.precedence, r.template.text.lower()))
    return routes


class HttpTriggers:
    """The aiohttp handler behind ``/{prefix}/...``."""

    def __init__(self, routes: list[HttpRoute], invoker: Invoker, *, prefix: str, keys: HostKeys | None = None,
                 origin: str | None = None):
        self._routes = routes
        self._invoker = invoker
        self._prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self._keys = keys
        self._origin = origin

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = request.rel_url.raw_path
        path = "/".join(unquote(p) for p in raw[len(self._prefix):].strip("/").split("/"))
        allowed: set[str] = set()
        for route in self._routes:
            values = route.template.match(path)
            if values is None:
                continue
            if request.method not in route.methods:
                allowed |= route.methods
                continue
            return await self._call(request, route, values)
        if allowed:
            return web.Response(status=405, headers={"Allow": ", ".join(sorted(allowed))})
        return web.Response(status=404)

    async def _call(self, request: web.Request, route: HttpRoute, values: dict[str, str]) -> web.StreamResponse:
        info = route.function
        if self._keys is not None:
            key = request.query.get("code") or request.headers.get("x-functions-key")
            if not self._keys.authorizes(route.auth_level, key, function=info.name):
                return web.Response(status=401)
        try:
            req = await to_func_request(request, values, origin=self._origin)
        except BodyTimeout as e:
            return web.json_response({"error": str(e)}, status=408)
        data: dict[str, Any] = {**dict(request.query), **values}
        try:
            call = self._invoker.invoke(info, req, reason=HTTP_REASON, trigger_data=data)
            # Async functions can be stopped when the caller leaves; a sync one runs on in its thread anyway.
            result = await (run_while_connected(request, call) if info.is_async else call)
        except ClientGone:
            log.warning("%s: the caller disconnected; the invocation was cancelled.", info.describe())
            return web.Response(status=499)
        except BindingInputError as e:  # found before the function ran: the request's fault, nothing was done
            return web.json_response({"error": str(e)}, status=400)
        except Exception:
            return web.Response(status=500)  # the invoker logged it with its traceback
        try:
            return to_web_response(result)
        except TypeError as e:
            log.error("%s returned a value that cannot be an HTTP response: %s", info.describe(), e)
            return web.Response(status=500)


BODY_TIMEOUT_SECONDS = 60.0  # a body that trickles in slower than this holds a connection for nothing
DISCONNECT_POLL_SECONDS = 0.5


class BodyTimeout(Exception):
    pass


class ClientGone(Exception):
    pass


async def to_func_request(request: web.Request, route_values: dict[str, str], *,
                          origin: str | None = None) -> func.HttpRequest:
    """The function's view of ``request``. Its URL starts with ``origin`` (the host's configured address)
    when given, not with the caller's Host header: the SDK builds management links from it, and those
    links may carry the system key."""
    headers: dict[str, str] = {}
    for k, v in request.headers.items():
        headers[k] = f"{headers[k]}, {v}" if k in headers else v
    params: dict[str, str] = {}
    for k, v in request.query.items():
        params.setdefault(k, v)
    url = origin.rstrip("/") + str(request.rel_url) if origin else str(request.url)
    try:
        async with asyncio.timeout(BODY_TIMEOUT_SECONDS):  # not wait_for: on 3.11 it can swallow a cancel
            body = await request.read()
    except asyncio.TimeoutError:
        raise BodyTimeout(f"The request body did not arrive within {BODY_TIMEOUT_SECONDS:g} s.") from None
    return func.HttpRequest(method=request.method, url=url, headers=headers, params=params,
                            route_params=route_values, body=body)


async def run_while_connected(request: web.Request, work: Awaitable[Any]) -> Any:
    """Await ``work``; if the caller disconnects first, cancel it and raise ClientGone.

    An abandoned request must not keep working (a wait polling storage for a client that left). Only
    the function itself is cancelled: the writes that must stay whole (a start's message and row, the
    output bindings) are shielded where they happen.
    """
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_SECONDS)
            if done:
                return task.result()
            transport = request.transport
            if transport is None or transport.is_closing():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                raise ClientGone()
    finally:
        if not task.done():
            task.cancel()


def to_web_response(value: Any) -> web.Response:
    """A web response for a function's HTTP result; TypeError for a value that cannot be one."""
    if value is None:
        return web.Response(status=204)
    if isinstance(value, func.HttpResponse):
        response = web.Response(status=value.status_code, body=value.get_body())
        for k, v in value.headers.items():
            response.headers.add(k, v)
        if "Content-Type" not in response.headers:
            response.headers["Content-Type"] = f"{value.mimetype}; charset={value.charset}"
        return response
    if isinstance(value, str):
        return web.Response(text=value, content_type="text/plain")
    if isinstance(value, (bytes, bytearray)):
        return web.Response(body=bytes(value), content_type="application/octet-stream")
    if isinstance(value, (dict, list)):
        return web.Response(text=json.dumps(value), content_type="application/json")
    raise TypeError(f"expected func.HttpResponse, str, bytes or None, got {type(value).__name__}")
