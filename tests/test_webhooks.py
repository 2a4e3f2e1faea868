"""The durable HTTP management API: every route with its documented statuses and headers.

The engine does not run here (run_orchestrations=False): instances stay as the
test puts them, and terminal states are written straight into the Instances row.
"""

from __future__ import annotations

import asyncio
import base64
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from durable_mgmt.models import InstanceQuery, RuntimeStatus
from durable_mgmt.taskhub import TaskHubClient, escape_key
from durable_mgmt.taskhub.events import EventType
from durable_mgmt.taskhub.messages import TaskMessage, decode_body
from durable_mgmt.taskhub.timefmt import utcnow
from tests.apps.support import http, running_host

PAYLOAD_KEYS = {"id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri", "purgeHistoryDeleteUri",
                "restartPostUri", "suspendPostUri", "resumePostUri"}


@pytest.fixture
async def host(connection_string, hub_name):
    async with running_host("http_app", connection_string, hub_name, run_orchestrations=False) as h:
        yield h


@pytest.fixture
async def api(host):
    async with http() as session:
        yield Api(session, host)


class Api:
    def __init__(self, session, host):
        self.s, self.host, self.base = session, host, host.webhook_base_url

    async def call(self, method: str, path: str, *, rpc: bool = False, **kwargs):
        base = self.host.rpc_base_url.rstrip("/") if rpc else self.base
        async with self.s.request(method, base + path, **kwargs) as r:
            text = await r.text()
            return r.status, r.headers, (json.loads(text) if text else None)


async def set_status(host, instance_id: str, status: RuntimeStatus, output=None) -> None:
    row = {"PartitionKey": escape_key(instance_id), "RowKey": "", "RuntimeStatus": status.value,
           "LastUpdatedTime": utcnow()}
    if output is not None:
        row["Output"] = json.dumps(output)
    await host.hub.instances.merge(row)


async def started(host, instance_id: str, status: RuntimeStatus | None = None, output=None) -> str:
    await TaskHubClient(host.hub).start("hello_orchestrator", {"n": 1}, instance_id=instance_id)
    if status is not None:
        await set_status(host, instance_id, status, output)
    return instance_id


# --- start -------------------------------------------------------------------------


async def test_start_answers_202_with_payload_location_and_retry_after(api, host):
    status, headers, body = await api.call("POST", "/orchestrators/hello_orchestrator", json={"city": "Oslo"})
    assert status == 202
    assert set(body) == PAYLOAD_KEYS and len(body["id"]) == 32
    assert headers["Location"] == body["statusQueryGetUri"] and headers["Retry-After"] == "10"
    url = urlsplit(body["statusQueryGetUri"])
    assert url.path == f"/runtime/webhooks/durabletask/instances/{body['id']}"
    # Without --enable-auth no key is handed out (it would still be valid in a later run with auth).
    assert parse_qs(url.query) == {"taskHub": [host.hub_name], "connection": ["Storage"]}
    assert body["terminatePostUri"].split("?")[0].endswith(f"/instances/{body['id']}/terminate")
    assert "reason={text}" in body["terminatePostUri"] and "/raiseEvent/{eventName}?" in body["sendEventPostUri"]
    stored = await TaskHubClient(host.hub).get_status(body["id"])
    assert stored.input == {"city": "Oslo"} and stored.name == "hello_orchestrator"
    assert stored.runtime_status == RuntimeStatus.PENDING


async def test_start_with_id_and_the_same_id_again(api, host):
    status, _, body = await api.call("POST", "/orchestrators/HELLO_orchestrator/order-1")
    assert status == 202 and body["id"] == "order-1"
    assert (await TaskHubClient(host.hub).get_status("order-1")).name == "hello_orchestrator"  # canonical name stored
    status, _, body = await api.call("POST", "/orchestrators/hello_orchestrator/order-1")
    assert status == 409 and "already Pending" in body["ExceptionMessage"]


