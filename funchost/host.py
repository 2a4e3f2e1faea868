"""The local Functions host: one object that starts every part in order and stops them in reverse.

    async with LocalHost("tests/apps/http_app", port=0, connection_string=cs, hub_name="T1") as host:
        ...  # host.base_url, host.rpc_base_url, host.manager (InstanceManager), host.index

Start: settings -> app index and every binding checked (AppLoadError lists all
problems) -> task hub opened and created if missing -> keys -> sockets bound
(port 0 reads the real port back) -> HTTP servers -> queue and timer
triggers -> the durable engine. Stop: triggers stop polling and drain, the
public server drains its requests, the engine stops, then the internal RPC
endpoint (client functions may call it until the end) and storage clients.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import secrets
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

from aiohttp import web

from durable_mgmt.http_guard import HttpGuard
from durable_mgmt.settings import AppSettings, load_settings
from durable_mgmt import InstanceManager
from durable_mgmt.taskhub import TaskHub
from durable_mgmt.transports import StorageTransport

from .bindings import OutputWriter, check_outputs
from .config import HostConfig
from .connections import Connections
from .admin import AdminFunctions
from .dashboard import DASHBOARD_PATH, mount_dashboard
from .durable_links import RPC_PATH, WEBHOOK_PATH, DurableLinks
from .errors import AppLoadError, HostStartError
from .hubs import HubDirectory
from .invoker import Invoker
from .keys import HostKeys, load_or_create_keys
from .loader import FunctionIndex, load_app
from .triggers.http import HttpRoute, HttpTriggers, build_routes
from .triggers.queue import QueueBinding, QueueListener, build_queue_bindings
from .triggers.timer import TimerBinding, TimerRunner, TimerStatusStore, build_timers
from .webhooks import ManagementApi

log = logging.getLogger("funchost")

MAX_REQUEST_BYTES = 100 * 1024 * 1024  # the Functions host's request size limit
BODY_LIMIT_SETTING = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"  # the Functions host's setting that overrides it
SCRIPT_FILE_SETTING = "PYTHON_SCRIPT_FILE_NAME"
THREADS_SETTING = "PYTHON_THREADPOOL_THREAD_COUNT"


class LocalHost:
    """Serves one Python v2 app. Use ``async with``, or ``start()`` / ``stop()``."""

    def __init__(self, script_root: str | Path = ".", *, port: int = 7071, host: str = "127.0.0.1",
                 enable_auth: bool = False, connection_string: str | None = None, hub_name: str | None = None,
                 environ: Mapping[str, str] | None = None, run_orchestrations: bool = True,
                 drain_timeout: float = 10.0, index: FunctionIndex | None = None, plan: TriggerPlan | None = None,
                 allowed_hosts: Iterable[str] = (), cors: Iterable[str] = (), public_url: str | None = None):
        self.script_root = Path(script_root).resolve()
        self.enable_auth = enable_auth
        self.run_orchestrations = run_orchestrations
        self.drain_timeout = drain_timeout
        self._bind = (host, port)
        # Who may call the public server besides localhost/IP addresses and its own origin (http_guard).
        self._allowed_hosts = list(allowed_hosts)
        self._cors = list(cors)
        self._public_url = public_url.rstrip("/") if public_url else None
        self._rpc_secret = secrets.token_urlsafe(32)
        self._hub_name = hub_name
        # Like func start, a host using the process environment hands the app its local.settings.json
        # Values as environment variables (existing variables win). Hosts given their own settings
        # (tests) leave the process environment alone.
        self._export_settings = environ is None
        env = dict(os.environ if environ is None else environ)
        if connection_string:
            env["AzureWebJobsStorage"] = connection_string
        self._environ = env
        self.settings: AppSettings | None = None
        self.config: HostConfig | None = None
        self.index: FunctionIndex | None = index
        self._plan = plan
        self.hub: TaskHub | None = None
        self.keys: HostKeys | None = None
        self.links: DurableLinks | None = None
        self.routes: list[HttpRoute] = []
        self.queue_bindings: list[QueueBinding] = []
        self.timer_bindings: list[TimerBinding] = []
        self.engine: Any = None
        self.port = 0
        self.rpc_port = 0
        self._connections: Connections | None = None
        self._hubs: HubDirectory | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._runners: dict[str, web.AppRunner] = {}
        self._listeners: list[Any] = []
        self._admin: AdminFunctions | None = None
        self._sockets: list[socket.socket] = []
        self.management_api: ManagementApi | None = None
        self._start_settled: asyncio.Event | None = None  # set once the latest start() has ended, either way

    # --- public surface ---------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{_display_host(self._bind[0])}:{self.port}"

    @property
    def public_origin(self) -> str:
        """The origin every link this host hands out starts with: --public-url, else the bound address.
        Never the caller's Host header, which a caller chooses (links may carry the system key)."""
        return self._public_url or self.base_url

    @property
    def rpc_base_url(self) -> str:
        return self.links.rpc_base_url if self.links else ""

    @property
    def webhook_base_url(self) -> str:
        return self.base_url + WEBHOOK_PATH

    @property
    def manager(self) -> InstanceManager:
        """Instance management of this host's task hub, over storage (no HTTP involved)."""
        return self._hubs.default

    @property
    def hub_name(self) -> str:
        return self.hub.name

    def function_url(self, name: str) -> str:
        route = next(r for r in self.routes if r.function.name == name)
        return route.url(self.base_url, self.config.route_prefix)

    def admits_admin(self, request: web.Request) -> bool:
        """May ``request`` call an admin endpoint? Without --enable-auth anyone may; else the master key only."""
        return not self.enable_auth or self.keys.authorizes(
            "admin", request.query.get("code") or request.headers.get("x-functions-key"))

    async def __aenter__(self) -> "LocalHost":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # --- start --------------------------------------------------------------------

    async def start(self) -> None:
        """Start everything; on any failure, whatever was started is stopped again."""
        settled = self._start_settled = asyncio.Event()
        try:
            await self._start()
        except BaseException:
            await self._stop()
            raise
        finally:
            settled.set()

    async def _start(self) -> None:
        self.settings = load_settings(self.script_root, environ=self._environ)
        if self._export_settings:
            for name, value in self.settings.local_values.items():
                os.environ.setdefault(name, value)
        self.config = HostConfig.from_settings(self.settings)
        if self.index is None:
            self.index = load_app(self.script_root, self.settings.get(SCRIPT_FILE_SETTING), strict=False)
        self._configure_triggers()
        threads = self._threads()

        account = self.settings.storage_account(self.settings.durable_connection_setting())
        self.hub_choice = self.settings.hub_choice(self._hub_name)  # the name, and where it came from (banner)
        self.hub = TaskHub(account, self.hub_choice.name, self.settings.partition_count(),
                           partition_count_configured=self.settings.partition_count_configured)
        await self.hub.open()
        await self.hub.create_if_not_exists()
        bound = [b.get("connectionName") for f in self.index for b in f.bindings
                 if b.get("type") == "durableClient" and b.get("connectionName")]
        self._hubs = HubDirectory(InstanceManager(StorageTransport(self.hub)), self.settings,
                                  default_setting=self.settings.durable_connection_setting(), allowed_connections=bound)
        self._connections = Connections(self.settings)
        with_keys = [r.function.name for r in self.routes if r.auth_level == "function"]
        self.keys = await load_or_create_keys(self._connections.blob_service(), self.config.host_id, with_keys)

        public_sock = _bind(*self._bind)
        self._sockets.append(public_sock)
        rpc_sock = _bind("127.0.0.1", 0)
        self._sockets.append(rpc_sock)
        self.port, self.rpc_port = public_sock.getsockname()[1], rpc_sock.getsockname()[1]
        # The system key goes into management URLs only when keys are required: without --enable-auth
        # it would hand out, to anyone, a key that a later --enable-auth run still honours.
        self.links = DurableLinks(self.public_origin, f"http://127.0.0.1:{self.rpc_port}", self.hub.name,
                                  self.keys.durable_system_key if self.enable_auth else None,
                                  rpc_secret=self._rpc_secret)

        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="funcpy-worker")
        writer = OutputWriter(self._connections, self.settings, message_encoding=self.config.queues.message_encoding)
        invoker = Invoker(writer, self._executor, self.links.client_json, str(self.script_root))

        await self._serve("rpc", self._rpc_app(), rpc_sock)
        await self._serve("public", self._public_app(invoker), public_sock)
        await self._start_triggers(invoker)
        await self._start_engine(invoker)

    def _configure_triggers(self) -> None:
        # funcpy start plans before starting Azurite (to fail fast) and hands its plan over: no second check.
        plan = self._plan if self._plan is not None else plan_triggers(self.index, self.settings)
        self.routes, self.queue_bindings, self.timer_bindings = plan.routes, plan.queues, plan.timers

    def _body_limit(self) -> int:
        """The most bytes one request body to the public server may have (413 beyond): 100 MiB, or the
        app setting FUNCTIONS_REQUEST_BODY_SIZE_LIMIT, as the Functions host reads it."""
        configured = self.settings.get(BODY_LIMIT_SETTING)
        if not configured:
            return MAX_REQUEST_BYTES
        if not configured.strip().isdigit() or int(configured) < 1:
            from durable_mgmt.errors import InvalidSetting

            raise InvalidSetting(f"App setting {BODY_LIMIT_SETTING} must be a whole number of bytes (1 or more).")
        return int(configured)

    def _threads(self) -> int:
        configured = self.settings.get(THREADS_SETTING)
        if configured:
            if not configured.isdigit() or not 1 <= int(configured) <= 32:
                from durable_mgmt.errors import InvalidSetting

                raise InvalidSetting(f"App setting {THREADS_SETTING} must be an integer from 1 to 32.")
            return int(configured)
        return min(32, (os.cpu_count() or 1) + 4)

    def guard(self) -> HttpGuard:
        """The Host/Origin rules of the public server (see durable_mgmt.http_guard)."""
        hosts = list(self._allowed_hosts)
        if self._bind[0] not in ("0.0.0.0", "::", ""):
            hosts.append(self._bind[0])
        if self._public_url:
            hosts.append(urlsplit(self._public_url).hostname or "")
        return HttpGuard.of(hosts, [*self._cors, *_local_cors(self.script_root)], no_cors_paths=[DASHBOARD_PATH])

    def _public_app(self, invoker: Invoker) -> web.Application:
        app = web.Application(client_max_size=self._body_limit(),
                              middlewares=[_access_log, self.guard().middleware()])
        app[HOST_KEY] = self
        api = ManagementApi(self._hubs, self.links, index=self.index, keys=self.keys if self.enable_auth else None,
                            base_path=WEBHOOK_PATH)
        self.management_api = api
        # (?s): a path may hold CR/LF (decoded %0D%0A); the API refuses such ids by name, not with a bare 404.
        app.router.add_route("*", WEBHOOK_PATH + "{tail:(?s:/.*)?}", api.handle)
        app.router.add_get("/admin/host/ping", _ping)
        app.router.add_get("/admin/host/status", _host_status)
        self._admin = AdminFunctions(self, invoker)
        app.router.add_post("/admin/functions/{name}", self._admin.run)
        mount_dashboard(app, self)  # before the HTTP triggers' catch-all route
        http = HttpTriggers(self.routes, invoker, prefix=self.config.route_prefix,
                            keys=self.keys if self.enable_auth else None, origin=self.public_origin)
        prefix = "/" + self.config.route_prefix if self.config.route_prefix else ""
        app.router.add_route("*", prefix + "{tail:(/.*)?}" if prefix else "/{tail:.*}", http.handle)
        return app

    def _rpc_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[_access_log, HttpGuard().middleware()])
        app[HOST_KEY] = self
        app[SECRET_KEY] = self._rpc_secret
        api = ManagementApi(self._hubs, self.links, index=self.index, rpc=True,
                            base_path=f"{RPC_PATH}/{self._rpc_secret}")

        async def handle(request: web.Request) -> web.StreamResponse:
            # The secret is compared in constant time; a wrong one learns nothing, not even the routes.
            if not hmac.compare_digest(request.match_info["secret"].encode("utf-8", "surrogateescape"),
                                       self._rpc_secret.encode()):
                return web.json_response({"error": "Unauthorized: the internal endpoint is only for this host's "
                                                   "client functions (use the rpcBaseUrl they are given)."},
                                         status=401)
            return await api.handle(request)

        app.router.add_route("*", RPC_PATH + "/{secret}{tail:(?s:/.*)?}", handle)
        return app

    async def _serve(self, name: str, app: web.Application, sock: socket.socket) -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               shutdown_timeout=self.drain_timeout)
        await runner.setup()
        self._runners[name] = runner
        await web.SockSite(runner, sock).start()

    async def _start_triggers(self, invoker: Invoker) -> None:
        store = TimerStatusStore(self._connections.blob_service(), self.config.host_id)
        for binding in self.queue_bindings:
            self._listeners.append(QueueListener(binding, invoker, self._connections, self.config.queues))
        for binding in self.timer_bindings:
            self._listeners.append(TimerRunner(binding, invoker, store))
        for listener in self._listeners:
            await listener.start()

    async def _start_engine(self, invoker: Invoker) -> None:
        if not self.run_orchestrations or not self.index.has_durable_functions:
            return
        from funchost.engine import Engine

        async def run_activity(info, value):  # activities get output bindings and logs like any function
            return await invoker.invoke(info, value, reason="Activity scheduled by an orchestration.")

        # Known before it starts, so that a stop (this host's, when the start fails half-way) stops it too.
        self.engine = Engine(self.hub, self.index, activity_runner=run_activity, executor=self._executor)
        await self.engine.start()

    # --- stop ---------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop in order: triggers and public HTTP drain, engine, internal endpoint, storage. Idempotent.

        A stop that arrives while ``start`` runs waits for it, then stops all it started: stopping parts
        under a start still creating them would leave the ones it creates next (the engine) running.
        """
        if self._start_settled is not None:
            await self._start_settled.wait()
        await self._stop()

    async def _stop(self) -> None:
        listeners, self._listeners = self._listeners, []
        public = self._runners.pop("public", None)
        admin_runs = self._admin.drain(self.drain_timeout) if self._admin else _nothing()
        results = await asyncio.gather(*(l.stop(self.drain_timeout) for l in listeners), admin_runs,
                                       public.cleanup() if public else _nothing(), return_exceptions=True)
        for error in (r for r in results if isinstance(r, BaseException)):
            log.error("A trigger did not stop cleanly: %s", error, exc_info=error)
        engine, self.engine = self.engine, None
        if engine is not None:
            try:
                await engine.stop()
            except Exception:
                log.exception("The durable engine did not stop cleanly.")
        rpc = self._runners.pop("rpc", None)
        if rpc is not None:
            await rpc.cleanup()
        if self._hubs is not None:  # after the RPC endpoint, whose calls may have opened other hubs
            await self._hubs.close()
        for sock in self._sockets:  # bound but never served when start failed half-way
            sock.close()
        self._sockets = []
        await _close_sdk_session()
        if self._connections is not None:
            await self._connections.close()
            self._connections = None
        if self.hub is not None:
            await self.hub.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


HOST_KEY = web.AppKey("host", LocalHost)
SECRET_KEY = web.AppKey("secret", str)


def _local_cors(script_root: Path) -> list[str]:
    """Origins from local.settings.json ``Host.CORS`` (comma-separated), as func start reads them."""
    try:
        data = json.loads((script_root / "local.settings.json").read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return []
    host = data.get("Host") if isinstance(data, dict) else None
    cors = host.get("CORS") if isinstance(host, dict) else None
    return [o for o in str(cors).split(",") if o.strip()] if cors else []


@dataclass(frozen=True)
class TriggerPlan:
    routes: list[HttpRoute]
    queues: list[QueueBinding]
    timers: list[TimerBinding]


def plan_triggers(index: FunctionIndex, settings: AppSettings) -> TriggerPlan:
    """Every trigger's configuration checked against the settings: AppLoadError listing all problems.

    Needs no storage, so ``funcpy start`` runs it before starting Azurite.
    """
    problems: list[str] = list(index.problems)
    plan = TriggerPlan(build_routes(index, problems), build_queue_bindings(index, settings, problems),
                       build_timers(index, settings, problems))
    for info in index:
        problems += check_outputs(info, settings)
    if problems:
        raise AppLoadError(problems, app_file=index.app_file)
    return plan


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise HostStartError(f"Cannot listen on {host}:{port}: {e.strerror or e}. Another process may be using "
                             "the port: stop it, or choose another with --port.") from None
    return sock


def _display_host(host: str) -> str:
    return "localhost" if host in ("127.0.0.1", "0.0.0.0", "::", "::1", "localhost") else host


async def _nothing() -> None:
    return None


async def _close_sdk_session() -> None:
    # The SDK keeps one module-level aiohttp session for its client; close it with the loop that made it.
    try:
        from azure.durable_functions.models.utils import http_utils
        await http_utils._close_session()
    except Exception:  # an SDK without it, or a session of another loop: nothing to do
        pass


@web.middleware
async def _access_log(request: web.Request, handler):
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        # The path only: query strings may carry keys (?code=...), which never go to the log; nor does
        # the internal endpoint's secret path segment.
        path = request.path
        secret = request.app.get(SECRET_KEY)
        if secret:
            path = path.replace(secret, "<secret>")
        log.debug("%s %s -> %d (%.0f ms)", request.method, path, status, (time.perf_counter() - started) * 1000)


async def _ping(request: web.Request) -> web.Response:
    return web.Response(status=200)  # anonymous, as in the Functions host: "is it up?"


async def _host_status(request: web.Request) -> web.Response:
    host = request.app[HOST_KEY]
    if not host.admits_admin(request):
        return web.Response(status=401)
    return web.json_response({"id": host.config.host_id, "state": "Running", "processId": os.getpid(),
                              "taskHub": host.hub.name, "functions": len(host.index)})
