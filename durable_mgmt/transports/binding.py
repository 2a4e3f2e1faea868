"""The binding transport: requests carried out through the durable client binding, inside the app.

It speaks the durable HTTP management API at the binding's ``rpcBaseUrl``,
as the SDK's own client does, and adds what the SDK client lacks: paging
(``top`` and ``x-ms-continuation-token``) and typed errors from the status
code and the error body. The SDK client object is used for what it offers
publicly (management URLs); its ``rpcBaseUrl`` is read from its parsed
binding, the only place the SDK keeps it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any, AsyncIterator
from urllib.parse import quote, urlencode, urlsplit

import aiohttp

from .. import errors as e
from .. import requests as r
from ..models import EntityState, InstanceQuery, InstanceStatus, ManagementUrls, Page, PurgeResult, RuntimeStatus
from ..query_params import CONTINUATION_HEADER, EMPTY_ENTITY_KEY
from ..taskhub.timefmt import MIN_DATETIME, parse_iso, to_iso
from .base import Transport

_ERRORS_BY_TYPE = {cls.__name__: cls for cls in (
    e.InvalidInput, e.InvalidInstanceId, e.InvalidFilter, e.InvalidHubName, e.InvalidSetting, e.TaskHubNotFound,
    e.StorageUnavailable, e.StorageRefused, e.ConcurrencyConflict)}
_WRONG_STATE_BY_TYPE = {cls.__name__: cls for cls in (
    e.InstanceAlreadyExists, e.InstanceNotRunning, e.InstanceNotFailed, e.InstanceNotTerminal)}


class BindingTransport(Transport):
    """The durable HTTP management API at the binding's ``rpcBaseUrl`` (see the module docstring)."""

    description = "durable client binding (the host's management API)"

    def __init__(self, rpc_base_url: str, management_payload: Any = None, *,
                 session: aiohttp.ClientSession | None = None):
        self.base = rpc_base_url if rpc_base_url.endswith("/") else rpc_base_url + "/"
        self._payload = management_payload  # callable(instance_id) -> dict, the SDK client's
        self._session = session
        self._owns_session = session is None

    @classmethod
    def from_client(cls, client: Any) -> "BindingTransport":
        """From the ``DurableOrchestrationClient`` a ``durable_client_input`` function receives."""
        bindings = getattr(client, "_orchestration_bindings", None)
        rpc = getattr(bindings, "rpc_base_url", None)
        if not rpc:
            raise e.InvalidSetting("The durable client binding has no rpcBaseUrl: the Functions host must be "
                                   "Durable Functions extension 2.x or later (or funcpy start).")
        return cls(rpc, client.create_http_management_payload)

    async def aclose(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    # --- the requests -------------------------------------------------------

    # --- start ---------------------------------------------------------------

    async def start(self, input: r.StartInstance) -> str:
        path = f"orchestrators/{_segment(input.name)}"
        if input.instance_id:
            path += f"/{_segment(input.instance_id)}"
        # As the SDK does: the body is the input's JSON text, sent as a JSON string (no input: no body).
        body = None if input.input_json is None else json.dumps(input.input_json)
        return (await self._call("POST", path, input, body=body))["id"]

    async def restart(self, input: r.RestartInstance) -> str:
        body = await self._call("POST", self._instance(input.instance_id) + "/restart", input,
                                params={"restartWithNewInstanceId": _flag(input.new_instance_id)})
        # The extension answers with the check-status payload (HandleRestartInstanceRequestAsync);
        # a bare id is accepted too, from hosts that answered so.
        return body["id"] if isinstance(body, dict) else body

    # --- read ----------------------------------------------------------------

    async def status(self, input: r.GetStatus) -> InstanceStatus:
        data = await self._call("GET", self._instance(input.instance_id), input, params={
            "showHistory": _flag(input.show_history),
            "showHistoryOutput": _flag(input.show_history_output),
            "showInput": _flag(input.show_input)})
        status = status_from_json(data, show_input=input.show_input)
        # The HTTP API has no showOutput: leave it out here, as storage does.
        return status if input.show_output else replace(status, output=None)

    async def get_entity(self, input: r.GetEntity) -> EntityState:
        # GET entities/{name}/{key}: the state's JSON, or 404 when the entity has none
        # (HttpApiHandler.HandleGetEntityRequestAsync). The empty key is sent as '$' (its EmptyEntityKeySymbol):
        # 'entities/{name}/' with no key is the route that lists entities. So the API reads a key '$' as the
        # empty key: an entity whose key really is '$' cannot be addressed through it, and asking would
        # silently answer for another entity.
        if input.key == EMPTY_ENTITY_KEY:
            self.unsupported(f"Reading entity {input.instance_id!r} (key '$')",
                             "the management API reads the key '$' as the empty key (HttpApiHandler's "
                             "EmptyEntityKeySymbol), so it would answer for entity "
                             f"'@{input.name.lower()}@' instead; read it over storage with "
                             "InstanceManager.connect(account, hub).get_entity(name, '$').")
        path = f"entities/{_segment(input.name.lower())}/{_segment(input.key or EMPTY_ENTITY_KEY)}"
        try:
            return EntityState(input.instance_id, True, await self._call("GET", path, input))
        except e.NotFound:
            return EntityState(input.instance_id, False)

    async def history(self, input: r.GetHistory) -> list[Any]:
        self.unsupported("Reading the raw history", "the management API renders history only; use "
                         "status(instance_id, show_history=True), or InstanceManager.connect(account, hub).")

    async def page(self, input: r.QueryInstances) -> Page[InstanceStatus]:
        return await self._query(input)

    async def pages(self, input: r.QueryInstances) -> AsyncIterator[Page[InstanceStatus]]:
        query = input.query
        while True:
            page = await self._query(r.QueryInstances(query))
            yield page
            if not page.continuation_token:
                return
            query = replace(query, continuation_token=page.continuation_token)

    async def count(self, input: r.CountInstances) -> dict[RuntimeStatus, int]:
        self.unsupported("Counting by status in storage", "the management API has no count; use "
                         "InstanceManager.count(CountRequest(...)), which lists and counts here, or "
                         "InstanceManager.connect(account, hub).")

    async def management_urls(self, input: r.GetManagementUrls) -> ManagementUrls:
        if self._payload is None:
            raise e.InvalidSetting("This binding transport was made without the client's management URLs.")
        return ManagementUrls.from_json(self._payload(input.instance_id))

    # --- steer ---------------------------------------------------------------

    async def terminate(self, input: r.TerminateInstance) -> None:
        await self._post_reason(input, "terminate")

    async def raise_event(self, input: r.RaiseEvent) -> None:
        path = f"{self._instance(input.instance_id)}/raiseEvent/{_segment(input.event_name)}"
        await self._call("POST", path, input, body=json.dumps(input.data_json))

    async def suspend(self, input: r.SuspendInstance) -> None:
        await self._post_reason(input, "suspend")

    async def resume(self, input: r.ResumeInstance) -> None:
        await self._post_reason(input, "resume")

    async def rewind(self, input: r.RewindInstance) -> None:
        await self._post_reason(input, "rewind")  # the API does not say which instances it replays

    async def _post_reason(self, input: r.TerminateInstance | r.SuspendInstance | r.ResumeInstance
                           | r.RewindInstance, operation: str) -> None:
        await self._call("POST", f"{self._instance(input.instance_id)}/{operation}", input,
                         params=_reason(input.reason))

    # --- purge and the hub ---------------------------------------------------

    async def purge_instance(self, input: r.PurgeInstance) -> PurgeResult:
        body = await self._call("DELETE", self._instance(input.instance_id), input)
        return PurgeResult(int(body.get("instancesDeleted", 0)))

    async def purge(self, input: r.PurgeInstances) -> PurgeResult:
        q = input.query
        if q.instance_id_prefix or q.name:
            # The API's purge by filter takes only the creation range and statuses (HttpApiHandler.
            # HandleDeleteHistoryWithFiltersRequestAsync): sent there, the narrower query would purge every
            # finished instance of the range.
            self.unsupported("Purging by instance id prefix or orchestrator name",
                             "the management API purges by creation time and status only; use "
                             "InstanceManager.connect(account, hub), or purge_instance(id) for each match.")
        return await self._purge(input)

    async def hub_exists(self, input: r.HubExists) -> bool:
        self.unsupported("Checking that the task hub exists", "the binding's host serves its own hub, which "
                         "it created; use InstanceManager.connect(account, hub) to check another.")

    async def delete_hub(self, input: r.DeleteHub) -> None:
        self.unsupported("Deleting the task hub", "the management API cannot; use "
                         "InstanceManager.connect(account, hub).delete_hub() or `funcpy durable delete-task-hub`.")

    async def _query(self, request: r.QueryInstances) -> Page[InstanceStatus]:
        q = request.query
        params = _filters(q)
        params["showInput"] = _flag(q.show_input)
        params["top"] = str(q.page_size)
        headers = {CONTINUATION_HEADER: q.continuation_token} if q.continuation_token else {}
        data, response_headers = await self._call("GET", "instances/", request, params=params, headers=headers,
                                                  with_headers=True)
        items = [status_from_json(d, show_input=q.show_input) for d in data]
        if q.name:
            # The HTTP API has no name filter: filter each page here (pages may come out shorter).
            items = [s for s in items if s.name == q.name]
        return Page(tuple(items), response_headers.get(CONTINUATION_HEADER) or None)

    async def _purge(self, request: r.PurgeInstances) -> PurgeResult:
        q = request.query
        params = _filters(q)
        # The API requires createdTimeFrom; "from the beginning" is the oldest time there is.
        params.setdefault("createdTimeFrom", to_iso(MIN_DATETIME))
        try:
            body = await self._call("DELETE", "instances/", request, params=params)
        except e.NotFound:
            return PurgeResult(0)  # 404: nothing matched
        return PurgeResult(int(body.get("instancesDeleted", 0)))

    @staticmethod
    def _instance(instance_id: str) -> str:
        return f"instances/{_segment(instance_id)}"

    async def _call(self, method: str, path: str, request: object, *, params: dict | None = None,
                    body: str | None = None, headers: dict | None = None, with_headers: bool = False) -> Any:
        url = self.base + path
        if params:
            url += "?" + urlencode({k: v for k, v in params.items() if v is not None})
        hdrs = {"Content-Type": "application/json", **(headers or {})} if body is not None else dict(headers or {})
        try:
            async with self.session.request(method, url, data=body, headers=hdrs) as response:
                text = await response.text()
                status = response.status
                response_headers = dict(response.headers)
        except aiohttp.ClientError as err:
            # The origin only: the path of rpcBaseUrl may hold the host's secret for its internal endpoint.
            origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.base))
            raise e.ManagementApiError(0, f"The durable management API at {origin} is unreachable: "
                                          f"{type(err).__name__}.") from err
        data = _json(text)
        if status >= 400:
            err = _error(status, data, request)
            if isinstance(err, e.WrongState) and err.status is None and err.instance_id:
                err.status = await self._runtime_status(err.instance_id)
            raise err
        return (data, response_headers) if with_headers else data

    async def _runtime_status(self, instance_id: str) -> RuntimeStatus | None:
        """The instance's status now, for a wrong-state error: the API's error body does not carry it,
        and the storage transport's errors do, so both transports give the same error."""
        try:
            data = await self._call("GET", self._instance(instance_id), r.GetStatus(instance_id, show_input=False),
                                    params={"showInput": "false"})
            return RuntimeStatus.parse(data["runtimeStatus"]) if isinstance(data, dict) else None
        except (e.DurableError, KeyError):
            return None