@pytest.mark.parametrize("path,data,message", [
    ("/orchestrators/hello_orchestrator", b"{not json", "Invalid JSON content"),
    ("/orchestrators/no_such_function", b"", "Orchestrator functions of this app: hello_orchestrator"),
    ("/orchestrators/say_hello", b"", "is not an orchestrator"),
    ("/orchestrators/hello_orchestrator/@reserved", b"", "reserved for durable entities"),
    ("/orchestrators/hello_orchestrator?timeout=abc", b"", "timeout='abc'"),
    ("/orchestrators/hello_orchestrator?timeout=1&pollingInterval=5", b"", "should be bigger"),
])
async def test_start_rejects_bad_requests_with_400_and_creates_nothing(api, host, path, data, message):
    status, _, body = await api.call("POST", path, data=data, headers={"Content-Type": "application/json"})
    assert status == 400 and message in body["ExceptionMessage"]
    assert len(await TaskHubClient(host.hub).query(_all())) == 0


async def test_start_and_wait_times_out_into_the_check_status_response(api):
    status, headers, body = await api.call("POST", "/orchestrators/hello_orchestrator?timeout=0.3&pollingInterval=0.1")
    assert status == 202 and set(body) == PAYLOAD_KEYS and "Location" in headers


async def test_start_waits_only_when_timeout_and_polling_interval_are_both_given(api):
    """HandleStartOrchestratorRequestAsync waits only if both are given (the Azure Storage provider has no
    poll-free wait, DurabilityProvider.SupportsPollFreeWait = false); timeout alone answers 202 at once."""
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        async with session.post(api.base + "/orchestrators/hello_orchestrator?timeout=60") as r:
            assert r.status == 202 and set(await r.json()) == PAYLOAD_KEYS


async def test_rpc_endpoint_unwraps_the_sdk_double_encoded_input(api, host):
    # The SDK posts json=df_dumps(input): a JSON string holding the JSON text.
    status, _, body = await api.call("POST", "/orchestrators/hello_orchestrator", rpc=True,
                                     json=json.dumps({"a": [1, 2]}))
    assert status == 202
    assert (await TaskHubClient(host.hub).get_status(body["id"])).input == {"a": [1, 2]}
    assert body["statusQueryGetUri"].startswith(host.webhook_base_url)  # links point at the public API
    status, _, body = await api.call("POST", "/orchestrators/hello_orchestrator", rpc=True, json=json.dumps("plain"))
    assert (await TaskHubClient(host.hub).get_status(body["id"])).input == "plain"


# --- status --------------------------------------------------------------------------


async def test_status_of_a_running_instance_is_202_with_location(api, host):
    await started(host, "run-1")
    status, headers, body = await api.call("GET", "/instances/run-1?showInput=false&taskHub=" + host.hub_name)
    assert status == 202 and headers["Retry-After"] == "5"
    assert headers["Location"].endswith("/instances/run-1?showInput=false&taskHub=" + host.hub_name)
    assert body["runtimeStatus"] == "Pending" and body["input"] is None
    assert set(body) == {"name", "instanceId", "runtimeStatus", "input", "customStatus", "output", "createdTime",
                         "lastUpdatedTime"}
    status, _, body = await api.call("GET", "/instances/run-1?showHistory=true")
    assert body["input"] == {"n": 1} and body["historyEvents"] == []


async def test_status_of_terminal_instances(api, host):
    await started(host, "done-1", RuntimeStatus.COMPLETED, output={"ok": True})
    status, headers, body = await api.call("GET", "/instances/done-1")
    assert status == 200 and "Location" not in headers and body["output"] == {"ok": True}
    await started(host, "failed-1", RuntimeStatus.FAILED, output="boom")
    assert (await api.call("GET", "/instances/failed-1"))[0] == 200
    assert (await api.call("GET", "/instances/failed-1?returnInternalServerErrorOnFailure=true"))[0] == 500


async def test_status_errors(api):
    status, _, body = await api.call("GET", "/instances/nobody")
    assert status == 404 and "nobody" in body["Message"]
    # The internal endpoint answers as the extension does (HttpApiHandler: CreateResponse(NotFound), no body).
    assert (await api.call("GET", "/instances/nobody", rpc=True))[::2] == (404, None)
    status, _, body = await api.call("GET", "/instances/nobody?showHistory=yes")
    assert status == 400 and "showHistory='yes'" in body["Message"]
    status, _, body = await api.call("GET", "/instances/x?taskHub=bad-name!")
    assert status == 400


# --- list and paging ---------------------------------------------------------------------


