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
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp

from .. import errors as e
from .. import requests as r
from ..query_params import CONTINUATION_HEADER
from ..models import InstanceQuery, InstanceStatus, ManagementUrls, Page, PurgeResult, RuntimeStatus
from ..taskhub.timefmt import MIN_DATETIME, parse_iso, to_iso

_ERRORS_BY_TYPE = {cls.__name__: cls for cls in (
    e.InvalidInput, e.InvalidInstanceId, e.InvalidFilter, e.InvalidHubName, e.InvalidSetting, e.TaskHubNotFound,
    e.StorageUnavailable, e.StorageRefused, e.ConcurrencyConflict)}
_WRONG_STATE_BY_TYPE = {cls.__name__: cls for cls in (
    e.InstanceAlreadyExists, e.InstanceNotRunning, e.InstanceNotFailed, e.InstanceNotTerminal)}


class BindingTransport:
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

    async def execute(self, request: r.Request) -> Any:
        match request:
            case r.StartInstance():
                path = f"orchestrators/{_segment(request.name)}"
                if request.instance_id:
                    path += f"/{_segment(request.instance_id)}"
                # As the SDK does: the body is the input's JSON text, sent as a JSON string.
                body = await self._call("POST", path, request, body=json.dumps(request.input_json))
                return body["id"]
            case r.GetStatus():
                data = await self._call("GET", self._instance(request.instance_id), request, params={
                    "showHistory": _flag(request.show_history),
                    "showHistoryOutput": _flag(request.show_history_output),
                    "showInput": _flag(request.show_input)})
                return status_from_json(data, show_input=request.show_input)
            case r.QueryInstances():
                return await self._query(request)
            case r.TerminateInstance():
                await self._call("POST", self._instance(request.instance_id) + "/terminate", request,
                                 params=_reason(request.reason))
            case r.RaiseEvent():
                path = f"{self._instance(request.instance_id)}/raiseEvent/{_segment(request.event_name)}"
                await self._call("POST", path, request, body=json.dumps(request.data_json))
            case r.SuspendInstance():
                await self._call("POST", self._instance(request.instance_id) + "/suspend", request,
                                 params=_reason(request.reason))
            case r.ResumeInstance():
                await self._call("POST", self._instance(request.instance_id) + "/resume", request,
                                 params=_reason(request.reason))
            case r.RewindInstance():
                await self._call("POST", self._instance(request.instance_id) + "/rewind", request,
                                 params=_reason(request.reason))
            case r.RestartInstance():
                body = await self._call("POST", self._instance(request.instance_id) + "/restart", request,
                                        params={"restartWithNewInstanceId": _flag(request.new_instance_id)})
                # The extension answers with the check-status payload (HandleRestartInstanceRequestAsync);
                # a bare id is accepted too, from hosts that answered so.
                return body["id"] if isinstance(body, dict) else body
            case r.PurgeInstance():
                body = await self._call("DELETE", self._instance(request.instance_id), request)
                return PurgeResult(int(body.get("instancesDeleted", 0)))
            case r.PurgeInstances():
                return await self._purge(request)
            case r.GetManagementUrls():
                if self._payload is None:
                    raise e.InvalidSetting("This binding transport was made without the client's management URLs.")
                return ManagementUrls.from_json(self._payload(request.instance_id))
            case _:
                raise TypeError(f"unknown request {type(request).__name__}")
        return None

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

    async def _call(self, method: str, path: str, request: r.Request, *, params: dict | None = None,
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
    return {"reason": reason} if reason else {}


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


def _error(status: int, data: Any, request: r.Request) -> e.DurableError:
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
