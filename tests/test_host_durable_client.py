"""The unmodified azure-functions-durable client, used by HTTP client functions, against the host.

Client functions of tests/apps/client_app each make one SDK call; the engine
runs the orchestrations, so results are checked on instances that really ran.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest

from durable_mgmt.models import RuntimeStatus
from durable_mgmt.taskhub import TaskHubClient
from tests.apps.support import http, running_host
from tests.engine_support import wait_for


@pytest.fixture
async def host(connection_string, hub_name):
    async with running_host("client_app", connection_string, hub_name) as h:
        yield h


@pytest.fixture
async def call(host):
    async with http() as session:
        async def do(method: str, path: str, **kwargs):
            async with session.request(method, host.base_url + "/api" + path, **kwargs) as r:
                text = await r.text()
                return r.status, r.headers, json.loads(text) if text and r.content_type == "application/json" else text
        yield do


async def start(call, name: str, body=None, instance_id: str | None = None) -> str:
    path = f"/start/{name}" + (f"?id={instance_id}" if instance_id else "")
    status, _, payload = await call("POST", path, json=body)
    assert status == 202, payload
    return payload["id"]


async def test_start_new_with_and_without_id_and_check_status_response(call, host):
    status, headers, payload = await call("POST", "/start/hello_sequence", json={"name": "Ada"})
    assert status == 202 and len(payload["id"]) == 32
    assert headers["Location"] == payload["statusQueryGetUri"] and headers["Retry-After"] == "10"
    # The SDK swaps the origin for the incoming request's and fills in the id.
    assert payload["statusQueryGetUri"].startswith(host.base_url.replace("localhost", "localhost") + "/runtime/")
    assert payload["statusQueryGetUri"].endswith(f"/instances/{payload['id']}?taskHub={host.hub_name}&connection=Storage")
    done = await wait_for(TaskHubClient(host.hub), payload["id"])
    assert done.runtime_status == RuntimeStatus.COMPLETED and done.output == ["Hello Ada", "Hello again"]
    assert done.input == {"name": "Ada"}  # the SDK's double-encoded input arrives as the value

    assert await start(call, "hello_sequence", {"name": "Bo"}, instance_id="my-id-1") == "my-id-1"
    status, _, payload = await call("POST", "/start/no_such_orchestrator")
    assert status == 409 and "Orchestrator functions of this app" in payload["error"]


async def test_get_status_with_history(call, host):
    iid = await start(call, "hello_sequence", {"name": "Cy"})
    await wait_for(TaskHubClient(host.hub), iid)
    _, _, status = await call("GET", f"/status/{iid}?history=true&output=true&input=true")
    assert status["exists"] and status["runtimeStatus"] == "Completed" and status["name"] == "hello_sequence"
    assert status["input"] == {"name": "Cy"} and status["output"] == ["Hello Cy", "Hello again"]
    events = status["historyEvents"]
    assert [e["EventType"] for e in events] == ["ExecutionStarted", "TaskCompleted", "TaskCompleted",
                                               "ExecutionCompleted"]
    assert events[1]["FunctionName"] == "greet" and events[1]["Result"] == "Hello Cy"
    _, _, bare = await call("GET", f"/status/{iid}")
    # show_input=False is not sent by the SDK (it drops falsy options), so the API default (true) applies.
    assert bare["historyEvents"] is None and bare["input"] == {"name": "Cy"}
    _, _, missing = await call("GET", "/status/nobody-here")
    # The extension answers 404 with no body; the SDK then builds a status whose message is "" (as deployed).
    assert missing["exists"] is False and missing["message"] == ""


async def test_get_status_all_and_by(call, host):
    done = await start(call, "hello_sequence", {"name": "D"}, instance_id="by-done")
    waiting = await start(call, "wait_for_approval", instance_id="by-waiting")
    await wait_for(TaskHubClient(host.hub), done)
    await wait_for(TaskHubClient(host.hub), waiting, RuntimeStatus.RUNNING)
    _, _, everything = await call("GET", "/all")
    assert {s["instanceId"] for s in everything} == {"by-done", "by-waiting"}
    since = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat()
    _, _, running = await call("GET", "/by", params={"status": "Running", "from": since})
    assert [s["instanceId"] for s in running] == ["by-waiting"]
    _, _, prefixed = await call("GET", "/by", params={"prefix": "by-d"})
    assert [s["instanceId"] for s in prefixed] == ["by-done"]
    _, _, none = await call("GET", "/by", params={"to": "2000-01-01T00:00:00+00:00"})
    assert none == []


async def test_get_status_all_sees_one_page_of_100_as_when_deployed(call, host, caplog):
    """Deployed, the SDK's get_status_all() gets the extension's first page only (no top, token not followed:
    azure-functions-durable-python #580): the host answers the same, and warns with the way out."""
    from tests.test_cli_support import gather_limited, hostlike_instance

    await gather_limited([hostlike_instance(host.hub, f"many-{i:03d}", "Completed") for i in range(130)])
    with caplog.at_level(logging.WARNING, logger="funchost.webhooks"):
        status, _, everything = await call("GET", "/all")
    assert status == 200 and len(everything) == 100
    assert [s["instanceId"] for s in everything] == [f"many-{i:03d}" for i in range(100)]
    warnings = [r.getMessage() for r in caplog.records if r.name == "funchost.webhooks" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "got the first 100 instances" in warnings[0]
    assert "azure-functions-durable-python #580" in warnings[0] and "InstanceManager.instances()" in warnings[0]
    # A list that fits in one page is complete, and nothing is said about it.
    caplog.clear()
    _, _, few = await call("GET", "/by", params={"prefix": "many-00"})
    assert len(few) == 10 and not [r for r in caplog.records if r.name == "funchost.webhooks"]


async def test_wait_for_completion_both_outcomes(call):
    status, _, output = await call("POST", "/wait/hello_sequence?timeout_ms=10000", json={"name": "W"})
    assert status == 200 and output == ["Hello W", "Hello again"]
    status, headers, payload = await call("POST", "/wait/wait_for_approval?timeout_ms=600&interval_ms=200")
    assert status == 202 and headers["Location"] == payload["statusQueryGetUri"]


async def test_raise_event_and_terminate(call, host):
    iid = await start(call, "wait_for_approval", instance_id="ev-1")
    await wait_for(TaskHubClient(host.hub), iid, RuntimeStatus.RUNNING)
    _, _, ok = await call("POST", f"/raise/{iid}/approval", json={"by": "ops"})
    assert ok == {"ok": True}
    assert (await wait_for(TaskHubClient(host.hub), iid)).output == {"approved": {"by": "ops"}}
    status, _, gone = await call("POST", f"/raise/{iid}/approval", json=1)
    assert status == 409 and "is gone" in gone["error"]
    status, _, missing = await call("POST", "/raise/nobody/approval", json=1)
    assert status == 409 and "No instance with ID nobody found" in missing["error"]

    victim = await start(call, "wait_for_approval", instance_id="term-1")
    await wait_for(TaskHubClient(host.hub), victim, RuntimeStatus.RUNNING)
    assert (await call("POST", f"/terminate/{victim}?reason=enough"))[2] == {"ok": True}
    terminated = await wait_for(TaskHubClient(host.hub), victim)
    assert terminated.runtime_status == RuntimeStatus.TERMINATED and terminated.output == "enough"
    status, _, missing = await call("POST", "/terminate/nobody")
    assert status == 409 and "No instance with ID 'nobody' found" in missing["error"]


async def test_suspend_and_resume(call, host):
    iid = await start(call, "wait_for_approval", instance_id="sus-1")
    await wait_for(TaskHubClient(host.hub), iid, RuntimeStatus.RUNNING)
    assert (await call("POST", f"/steer/suspend/{iid}"))[2] == {"ok": True}
    await wait_for(TaskHubClient(host.hub), iid, RuntimeStatus.SUSPENDED)
    assert (await call("POST", f"/steer/resume/{iid}"))[2] == {"ok": True}
    await wait_for(TaskHubClient(host.hub), iid, RuntimeStatus.RUNNING)
    await call("POST", f"/raise/{iid}/approval", json=True)
    assert (await wait_for(TaskHubClient(host.hub), iid)).output == {"approved": True}


async def test_restart_and_rewind(call, host):
    first = await start(call, "hello_sequence", {"name": "R"}, instance_id="rs-1")
    await wait_for(TaskHubClient(host.hub), first)
    _, _, restarted = await call("POST", f"/steer/restart/{first}")
    # The SDK's restart() returns the answer's body; the extension answers with the check-status payload.
    payload = restarted["returned"]
    assert restarted["ok"] and payload["id"] != first and payload["statusQueryGetUri"].endswith(
        f"/instances/{payload['id']}?taskHub={host.hub_name}&connection=Storage")
    assert (await wait_for(TaskHubClient(host.hub), payload["id"])).output == ["Hello R", "Hello again"]
    _, _, same = await call("POST", f"/steer/restart/{first}?new=false")
    assert same["returned"]["id"] == first

    flaky = await start(call, "fails_once", instance_id="rw-1")
    assert (await wait_for(TaskHubClient(host.hub), flaky)).runtime_status == RuntimeStatus.FAILED
    assert (await call("POST", f"/steer/rewind/{flaky}?reason=try+again"))[2] == {"ok": True}
    rewound = await wait_for(TaskHubClient(host.hub), flaky, RuntimeStatus.COMPLETED)
    assert rewound.output == "recovered rw-1"
    status, _, refused = await call("POST", f"/steer/rewind/{flaky}")
    assert status == 409 and "only supported on failed" in refused["error"]


async def test_purge_one_and_by_filter(call, host):
    ids = [await start(call, "hello_sequence", {"name": str(i)}, instance_id=f"pg-{i}") for i in range(3)]
    for iid in ids:
        await wait_for(TaskHubClient(host.hub), iid)
    assert (await call("DELETE", "/purge/pg-0"))[2] == {"instancesDeleted": 1}
    assert (await call("DELETE", "/purge/pg-0"))[2] == {"instancesDeleted": 0}
    since = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat()
    _, _, purged = await call("DELETE", "/purge", params={"from": since, "status": "Completed"})
    assert purged == {"instancesDeleted": 2}
    _, _, again = await call("DELETE", "/purge", params={"from": since})
    assert again == {"instancesDeleted": 0}


async def test_http_management_payload(call, host):
    _, _, payload = await call("GET", "/payload/some-id")
    assert set(payload) == {"id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri",
                            "purgeHistoryDeleteUri", "restartPostUri", "suspendPostUri", "resumePostUri"}
    assert payload["id"] == "some-id"
    url = urlsplit(payload["statusQueryGetUri"])
    assert f"{url.scheme}://{url.netloc}" == host.base_url and url.path.endswith("/instances/some-id")
    assert payload["sendEventPostUri"].split("?")[0].endswith("/instances/some-id/raiseEvent/{eventName}")


async def test_webhook_start_and_wait_returns_the_output(host):
    base = host.webhook_base_url
    async with http() as s:
        async with s.post(f"{base}/orchestrators/hello_sequence?timeout=10&pollingInterval=0.1",
                          json={"name": "H"}) as r:
            assert r.status == 200 and await r.json() == ["Hello H", "Hello again"]
        async with s.post(f"{base}/orchestrators/fails_once/wf-1?timeout=10&pollingInterval=0.1") as r:
            failed = await r.json()
            assert r.status == 200 and failed["runtimeStatus"] == "Failed"  # the status body, as the extension
        async with s.get(f"{base}/instances/wf-1?showHistory=true&showHistoryOutput=true"
                         "&returnInternalServerErrorOnFailure=true") as r:
            body = await r.json()
            assert r.status == 500 and body["historyEvents"][-1]["EventType"] == "ExecutionCompleted"
            assert body["historyEvents"][1]["EventType"] == "TaskFailed"