def _segment(text: str) -> str:
    """``text`` as one URL path segment: fully quoted, dots too when it is only dots (quote() leaves '.'
    and '..' as they are, and URL stacks collapse them)."""
    quoted = quote(text, safe="")
    return quoted.replace(".", "%2E") if not quoted.strip(".") else quoted


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _reason(reason: str | None) -> dict[str, str]:
    # An empty reason is sent as ?reason=: the extension reads that as "" (HttpRequestMessageExtensions.
    # GetQueryNameValuePairs) and passes it on as the reason, as the storage transport writes it; only no
    # reason (None) is left out, which the extension reads as null.
    return {} if reason is None else {"reason": reason}


def _filters(q: InstanceQuery) -> dict[str, str]:
    params: dict[str, str] = {}
    if q.created_from:
        params["createdTimeFrom"] = to_iso(q.created_from)
    if q.created_to:
        params["createdTimeTo"] = to_iso(q.created_to)
    if q.statuses:
        params["runtimeStatus"] = ",".join(sorted(s.value for s in q.statuses))
    if q.instance_id_prefix:
        params["instanceIdPrefix"] = q.instance_id_prefix
    return params


def _json(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


def _error(status: int, data: Any, request: object) -> e.DurableError:
    message = data.get("ExceptionMessage") or data.get("Message") if isinstance(data, dict) else (data or "")
    kind = data.get("ExceptionType") if isinstance(data, dict) else None
    instance_id = getattr(request, "instance_id", None) or ""
    if kind in _WRONG_STATE_BY_TYPE:
        return _WRONG_STATE_BY_TYPE[kind](instance_id, None, message)
    if kind in _ERRORS_BY_TYPE:
        return _ERRORS_BY_TYPE[kind](message)
    if status == 404:
        return e.InstanceNotFound(instance_id) if instance_id else e.NotFound(message or "Not found.")
    if status == 410:
        cls = e.InstanceNotFailed if isinstance(request, r.RewindInstance) else e.InstanceNotRunning
        return cls(instance_id, None, message or f"Instance {instance_id!r} is not in a state that allows this.")
    if status == 409:
        return e.InstanceAlreadyExists(instance_id, None, message or f"Instance {instance_id!r} already exists.")
    if status == 412:
        return e.InstanceNotTerminal(instance_id, None, message or f"Instance {instance_id!r} is still running.")
    if status == 400:
        return e.InvalidInput(message or "The management API refused the request as invalid.")
    return e.ManagementApiError(status, f"The durable management API answered {status}: {message}")


def status_from_json(data: dict[str, Any], *, show_input: bool = True) -> InstanceStatus:
    """An ``InstanceStatus`` from the management API's status body."""
    history = data.get("historyEvents")
    return InstanceStatus(
        instance_id=data["instanceId"],
        name=data.get("name") or "",
        runtime_status=RuntimeStatus.parse(data.get("runtimeStatus") or "Pending"),
        created_time=_time(data.get("createdTime")),
        last_updated_time=_time(data.get("lastUpdatedTime")),
        input=data.get("input") if show_input else None,
        output=data.get("output"),
        custom_status=data.get("customStatus"),
        history=tuple(history) if history is not None else None,
    )


def _time(text: str | None) -> datetime:
    return parse_iso(text) if text else MIN_DATETIME