async def test_paging_over_250_instances_with_top_50(api, host):
    sem = asyncio.Semaphore(16)

    async def start(i: int) -> None:
        async with sem:
            await TaskHubClient(host.hub).start("hello_orchestrator", i, instance_id=f"page-{i:03d}")

    await asyncio.gather(*(start(i) for i in range(250)))
    seen, pages, token = [], 0, None
    while True:
        headers = {"x-ms-continuation-token": token} if token else {}
        status, response_headers, body = await api.call("GET", "/instances?top=50", headers=headers)
        assert status == 200 and len(body) <= 50
        seen += [item["instanceId"] for item in body]
        pages += 1
        token = response_headers.get("x-ms-continuation-token")
        if not token:
            break
    assert sorted(seen) == [f"page-{i:03d}" for i in range(250)] and pages >= 5
    assert body[-1]["input"] is not None  # showInput defaults to true

    # Without top, both endpoints answer as the extension does (HttpApiHandler.HandleGetStatusRequestAsync,
    # OrchestrationStatusQueryCondition.PageSize = 100): one page of 100 and the token of the next.
    for rpc in (False, True):
        status, headers, first = await api.call("GET", "/instances/", rpc=rpc)
        assert status == 200 and len(first) == 100 and headers.get("x-ms-continuation-token"), rpc
    seen, token = [], None
    while True:
        status, headers, body = await api.call("GET", "/instances/", rpc=True,
                                               headers={"x-ms-continuation-token": token} if token else {})
        seen += [item["instanceId"] for item in body]
        token = headers.get("x-ms-continuation-token")
        if not token:
            break
    assert sorted(seen) == [f"page-{i:03d}" for i in range(250)]


async def test_list_filters(api, host):
    await started(host, "alpha-1")
    await started(host, "alpha-2", RuntimeStatus.COMPLETED)
    await started(host, "beta-1", RuntimeStatus.FAILED)
    ids = lambda body: sorted(i["instanceId"] for i in body)  # noqa: E731
    assert ids((await api.call("GET", "/instances?instanceIdPrefix=alpha"))[2]) == ["alpha-1", "alpha-2"]
    assert ids((await api.call("GET", "/instances?runtimeStatus=Completed,failed"))[2]) == ["alpha-2", "beta-1"]
    status, _, body = await api.call("GET", "/instances?createdTimeFrom=2999-01-01T00:00:00Z")
    assert status == 200 and body == []
    status, _, body = await api.call("GET", "/instances?showInput=false&top=1")
    assert len(body) == 1 and body[0]["input"] is None


@pytest.mark.parametrize("query,headers,message", [
    ("top=0", {}, "top='0' must be an integer from 1 to 1000"),
    ("runtimeStatus=Runing", {}, "Unknown runtime status 'Runing'"),
    ("createdTimeFrom=yesterday", {}, "not an ISO 8601 time"),
    ("", {"x-ms-continuation-token": "garbage"}, "Invalid continuation token"),
])
async def test_list_rejects_malformed_values(api, query, headers, message):
    status, _, body = await api.call("GET", "/instances?" + query, headers=headers)
    assert status == 400 and message in body["Message"]


# --- steer ------------------------------------------------------------------------------


async def test_raise_event(api, host):
    await started(host, "ev-1")
    status, _, _ = await api.call("POST", "/instances/ev-1/raiseEvent/approval", json={"ok": True})
    assert status == 202
    messages = await host.hub.control_queue_for("ev-1").peek_messages(max_messages=32)
    assert any('"EventRaised' in m.content or "EventRaised" in _decode(m.content) for m in messages)
    assert (await api.call("POST", "/instances/nobody/raiseEvent/approval", json=1))[0] == 404
    await started(host, "ev-done", RuntimeStatus.COMPLETED)
    assert (await api.call("POST", "/instances/ev-done/raiseEvent/approval", json=1))[0] == 410
    status, _, body = await api.call("POST", "/instances/ev-1/raiseEvent/approval", data=b"x",
                                     headers={"Content-Type": "text/plain"})
    assert status == 400 and "application/json" in body["Message"]
    status, _, body = await api.call("POST", "/instances/ev-1/raiseEvent/approval", data=b"{oops",
                                     headers={"Content-Type": "application/json"})
    assert status == 400 and "Invalid JSON" in body["Message"]


