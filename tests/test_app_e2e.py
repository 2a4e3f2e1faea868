"""The app (function_app.py) end to end, driven as a user would: queue messages, HTTP calls, the timer.

One in-process host serves the repository's own function_app.py on a fresh
task hub; every outcome is checked in the task hub itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest
from azure.data.tables.aio import TableClient
from azure.storage.queue import TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from durable_mgmt.errors import InstanceNotFound
from durable_mgmt.taskhub import TaskHubClient
from durable_mgmt.models import InstanceQuery, RuntimeStatus
from durable_mgmt.taskhub.names import escape_key
from funchost.host import LocalHost

from .engine_support import wait_for

REPO = Path(__file__).resolve().parent.parent
APP_SETTINGS = {"APPROVAL_RECORD_TABLE": "ApprovalRecords", "PURGE_OLDER_THAN_DAYS": "30",
                "PURGE_RUNTIME_STATUSES": "Completed"}


@pytest.fixture
def app_settings(monkeypatch):
    # The app reads its settings from the environment, as in Azure.
    for k, v in APP_SETTINGS.items():
        monkeypatch.setenv(k, v)
    return dict(APP_SETTINGS)


def new_host(connection_string: str, hub_name: str) -> LocalHost:
    import os

    return LocalHost(REPO, port=0, connection_string=connection_string, hub_name=hub_name,
                     environ=dict(os.environ), drain_timeout=2.0)


@pytest.fixture
async def host(connection_string, hub_name, app_settings):
    h = new_host(connection_string, hub_name)
    await h.start()
    yield h
    await h.stop()
    async with h.hub.__class__(h.hub.account, hub_name) as hub:
        await hub.delete()


async def send(connection_string: str, queue: str, text: str) -> None:
    """A message as the Azure portal and Storage Explorer send it: Base64 (host.json messageEncoding)."""
    async with QueueClient.from_connection_string(connection_string, queue,
                                                  message_encode_policy=TextBase64EncodePolicy()) as q:
        try:
            await q.create_queue()
        except Exception:
            pass
        await q.send_message(text)


async def queue_exists(queue: QueueClient) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        await queue.get_queue_properties()
        return True
    except ResourceNotFoundError:
        return False


async def eventually(check, timeout: float = 20.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            result = await check()
            if result:
                return result
        except (AssertionError, InstanceNotFound, LookupError) as e:
            last_error = e
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s: {last_error}")


async def instances_named(host: LocalHost, name: str):
    return [s async for s in TaskHubClient(host.hub).iter_instances(InstanceQuery(name=name, show_input=True))]


# --- start ----------------------------------------------------------------------


async def test_queue_start_runs_hello_world_and_publishes_its_webhooks(host, connection_string):
    who = f"Kim-{uuid.uuid4().hex[:6]}"
    await send(connection_string, "start-queue", who)

    async def started():
        return [s for s in await instances_named(host, "HelloWorld") if s.input == who] or None

    found = await eventually(started)
    status = await wait_for(TaskHubClient(host.hub), found[0].instance_id)
    assert status.runtime_status == RuntimeStatus.COMPLETED and status.output == f"Hello {who}!"
    async with TableClient.from_connection_string(connection_string, "HttpManagementPayloads") as table:
        row = await table.get_entity("payloads", status.instance_id)
    payload = json.loads(row["Payload"])
    assert payload["id"] == status.instance_id
    assert payload["statusQueryGetUri"].startswith(f"{host.webhook_base_url}/instances/{status.instance_id}?")
    assert f"taskHub={host.hub.name}" in payload["statusQueryGetUri"]


async def test_http_start_answers_202_with_check_status_links(host):
    async with aiohttp.ClientSession() as http:
        async with http.post(host.function_url("HttpStart").replace("{functionName}", "E1_HelloSequence")) as r:
            assert r.status == 202
            body = await r.json()
            assert r.headers["Location"] == body["statusQueryGetUri"]
        assert set(body) >= {"id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri",
                             "purgeHistoryDeleteUri"}
        status = await wait_for(TaskHubClient(host.hub), body["id"])
        assert status.output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
        async with http.get(body["statusQueryGetUri"]) as r:
            assert r.status == 200 and (await r.json())["runtimeStatus"] == "Completed"


async def test_http_start_of_unknown_orchestrator_is_a_clear_400(host):
    async with aiohttp.ClientSession() as http:
        async with http.post(host.function_url("HttpStart").replace("{functionName}", "NoSuchThing")) as r:
            assert r.status == 400
            assert "NoSuchThing" in (await r.json())["error"]


# --- wait for completion ---------------------------------------------------------


async def test_the_documents_wait_example_returns_the_output(host):
    url = host.function_url("HttpSyncStart").replace("{functionName}", "E1_HelloSequence")
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "?timeout=2&retryInterval=0.5") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("application/json")
            assert await r.json() == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


async def test_wait_times_out_with_202_and_the_check_status_payload(host):
    url = host.function_url("HttpSyncStart").replace("{functionName}", "SlowHelloSequence")
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "?timeout=1&retryInterval=0.5", json=3) as r:
            assert r.status == 202
            assert r.headers["Retry-After"] == "10"
            body = await r.json()
            assert r.headers["Location"] == body["statusQueryGetUri"]
    status = await wait_for(TaskHubClient(host.hub), body["id"], timeout=30)
    assert status.output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


@pytest.mark.parametrize("query,fragment", [
    ("timeout=abc", "timeout='abc' must be a number of seconds, from 0 to 3600"),
    ("timeout=1&retryInterval=5", "retryInterval (5) must not be longer than timeout (1)"),
    ("timeout=-1", "timeout='-1' must be a number of seconds"),
    ("timeout=1e9", "from 0 to 3600"),
    ("retryInterval=0", "retryInterval=0 is not allowed: polling happens at most every 0.1 s"),
])
async def test_wait_with_bad_parameters_is_a_400_and_starts_nothing(host, query, fragment):
    url = host.function_url("HttpSyncStart").replace("{functionName}", "E1_HelloSequence")
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}?{query}") as r:
            assert r.status == 400 and fragment in (await r.json())["error"]
    assert await instances_named(host, "E1_HelloSequence") == []


# --- query -------------------------------------------------------------------


async def test_get_all_status_follows_pages_over_250_instances(host):
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    sem = asyncio.Semaphore(32)

    async def one(i):
        async with sem:  # scheduled for later: they stay Pending and cost nothing to run
            await TaskHubClient(host.hub).start("E1_HelloSequence", instance_id=f"bulk-{i:03d}", scheduled_start=later)

    await asyncio.gather(*(one(i) for i in range(250)))
    async with aiohttp.ClientSession() as http:
        # Where the document puts it: an HTTP function without a route is served at /api/<FunctionName>.
        async with http.get(host.base_url + "/api/GetAllStatus?top=40") as r:
            assert r.status == 200
            listed = await r.json()
    assert sorted(s["instanceId"] for s in listed) == [f"bulk-{i:03d}" for i in range(250)]
    assert {s["runtimeStatus"] for s in listed} == {"Pending"}


async def test_query_status_filters(host):
    done = await TaskHubClient(host.hub).start("E1_HelloSequence", instance_id="q-done")
    await wait_for(TaskHubClient(host.hub), done)
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    await TaskHubClient(host.hub).start("E1_HelloSequence", instance_id="q-pending", scheduled_start=later)
    await TaskHubClient(host.hub).start("E1_HelloSequence", instance_id="other-pending", scheduled_start=later)
    base = host.base_url + "/api/QueryStatus"  # the document's URL (no route: /api/<FunctionName>)
    async with aiohttp.ClientSession() as http:
        async def ids(query):
            async with http.get(f"{base}?{query}") as r:
                assert r.status == 200, await r.text()
                return sorted(s["instanceId"] for s in await r.json())

        assert await ids("runtimeStatus=Completed") == ["q-done"]
        assert await ids("runtimeStatus=pending,completed&instanceIdPrefix=q-") == ["q-done", "q-pending"]
        assert await ids("instanceIdPrefix=other") == ["other-pending"]
        future = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert await ids(f"createdFrom={future}") == []
        assert len(await ids("createdFrom=2020-01-01T00:00:00Z&createdTo=" + future)) == 3
        for query, fragment in [("runtimeStatus=Finished", "Unknown runtime status 'Finished'"),
                                ("createdFrom=yesterday", "createdFrom='yesterday' is not an ISO 8601 time"),
                                ("top=many", "top='many' must be an integer from 1 to 1000"),
                                ("showInput=yes", "showInput='yes' is not a boolean")]:
            async with http.get(f"{base}?{query}") as r:
                assert r.status == 400 and fragment in (await r.json())["error"], query


async def test_get_status_queue_logs_the_status(host, connection_string, caplog):
    iid = await TaskHubClient(host.hub).start("E1_HelloSequence")
    await wait_for(TaskHubClient(host.hub), iid)
    caplog.set_level("INFO", logger="function_app")
    await send(connection_string, "check-status-queue", iid)

    async def logged():
        return any(f"Instance {iid} is Completed" in r.getMessage() for r in caplog.records)

    await eventually(logged)


# --- terminate, events, rewind, purge ---------------------------------------------


async def test_terminate_queue(host, connection_string):
    iid = await TaskHubClient(host.hub).start("ApprovalWorkflow")
    await wait_for(TaskHubClient(host.hub), iid, RuntimeStatus.RUNNING)
    await send(connection_string, "terminate-queue", iid)
    status = await wait_for(TaskHubClient(host.hub), iid)
    assert status.runtime_status == RuntimeStatus.TERMINATED and status.output == "It was time to be done."


async def test_raise_event_queue_bare_id_sends_my_event_1_2_3(host, connection_string):
    iid = await TaskHubClient(host.hub).start("ApprovalWorkflow")
    await wait_for(TaskHubClient(host.hub), iid, RuntimeStatus.RUNNING)
    await send(connection_string, "event-queue", iid)
    status = await wait_for(TaskHubClient(host.hub), iid)
    assert status.output == {"approved": True, "data": [1, 2, 3]} and status.custom_status == "Approved"


async def test_raise_event_queue_json_message(host, connection_string):
    iid = await TaskHubClient(host.hub).start("ApprovalWorkflow")
    await wait_for(TaskHubClient(host.hub), iid, RuntimeStatus.RUNNING)
    await send(connection_string, "event-queue",
               json.dumps({"instanceId": iid, "eventName": "MyEvent", "eventData": {"by": "Kim"}}))
    assert (await wait_for(TaskHubClient(host.hub), iid)).output == {"approved": True, "data": {"by": "Kim"}}


async def test_purge_queue_removes_one_instance(host, connection_string):
    iid = await TaskHubClient(host.hub).start("E1_HelloSequence")
    await wait_for(TaskHubClient(host.hub), iid)
    await send(connection_string, "purge-queue", iid)

    async def gone():
        return await host.hub.instances.get(iid) is None and await host.hub.history.rows(iid) == []

    await eventually(gone)


async def test_purge_timer_purges_old_completed_instances_only(host):
    old = datetime.now(timezone.utc) - timedelta(days=45)
    recent = datetime.now(timezone.utc) - timedelta(days=2)
    for iid, status, created in [("old-done", "Completed", old), ("old-failed", "Failed", old),
                                 ("new-done", "Completed", recent)]:
        await host.hub.instances.upsert({"PartitionKey": escape_key(iid), "RowKey": "", "Name": "E1_HelloSequence",
                                         "RuntimeStatus": status, "CreatedTime": created, "LastUpdatedTime": created})
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{host.base_url}/admin/functions/PurgeOldInstanceHistory", json={"input": ""}) as r:
            assert r.status == 202

    async def purged():
        return await host.hub.instances.get("old-done") is None

    await eventually(purged)
    assert await host.hub.instances.get("old-failed") is not None
    assert await host.hub.instances.get("new-done") is not None


async def test_bad_queue_messages_end_in_the_poison_queue_untouched(host, connection_string):
    bad = "this is not an instance id"
    await send(connection_string, "check-status-queue", bad)
    async with QueueClient.from_connection_string(connection_string, "check-status-queue-poison") as poison:
        async def poisoned():
            if not await queue_exists(poison):
                return False  # created by the host when the first message is moved there
            async for m in poison.receive_messages(visibility_timeout=1):
                if base64.b64decode(m.content).decode() == bad:
                    await poison.delete_message(m)
                    return True
            return False

        await eventually(poisoned, timeout=30)


async def test_rewind_story_fix_the_setting_and_rewind(connection_string, hub_name, app_settings, monkeypatch):
    """Approvals collected, recording fails on a wrong setting; fixed and rewound, it completes,
    and nobody is asked to approve again."""
    requests_queue = QueueClient.from_connection_string(connection_string, "approval-requests")
    monkeypatch.setenv("APPROVAL_RECORD_TABLE", "not a table!")
    host = new_host(connection_string, hub_name)
    await host.start()
    try:
        approvers = [f"a{uuid.uuid4().hex[:6]}", f"b{uuid.uuid4().hex[:6]}"]
        iid = await TaskHubClient(host.hub).start("ApprovalWithRecord", approvers)
        await wait_for(TaskHubClient(host.hub), iid, RuntimeStatus.RUNNING)
        await send(connection_string, "event-queue", json.dumps({"instanceId": iid, "eventData": "approved"}))
        failed = await wait_for(TaskHubClient(host.hub), iid)
        assert failed.runtime_status == RuntimeStatus.FAILED
        assert "APPROVAL_RECORD_TABLE is not a valid table name" in failed.output
        assert "not a table!" not in failed.output  # setting values never go into messages
    finally:
        await host.stop()
    # The administrator fixes the setting (the app restarts, as in Azure) and rewinds.
    monkeypatch.setenv("APPROVAL_RECORD_TABLE", "ApprovalRecords")
    host = new_host(connection_string, hub_name)
    await host.start()
    try:
        await send(connection_string, "rewind-queue", iid)
        done = await wait_for(TaskHubClient(host.hub), iid, RuntimeStatus.COMPLETED, timeout=30)
        assert done.output == {"decision": "approved", "recordedIn": "ApprovalRecords"}
        async with TableClient.from_connection_string(connection_string, "ApprovalRecords") as table:
            row = await table.get_entity("approvals", iid)
        assert json.loads(row["Decision"]) == "approved"
        asked = []
        async for m in requests_queue.receive_messages(max_messages=32, visibility_timeout=1):
            asked.append(json.loads(base64.b64decode(m.content))["approver"])
        assert sorted(a for a in asked if a in approvers) == sorted(approvers)  # once each, not twice
    finally:
        await host.stop()
        await requests_queue.close()
        async with host.hub.__class__(host.hub.account, hub_name) as hub:
            await hub.delete()
