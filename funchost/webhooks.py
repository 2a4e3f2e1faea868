"""The durable HTTP management API, ``/runtime/webhooks/durabletask/...``.

Routes, statuses and headers follow the extension's ``HttpApiHandler`` (see
``shared/reference/http-api.md``); the work is done by
``durable_mgmt.InstanceManager`` over the task hub in storage (one per hub,
``hubs.HubDirectory``), the same API the CLI and the app use. The same handlers serve two doors:

* public (``rpc=False``): under the app's origin, guarded by the
  ``durabletask_extension`` system key when auth is on;
* internal (``rpc=True``): the loopback endpoint given to the SDK's client as
  ``rpcBaseUrl``. Its only caller is the SDK, which double-encodes bodies,
  so there bodies are unwrapped once.

Both answer a list as the extension does (``HandleGetStatusRequestAsync``):
one page, of ``top`` or 100 (``OrchestrationStatusQueryCondition.PageSize``)
instances, and ``x-ms-continuation-token`` when more exist. The SDK's
``get_status_all``/``get_status_by`` send no ``top`` and never follow the
token (azure-functions-durable-python #580): deployed, they see at most 100
instances, so they do here too, with a warning naming the way to page.
Remaining differences from the extension: docs/compatibility-host.md.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Awaitable, Callable
from urllib.parse import unquote, unquote_plus

from aiohttp import web

from durable_mgmt import InstanceManager
from durable_mgmt.errors import DurableError, InvalidFilter, NotFound, WaitTimeout
from durable_mgmt.models import InstanceQuery, InstanceStatus, RuntimeStatus

from .durable_links import DurableLinks
from .hubs import HubDirectory
from .keys import HostKeys
from .loader import FunctionIndex
from durable_mgmt.query_params import (CONTINUATION_HEADER, EMPTY_ENTITY_KEY, get_bool, get_int, get_seconds,
                                       get_statuses, get_time)

from durable_mgmt.limits import MAX_WAIT_SECONDS, check_wait

from .webhook_io import (BadRequest, accepted, error_body, error_response, json_response, read_body,
                         read_json_body)

log = logging.getLogger("funchost.webhooks")

MAX_CONCURRENT_WAITS = 64     # requests polling for completion at once, per door
STATUS_RETRY_AFTER = "5"      # GET status of a running instance (HttpApiHandler)
CHECK_STATUS_RETRY_AFTER = "10"  # the 202 check-status response
DEFAULT_PAGE_SIZE = 100  # a list without top: OrchestrationStatusQueryCondition.PageSize
STEER_OPERATIONS = ("terminate", "suspend", "resume", "rewind")  # POST instances/{id}/{op}?reason=..
Handler = Callable[..., Awaitable[web.StreamResponse]]


class ManagementApi:
    """Dispatches ``{base}/...`` requests to the operation handlers."""

    def __init__(self, hubs: HubDirectory, links: DurableLinks, *, index: FunctionIndex | None = None,
                 keys: HostKeys | None = None, rpc: bool = False, base_path: str):
        self._hubs = hubs
        self._links = links
        self._index = index
        self._keys = keys        # None: anonymous (no --enable-auth), or the internal endpoint
        self._rpc = rpc
        self._base = base_path.rstrip("/")
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """How many requests are polling for an instance to finish right now."""
        return self._waiting

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self._keys is not None and not self._keys.authorizes("system", _code(request)):
            return web.json_response(error_body(
                "Unauthorized: this host runs with --enable-auth, so management calls need the "
                "durabletask_extension system key (or the master key) as ?code=... or in the x-functions-key "
                "header. The management URLs handed to client functions carry it.", "Unauthorized"), status=401)
        raw = request.rel_url.raw_path[len(self._base):]
        parts = [unquote(p) for p in raw.strip("/").split("/")] if raw.strip("/") else []
        try:
            handler, args = self._route(request.method, parts)
            return await handler(request, *args)
        except DurableError as e:
            if self._rpc and isinstance(e, NotFound):
                # The extension's 404s have no body, and the SDK builds get_status()'s result from the body.
                return web.Response(status=404)
            return error_response(e)
        except Exception:
            # The path only: the query may hold the key.
            log.exception("Management API: %s %s failed.", request.method, request.path)
            # Details go to the host's log only: an exception's text may hold anything.
            return web.json_response(error_body("Something went wrong while processing your request; the "
                                                "host's log has the details.", "InternalServerError"), status=500)

    def _route(self, method: str, parts: list[str]) -> tuple[Handler, tuple]:
        n = len(parts)
        head = parts[0].lower() if parts else ""
        if head == "orchestrators" and n in (2, 3):
            return self._only(method, "POST", self.start), (parts[1], parts[2] if n == 3 else None)
        if head == "entities" and n in (2, 3):
            if method == "GET" and n == 3:
                return self.get_entity, (parts[1], parts[2])
            return self.entity_not_supported, ()
        if head == "instances":
            if n == 1:
                return self._by_method(method, GET=self.list_instances, DELETE=self.purge_by_filter), ()
            if n == 2:
                return self._by_method(method, GET=self.get_status, DELETE=self.purge_instance), (parts[1],)
            if n == 3:
                op = parts[2].lower()
                if op == "restart":
                    return self._only(method, "POST", self.restart), (parts[1],)
                if op in STEER_OPERATIONS:
                    return self._only(method, "POST", self.steer), (parts[1], op)
            if n == 4 and parts[2].lower() == "raiseevent":
                return self._only(method, "POST", self.raise_event), (parts[1], parts[3])
        return self.not_found, ("/" + "/".join(parts),)

    def _only(self, method: str, allowed: str, handler: Handler) -> Handler:
        return handler if method == allowed else self._not_allowed(allowed)

    def _by_method(self, method: str, **handlers: Handler) -> Handler:
        return handlers.get(method) or self._not_allowed(", ".join(handlers))

    @staticmethod
    def _not_allowed(allowed: str) -> Handler:
        async def handler(request: web.Request, *args) -> web.Response:
            return web.json_response(error_body(f"{request.method} is not allowed here; use {allowed}.",
                                                "MethodNotAllowed"), status=405, headers={"Allow": allowed})
        return handler

    async def not_found(self, request: web.Request, path: str) -> web.Response:
        return web.json_response(error_body(
            f"No management operation at {path!r}. Routes: POST orchestrators/{{name}}[/{{id}}]; GET/DELETE "
            "instances[/{id}]; POST instances/{id}/(terminate|suspend|resume|rewind|restart); POST "
            "instances/{id}/raiseEvent/{name}; GET entities/{name}/{key}.", "NotFound"), status=404)

    # --- start ----------------------------------------------------------------

    async def start(self, request: web.Request, name: str, instance_id: str | None) -> web.StreamResponse:
        manager = await self._manager(request)
        name = self._orchestrator_name(name)
        input_json = read_json_body(await read_body(request), unwrap_string=self._rpc)
        timeout, interval = self._wait_params(request)
        new_id = await manager.start_json(name, input_json, instance_id=instance_id or None)
        log.info("Started orchestration '%s' (instance %s).", name, new_id)
        return await self._created(request, manager, new_id, timeout, interval)

    def _orchestrator_name(self, name: str) -> str:
        if self._index is None:
            return name
        found = self._index.find(name, "orchestrationTrigger")
        if found is None:
            known = ", ".join(self._index.orchestrators) or "none"
            raise BadRequest(f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator "
                             f"function. Orchestrator functions of this app: {known}.")
        return found.name

    def _wait_params(self, request: web.Request) -> tuple[float | None, float]:
        timeout = get_seconds(request.query, "timeout", maximum=MAX_WAIT_SECONDS)
        interval = get_seconds(request.query, "pollingInterval", maximum=MAX_WAIT_SECONDS)
        if timeout is None or interval is None:
            # The extension waits only when both are given (HandleStartOrchestratorRequestAsync; the Azure
            # Storage provider has no poll-free wait), else it answers 202 at once.
            return None, 0.0
        check_wait(timeout, interval)
        if interval > timeout:
            raise BadRequest(f"Total timeout {timeout:g} should be bigger than retry timeout {interval:g} "
                             "(pollingInterval must not exceed timeout).")
        return timeout, interval

    async def _created(self, request: web.Request, manager: InstanceManager, instance_id: str,
                       timeout: float | None, interval: float) -> web.StreamResponse:
        # At most MAX_CONCURRENT_WAITS requests poll at once; beyond that a start answers at once with the
        # check-status links, as a wait that timed out does.
        if timeout is not None and self._waiting < MAX_CONCURRENT_WAITS:
            self._waiting += 1
            try:
                # Ends early when the caller disconnects: nobody is left to answer, polling on would only load
                # storage.
                status = await manager.wait_for_completion(instance_id, timeout=timeout, retry_interval=interval,
                                                           show_input=True, stop=lambda: _gone(request))
            except WaitTimeout:
                status = None
            finally:
                self._waiting -= 1
            if status is not None and status.runtime_status == RuntimeStatus.COMPLETED:
                return json_response(status.output)
            if status is not None:
                return self._status_response(request, status)
        return self._check_status(request, manager, instance_id)

    def _check_status(self, request: web.Request, manager: InstanceManager, instance_id: str) -> web.Response:
        payload = self._payload(request, manager, instance_id)
        return json_response(payload, 202, {"Location": payload["statusQueryGetUri"],
                                            "Retry-After": CHECK_STATUS_RETRY_AFTER})

    def _payload(self, request: web.Request, manager: InstanceManager, instance_id: str) -> dict[str, str]:
        # Links always start with the host's own public address (DurableLinks.public_origin), never the
        # caller's Host header: they may carry the system key, and a caller must not choose where it goes.
        return self._links.management_payload(instance_id, hub=str(manager.hub_name),
                                              connection=_query(request, "connection"))

    def _public_url_of(self, request: web.Request) -> str:
        """The public URL of the resource ``request`` asked for (its Location), on the host's own address."""
        tail = request.rel_url.raw_path[len(self._base):]
        query = request.rel_url.raw_query_string
        return f"{self._links.webhook_base}{tail}" + (f"?{query}" if query else "")

    # --- read -----------------------------------------------------------------

    async def get_status(self, request: web.Request, instance_id: str) -> web.StreamResponse:
        q = request.query
        show_history = get_bool(q, "showHistory", False)
        show_history_output = get_bool(q, "showHistoryOutput", False)
        show_input = get_bool(q, "showInput", True)
        get_bool(q, "returnInternalServerErrorOnFailure", False)  # validated before any read
        manager = await self._manager(request)
        status = await manager.status(instance_id, show_input=show_input, show_history=show_history,
                                      show_history_output=show_history_output)
        return self._status_response(request, status)

    def _status_response(self, request: web.Request, status: InstanceStatus) -> web.Response:
        body = status.to_json()
        if status.runtime_status.is_active:
            return json_response(body, 202, {"Location": self._public_url_of(request),
                                             "Retry-After": STATUS_RETRY_AFTER})
        failed = status.runtime_status == RuntimeStatus.FAILED
        code = 500 if failed and get_bool(request.query, "returnInternalServerErrorOnFailure", False) else 200
        return json_response(body, code)

    async def list_instances(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        top = get_int(q, "top", 1, 1000)
        token = request.headers.get(CONTINUATION_HEADER) or None
        query = InstanceQuery(created_from=get_time(q, "createdTimeFrom"), created_to=get_time(q, "createdTimeTo"),
                              statuses=get_statuses(q), instance_id_prefix=_query(request, "instanceIdPrefix"),
                              show_input=get_bool(q, "showInput", True), page_size=top or DEFAULT_PAGE_SIZE,
                              continuation_token=token)
        manager = await self._manager(request)
        page = await manager.page(query)
        if self._rpc and page.continuation_token and top is None and token is None:
            _warn_first_page_only(str(manager.hub_name), len(page))
        headers = {CONTINUATION_HEADER: page.continuation_token} if page.continuation_token else None
        return json_response([s.to_json() for s in page], 200, headers)

    async def get_entity(self, request: web.Request, name: str, key: str) -> web.Response:
        manager = await self._manager(request)
        # As the extension (HttpApiHandler.HandleGetEntityRequestAsync, EmptyEntityKeySymbol): the key '$' is the
        # empty key, so clients can name it in a URL; an entity whose key really is '$' is out of reach here.
        empty = key == EMPTY_ENTITY_KEY
        entity = await manager.get_entity(name, "" if empty else key)
        if not entity.exists:
            said = " (the key '$' stands for the empty key, as in the extension's HTTP API)" if empty else ""
            return web.json_response(error_body(f"Entity {entity.entity_id!r}{said} has no state.", "NotFound"),
                                     status=404)
        return json_response(entity.state)

    async def entity_not_supported(self, request: web.Request) -> web.Response:
        return web.json_response(error_body("Signalling and listing durable entities over HTTP is not supported "
                                            "by funcpy start; read one entity with GET entities/{name}/{key}.",
                                            "NotImplemented"), status=501)

    # --- steer ----------------------------------------------------------------

    async def raise_event(self, request: web.Request, instance_id: str, event_name: str) -> web.Response:
        if request.content_type.lower() != "application/json":
            raise BadRequest("Only application/json request content is supported: send the event data as "
                             "JSON with Content-Type: application/json.")
        data = read_json_body(await read_body(request), unwrap_string=self._rpc)
        manager = await self._manager(request)
        await manager.raise_event(instance_id, event_name, data_json=data if data is not None else "null")
        return accepted()

    async def steer(self, request: web.Request, instance_id: str, operation: str) -> web.Response:
        """terminate, suspend, resume or rewind (``operation``, an InstanceManager method), with ?reason=."""
        await getattr(await self._manager(request), operation)(instance_id, _reason(request))
        return accepted()

    async def restart(self, request: web.Request, instance_id: str) -> web.StreamResponse:
        new_id_wanted = get_bool(request.query, "restartWithNewInstanceId", True)
        timeout, interval = self._wait_params(request)
        manager = await self._manager(request)
        new_id = await manager.restart(instance_id, new_instance_id=new_id_wanted)
        # Also on the internal endpoint: the check-status payload, as HandleRestartInstanceRequestAsync answers,
        # so the SDK's restart() (which returns the body) gives that payload locally as it does deployed.
        return await self._created(request, manager, new_id, timeout, interval)

    # --- purge ----------------------------------------------------------------

    async def purge_instance(self, request: web.Request, instance_id: str) -> web.Response:
        result = await (await self._manager(request)).purge_instance(instance_id)
        return json_response({"instancesDeleted": result.instances_deleted})

    async def purge_by_filter(self, request: web.Request) -> web.Response:
        q = request.query
        created_from = get_time(q, "createdTimeFrom")
        if created_from is None:
            raise InvalidFilter("Please provide value for 'createdTimeFrom' parameter: purging by filter needs "
                                "the start of the creation-time range (ISO 8601, e.g. 2024-01-01T00:00:00Z).")
        query = InstanceQuery(created_from=created_from,
                              created_to=get_time(q, "createdTimeTo") or datetime.now(timezone.utc),
                              statuses=get_statuses(q))
        result = await (await self._manager(request)).purge(query=query)
        log.info("Purged %d instance(s) (%d history rows).", result.instances_deleted, result.rows_deleted)
        return json_response({"instancesDeleted": result.instances_deleted}, 200 if result.instances_deleted else 404)

    # --- helpers --------------------------------------------------------------

    async def _manager(self, request: web.Request) -> InstanceManager:
        return await self._hubs.manager(_query(request, "taskHub"), _query(request, "connection"))


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _warn_first_page_only(hub_name: str, count: int) -> None:
    """A client read the first page of a list without ``top`` while more exist: say what it misses, and how not to."""
    log.warning("A client function listed instances without paging (the Python SDK's get_status_all() or "
                "get_status_by(), which send no 'top' and do not follow x-ms-continuation-token: "
                "azure-functions-durable-python #580) and got the first %d instances of task hub '%s'; more "
                "exist. The extension answers the same way, so deployed code sees at most %d instances too. "
                "To read them all, page: durable_mgmt's InstanceManager.instances()/pages() does, as does "
                "GET instances?top=N with the x-ms-continuation-token header of each answer.",
                count, hub_name, DEFAULT_PAGE_SIZE)


def _code(request: web.Request) -> str | None:
    return _query(request, "code") or request.headers.get("x-functions-key")


def _reason(request: web.Request) -> str | None:
    """``?reason=`` as the extension reads it (HttpRequestMessageExtensions.GetQueryNameValuePairs): present
    and empty is the empty reason, which it passes on; only a query without ``reason=`` has none (null)."""
    for part in request.rel_url.raw_query_string.split("&"):
        name, eq, value = part.partition("=")
        if eq and unquote_plus(name).strip().lower() == "reason":
            return unquote_plus(value.strip())
    return None


def _query(request: web.Request, name: str) -> str | None:
    for key, value in request.query.items():
        if key.lower() == name.lower() and value:
            return value
    return None