@pytest.mark.parametrize("op", ["terminate", "suspend", "resume"])
async def test_terminate_suspend_resume(api, host, op):
    await started(host, "steer-1")
    assert (await api.call("POST", f"/instances/steer-1/{op}?reason=testing"))[0] == 202
    assert (await api.call("POST", f"/instances/nobody/{op}"))[0] == 404
    await started(host, "steer-done", RuntimeStatus.TERMINATED)
    assert (await api.call("POST", f"/instances/steer-done/{op}"))[0] == 410
    assert (await api.call("GET", f"/instances/steer-1/{op}"))[0] == 405


async def test_reason_present_but_empty_is_the_empty_reason_as_in_the_extension(api, host):
    # HttpApiHandler.Handle{Terminate,Suspend}InstanceRequestAsync pass GetQueryNameValuePairs()["reason"]
    # on: "" for ?reason= (HttpRequestMessageExtensions.GetQueryNameValuePairs), null when no "reason=" is
    # there. The SDK always sends ?reason={quote(reason)}, so an empty reason arrives as ?reason=.
    cases = {"why-empty": ("?reason=", ""), "why-none": ("", None), "why-bare": ("?reason", None),
             "why-text": ("?Reason=why+not%21", "why not!")}
    for iid, (query, _) in cases.items():
        await started(host, iid)
        assert (await api.call("POST", f"/instances/{iid}/terminate{query}"))[0] == 202
    await started(host, "why-suspend")
    assert (await api.call("POST", "/instances/why-suspend/suspend?reason="))[0] == 202
    sent = {}
    for iid in [*cases, "why-suspend"]:
        for m in await host.hub.control_queue_for(iid).peek_messages(max_messages=32):
            message = TaskMessage.from_json(decode_body(m.content))
            if message.instance_id == iid and message.event.type in (EventType.ExecutionTerminated,
                                                                    EventType.ExecutionSuspended):
                sent[iid] = message.event.get("Input" if iid != "why-suspend" else "Reason")
    assert sent == {**{iid: reason for iid, (_, reason) in cases.items()}, "why-suspend": ""}


async def test_rewind(api, host):
    await started(host, "rw-failed", RuntimeStatus.FAILED)
    assert (await api.call("POST", "/instances/rw-failed/rewind?reason=retry"))[0] == 202
    assert (await TaskHubClient(host.hub).get_status("rw-failed")).runtime_status == RuntimeStatus.PENDING
    await started(host, "rw-done", RuntimeStatus.COMPLETED)
    status, _, body = await api.call("POST", "/instances/rw-done/rewind")
    assert status == 410 and "only Failed instances" in body["Message"]
    assert (await api.call("POST", "/instances/nobody/rewind"))[0] == 404


async def test_restart(api, host):
    await started(host, "rs-1", RuntimeStatus.COMPLETED)
    status, headers, body = await api.call("POST", "/instances/rs-1/restart")
    assert status == 202 and body["id"] != "rs-1" and headers["Location"] == body["statusQueryGetUri"]
    assert (await TaskHubClient(host.hub).get_status(body["id"])).input == {"n": 1}  # the same input again
    status, _, body = await api.call("POST", "/instances/rs-1/restart?restartWithNewInstanceId=false")
    assert status == 202 and body["id"] == "rs-1"
    status, _, body = await api.call("POST", "/instances/rs-1/restart?restartWithNewInstanceId=false")
    assert status == 409  # now Pending again: the same id cannot start twice
    assert (await api.call("POST", "/instances/nobody/restart"))[0] == 404
    # The internal endpoint answers as the extension's HandleRestartInstanceRequestAsync does: the check-status
    # payload (which the SDK's restart() returns as is, deployed and here).
    status, _, body = await api.call("POST", "/instances/rs-1/restart", rpc=True)
    assert status == 202 and set(body) == PAYLOAD_KEYS and body["id"] != "rs-1"


# --- purge ------------------------------------------------------------------------------


