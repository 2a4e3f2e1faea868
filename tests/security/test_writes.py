"""Classes 1 and 7 at the storage level: no start leaves a message without a row, and no purge loses a run.

Faults and races are made real: a request hook makes Azure Storage refuse the Instances row write after
the start message was sent; a caller is cancelled mid-start; an instance is started again (a real start,
against real storage) between a purge's reads and its deletes.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from azure.core.exceptions import ServiceRequestError

from durable_mgmt.errors import ConcurrencyConflict, DurableError
from durable_mgmt.models import InstanceQuery, RuntimeStatus
from durable_mgmt.taskhub import TaskHub, TaskHubClient
from durable_mgmt.taskhub.names import escape_key
from tests.test_cli_support import hostlike_instance

from .support import REPO, send, serving, snapshot


@pytest.fixture(scope="module")
async def plain(connection_string):
    async with serving(REPO, connection_string, f"SecW{uuid.uuid4().hex[:10]}") as host:
        yield host


def _refuse_instances_writes(hub_name: str):
    def hook(request) -> None:
        http = request.http_request
        if http.method in ("POST", "PUT", "MERGE", "PATCH") and f"/{hub_name}Instances" in http.url:
            raise ServiceRequestError("injected: the Instances row write fails")
    return hook


async def _messages(hub: TaskHub) -> int:
    total = 0
    for name in hub.names.control_queues:
        total += (await hub.queue(name).get_queue_properties()).approximate_message_count
    return total


@pytest.mark.parametrize("input_size", [10, 70_000], ids=["small input", "input in a blob"])
async def test_a_start_whose_row_cannot_be_written_takes_its_message_back(plain, input_size):
    account = plain.hub.account.with_request_hook(_refuse_instances_writes(plain.hub_name))
    before = await snapshot(plain)
    async with TaskHub(account, plain.hub_name) as hub:
        with pytest.raises(DurableError, match="injected|unreachable"):
            await TaskHubClient(hub).start("E1_HelloSequence", "x" * input_size, instance_id=f"nofault-{input_size}")
    after = await snapshot(plain)
    assert after["instances"] == before["instances"]
    assert after["queues"] == before["queues"], "the start message was left behind without a row"
    assert after["history"] == before["history"]


async def test_a_cancelled_start_leaves_both_message_and_row_or_neither(plain):
    client = TaskHubClient(plain.hub)
    for i, delay in enumerate([0, 0.001, 0.005, 0.01, 0.02, 0.05]):
        iid = f"cancelled-{i}"
        before = await _messages(client.hub)
        task = asyncio.ensure_future(client.start("E1_HelloSequence", {"n": i}, instance_id=iid))
        await asyncio.sleep(delay)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0.5)  # a shielded start finishes after its caller was cancelled
        row = await client.hub.instances.get(iid)
        sent = await _messages(client.hub) - before
        assert (row is None and sent == 0) or (row is not None and sent == 1), (iid, row, sent)


async def test_every_refused_start_over_http_writes_nothing(plain):
    """The class-1 proof: after each refused start (every door of the host), storage holds nothing of it."""
    rpc = plain.rpc_base_url
    public = f"http://127.0.0.1:{plain.port}/runtime/webhooks/durabletask/"
    big = '"' + "x" * 70_000 + '"'
    for base in (public, rpc):
        for bad in ("%2E", "%2E%2E", ".", "..", "...", "a%2Fb", "a%5Cb", "%00", "@e@x", "a%0Ab", "x" * 300):
            before = await snapshot(plain)
            answer = await send("POST", _raw(f"{base}orchestrators/E1_HelloSequence/{bad}"), data=big,
                                headers={"Content-Type": "application/json"})
            assert answer.status == 400, (base, bad, answer.status, answer.text[:200])
            assert await snapshot(plain) == before, (base, bad)


def _raw(url: str):
    from yarl import URL

    return URL(url, encoded=True)


# --- class 7: purge checks ETags, so a restart in between keeps its new run ------------------------------

async def _restart_during(client: TaskHubClient, method: str, instance_id: str, monkeypatch) -> list[str]:
    """Make ``client.<method>`` start ``instance_id`` again (a real start) just before it runs."""
    original = getattr(client, method)
    restarted: list[str] = []

    async def with_restart(*args, **kwargs):
        # _delete_history_rows(instance_id, ...): restart just before that instance's deletes.
        if not restarted and (method == "_history_keys" or args[0] == instance_id):
            restarted.append(await client.start("E1_HelloSequence", "x" * 70_000, instance_id=instance_id))
        return await original(*args, **kwargs)

    monkeypatch.setattr(client, method, with_restart)
    return restarted


async def _assert_new_run_whole(client: TaskHubClient, instance_id: str, old_execution: str) -> None:
    row = await client.hub.instances.get(instance_id)
    assert row is not None, "the new run's row was purged"
    assert row["RuntimeStatus"] == RuntimeStatus.PENDING.value and row["ExecutionId"] != old_execution
    assert row["Input"] == json.dumps("x" * 70_000)  # its input blob is still there (restored from it)
    status = await client.get_status(instance_id)
    assert status.runtime_status == RuntimeStatus.PENDING


@pytest.mark.parametrize("moment", ["_delete_history_rows", "_history_keys"])
async def test_single_purge_never_loses_a_restart(plain, monkeypatch, moment):
    client = TaskHubClient(plain.hub)
    iid = f"race-one-{moment.strip('_')}"
    old = await hostlike_instance(plain.hub, iid, "Completed")
    await _restart_during(client, moment, iid, monkeypatch)
    with pytest.raises(ConcurrencyConflict, match="changed while it was being purged"):
        await client.purge_instance(iid)
    await _assert_new_run_whole(client, iid, old["ExecutionId"])


async def test_bulk_purge_skips_an_instance_started_again_and_purges_the_rest(plain, monkeypatch):
    client = TaskHubClient(plain.hub)
    olds = {iid: await hostlike_instance(plain.hub, iid, "Completed") for iid in ("bulk-race-a", "bulk-race-b")}
    await _restart_during(client, "_delete_history_rows", "bulk-race-a", monkeypatch)
    result = await client.purge(InstanceQuery(instance_id_prefix="bulk-race-", statuses=["Completed"]))
    assert result.instances_deleted == 1
    assert await client.hub.instances.get("bulk-race-b") is None
    assert await client.hub.history.rows("bulk-race-b") == []
    await _assert_new_run_whole(client, "bulk-race-a", olds["bulk-race-a"]["ExecutionId"])


async def test_purge_leaves_a_history_the_new_run_already_wrote(plain, monkeypatch):
    """Started again and the engine already checkpointed (the sentinel names the new execution): the
    listed instance is not the one stored any more, so nothing of it is deleted."""
    client = TaskHubClient(plain.hub)
    iid = "race-written"
    await hostlike_instance(plain.hub, iid, "Completed")
    original = client._history_keys

    async def after_engine_wrote(pks):
        new_id = await client.start("E1_HelloSequence", 1, instance_id=iid)
        row = await client.hub.instances.get(new_id)
        await client.hub.history.client.upsert_entity({"PartitionKey": escape_key(iid), "RowKey": "sentinel",
                                                       "ExecutionId": row["ExecutionId"]})
        return await original(pks)

    monkeypatch.setattr(client, "_history_keys", after_engine_wrote)
    before = len(await client.hub.history.rows(iid))
    result = await client.purge(InstanceQuery(instance_id_prefix=iid, statuses=["Completed"]))
    assert result.instances_deleted == 0
    assert len(await client.hub.history.rows(iid)) == before
    assert (await client.get_status(iid)).runtime_status == RuntimeStatus.PENDING