async def test_purge_one(api, host):
    await started(host, "gone-1", RuntimeStatus.COMPLETED)
    status, _, body = await api.call("DELETE", "/instances/gone-1")
    assert status == 200 and body == {"instancesDeleted": 1}
    assert (await api.call("GET", "/instances/gone-1"))[0] == 404
    assert (await api.call("DELETE", "/instances/gone-1"))[0] == 404
    await started(host, "busy-1")
    status, _, body = await api.call("DELETE", "/instances/busy-1")
    assert status == 412 and "Pending" in body["Message"]


async def test_purge_by_filter(api, host):
    for i, s in enumerate([RuntimeStatus.COMPLETED, RuntimeStatus.FAILED, RuntimeStatus.TERMINATED, None]):
        await started(host, f"pf-{i}", s)
    status, _, body = await api.call("DELETE", "/instances")
    assert status == 400 and "createdTimeFrom" in body["Message"]
    status, _, body = await api.call("DELETE", "/instances?createdTimeFrom=2000-01-01T00:00:00Z&runtimeStatus=Running")
    assert status == 400 and "Running" in body["Message"]
    status, _, body = await api.call("DELETE", "/instances/?createdTimeFrom=2000-01-01T00:00:00Z"
                                               "&runtimeStatus=Completed,Failed")
    assert status == 200 and body == {"instancesDeleted": 2}
    status, _, body = await api.call("DELETE", "/instances?createdTimeFrom=2000-01-01T00:00:00Z")
    assert status == 200 and body == {"instancesDeleted": 1}  # the Terminated one; Pending is kept
    assert (await api.call("DELETE", "/instances?createdTimeFrom=2000-01-01T00:00:00Z"))[0] == 404
    assert [s.instance_id for s in await TaskHubClient(host.hub).query(_all())] == ["pf-3"]


# --- other routes -------------------------------------------------------------------------


async def test_the_entity_key_dollar_is_the_empty_key_as_in_the_extension_and_says_so(api, host):
    # HttpApiHandler.HandleGetEntityRequestAsync reads the key '$' as "" (EmptyEntityKeySymbol), so a client
    # can name the empty key in a URL; a 404 there says which entity was looked for and why.
    status, _, body = await api.call("GET", "/entities/Solo/$")
    assert status == 404 and "'@solo@'" in body["Message"] and "'$' stands for the empty key" in body["Message"]
    await host.hub.instances.upsert({
        "PartitionKey": "@solo@", "RowKey": "", "Name": "@solo@", "RuntimeStatus": "Running", "CreatedTime": utcnow(),
        "LastUpdatedTime": utcnow(), "Input": json.dumps({"exists": True, "state": json.dumps({"n": 1})})})
    status, _, body = await api.call("GET", "/entities/solo/$")
    assert status == 200 and body == {"n": 1}


async def test_unknown_routes_and_methods(api):
    status, _, body = await api.call("GET", "/nothing/here")
    assert status == 404 and "Routes:" in body["Message"]
    status, headers, _ = await api.call("PUT", "/instances")
    assert status == 405 and headers["Allow"] == "GET, DELETE"
    assert (await api.call("GET", "/entities/counter/one"))[0] == 404
    assert (await api.call("POST", "/entities/counter/one?op=add"))[0] == 501


def _all():
    from durable_mgmt.models import InstanceQuery

    return InstanceQuery(page_size=1000)


def _decode(content: str) -> str:
    try:
        return base64.b64decode(content).decode()
    except ValueError:
        return content


async def test_connection_parameter_only_names_the_apps_storage_and_never_echoes_settings(connection_string,
                                                                                        hub_name):
    secret = "sk-live-9f8e7d6c5b4a39281706"
    async with running_host("http_app", connection_string, hub_name, run_orchestrations=False,
                            settings={"MY_API_KEY": secret}) as host, http() as s:
        for conn in ("MY_API_KEY", "PATH"):
            async with s.post(f"{host.webhook_base_url}/orchestrators/hello_orchestrator?connection={conn}") as r:
                text = await r.text()
                assert r.status == 400 and "is not a storage connection of this app" in text
                assert secret[:6] not in text and "MY_API_KEY" not in text.replace(f"connection='{conn}'", "")
        async with s.post(f"{host.webhook_base_url}/orchestrators/hello_orchestrator?connection=Storage") as r:
            assert r.status == 202
        assert len(await TaskHubClient(host.hub).query(InstanceQuery())) == 1
