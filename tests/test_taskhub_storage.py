"""Round trips of the task hub layer against a real Azurite."""

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest

from durable_mgmt.errors import (InstanceAlreadyExists, InstanceNotFailed, InstanceNotFound, InstanceNotTerminal,
                                 InvalidFilter, InvalidInput, InvalidInstanceId, TaskHubNotFound)
from durable_mgmt.models import InstanceQuery, RuntimeStatus
from durable_mgmt.taskhub import TaskHub, TaskHubClient
from durable_mgmt.taskhub.events import EventType, OrchestrationStatus, event, execution_started
from durable_mgmt.taskhub.history import History
from durable_mgmt.taskhub.largevalues import blob_property_name
from durable_mgmt.taskhub.messages import TaskMessage
from durable_mgmt.taskhub.names import escape_key

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


async def put_instance(hub, iid, status="Completed", created=T0, name="Orch", history_events=0, **extra):
    row = {"PartitionKey": escape_key(iid), "RowKey": "", "Name": name, "RuntimeStatus": status,
           "CreatedTime": created, "LastUpdatedTime": created, "ExecutionId": "e" + iid[-8:], "Input": '"in"',
           **extra}
    await hub.instances.upsert(row)
    if history_events:
        h = History(iid)
        evs = [execution_started(iid, row["ExecutionId"], name, '"in"')] + [
            event(EventType.TaskCompleted, -1, TaskScheduledId=i, Result=f'"{i}"') for i in range(history_events - 1)]
        await hub.history.append(h, evs, row["ExecutionId"])


async def gather_limited(coros, limit=32):
    sem = asyncio.Semaphore(limit)

    async def run(c):
        async with sem:
            return await c

    return await asyncio.gather(*(run(c) for c in coros))


async def queue_messages(hub, queue):
    out = []
    async for m in queue.receive_messages(messages_per_page=32, visibility_timeout=1):
        out.append(await hub.large.decode_message(m.content))
    return out


async def test_start_writes_message_and_pending_row(hub, client):
    iid = await client.start("HelloWorld", {"city": "Tokyo"})
    assert len(iid) == 32 and int(iid, 16) >= 0
    row = await hub.instances.get(iid)
    assert row["RuntimeStatus"] == "Pending" and row["Name"] == "HelloWorld"
    assert json.loads(row["Input"]) == {"city": "Tokyo"}
    assert row["TaskHubName"] == hub.name and row["Generation"] == 0
    msgs = await queue_messages(hub, hub.control_queue_for(iid))
    assert [m.event.type for m in msgs] == [EventType.ExecutionStarted]
    started = msgs[0]
    assert started.instance_id == iid and started.execution_id == row["ExecutionId"]
    assert started.event.name == "HelloWorld" and started.event.input == row["Input"]


async def test_large_input_goes_to_a_blob_and_comes_back(hub, client):
    big = "x" * 200_000  # 200 KB: over the 60 KiB table limit and the 45 KB message limit
    iid = await client.start("Big", big, instance_id="big-one")
    raw = await hub.instances.client.get_entity(escape_key(iid), "")
    assert raw["Input"].startswith("http") and raw["Input"].endswith(".json.gz")
    assert (await client.get_status(iid)).input == big
    msg = (await queue_messages(hub, hub.control_queue_for(iid)))[0]
    assert msg.compressed_blob_name and msg.event.input == json.dumps(big)


async def test_scheduled_start_is_invisible_until_due(hub, client):
    iid = await client.start("Later", None, scheduled_start=datetime.now(timezone.utc) + timedelta(seconds=30))
    assert await queue_messages(hub, hub.control_queue_for(iid)) == []
    status = await client.get_status(iid)
    assert status.scheduled_start_time is not None and status.runtime_status == RuntimeStatus.PENDING


async def test_history_of_250_events_spans_batches_and_reads_back(hub):
    iid = "long-history"
    h = History(iid)
    evs = [execution_started(iid, "exec1", "Long", None)]
    evs += [event(EventType.TaskScheduled, i, Name="Act", Input=f'"{i}"') for i in range(249)]
    await hub.history.append(h, evs[:120], "exec1")
    etag_after_first = h.etag
    await hub.history.append(h, evs[120:], "exec1")
    assert h.etag != etag_after_first
    back = await hub.history.read(iid)
    assert back.execution_id == "exec1" and len(back.events) == 250
    assert [e.event_id for e in back.events[1:]] == list(range(249))
    rows = await hub.history.rows(iid)
    assert rows[-1]["RowKey"] == "sentinel" and rows[-1]["IsCheckpointComplete"] is True
    assert rows[249]["RowKey"] == "00000000000000F9" and rows[1]["EventType"] == "TaskScheduled"
    assert isinstance(rows[0]["_Timestamp"], datetime)


async def test_history_etag_conflict_is_a_specific_error(hub):
    from durable_mgmt.errors import ConcurrencyConflict

    iid = "contended"
    await hub.history.append(History(iid), [execution_started(iid, "x1", "N", None)], "x1")
    a = await hub.history.read(iid)
    b = await hub.history.read(iid)
    await hub.history.append(a, [event(EventType.OrchestratorStarted)], "x1")
    with pytest.raises(ConcurrencyConflict):
        await hub.history.append(b, [event(EventType.OrchestratorStarted)], "x1")
    with pytest.raises(ConcurrencyConflict):  # a second first-writer also loses (409 on the sentinel insert)
        await hub.history.append(History(iid), [execution_started(iid, "x2", "N", None)], "x2")
    assert len((await hub.history.read(iid)).events) == 2


async def test_reader_stops_at_an_older_execution(hub):
    iid = "can"
    await hub.history.append(History(iid), [execution_started(iid, "old", "N", None)] + [
        event(EventType.TimerCreated, i, FireAt=T0) for i in range(5)], "old")
    h = await hub.history.read(iid)
    h.events = []  # ContinueAsNew rewrites from row 0 with a new execution id
    await hub.history.append(h, [execution_started(iid, "new", "N", None), event(EventType.OrchestratorStarted)], "new")
    back = await hub.history.read(iid)
    assert back.execution_id == "new" and len(back.events) == 2


async def test_large_history_property_uses_blob_name_column(hub):
    iid = "bigresult"
    big = json.dumps("y" * 100_000)
    await hub.history.append(History(iid), [execution_started(iid, "e", "N", None),
                                            event(EventType.TaskCompleted, -1, TaskScheduledId=0, Result=big)], "e")
    rows = await hub.history.rows(iid)
    assert rows[1]["Result"] == "" and rows[1][blob_property_name("Result")].startswith(f"{iid}/history-0000000000000001-TaskCompleted-")
    assert (await hub.history.read(iid)).events[1].result == big


async def test_paging_and_filters_over_2500_instances(hub, client):
    ids = []
    for i in range(2500):
        status = ["Completed", "Failed", "Running", "Terminated", "Pending"][i % 5]
        created = T0 + timedelta(minutes=i)
        iid = f"{'job' if i % 2 else 'task'}-{i:05d}"
        ids.append((iid, status, created, "OrchA" if i % 3 else "OrchB"))
    await gather_limited(put_instance(hub, iid, status, created, name) for iid, status, created, name in ids)

    async def all_ids(q):
        seen, token, pages = [], None, 0
        while True:
            page = await client.query(InstanceQuery(**q, page_size=300, continuation_token=token))
            assert len(page) <= 300
            seen += [s.instance_id for s in page]
            pages += 1
            token = page.continuation_token
            if not token:
                return seen, pages

    everything, pages = await all_ids({})
    assert sorted(everything) == sorted(i for i, *_ in ids) and pages >= 9
    completed, _ = await all_ids({"statuses": ["completed", "FAILED"]})
    assert sorted(completed) == sorted(i for i, s, *_ in ids if s in ("Completed", "Failed"))
    window, _ = await all_ids({"created_from": T0 + timedelta(minutes=100), "created_to": T0 + timedelta(minutes=199)})
    assert len(window) == 100
    jobs, _ = await all_ids({"instance_id_prefix": "job-"})
    assert len(jobs) == 1250 and all(j.startswith("job-") for j in jobs)
    named, _ = await all_ids({"name": "OrchB"})
    assert len(named) == len([1 for *_, n in ids if n == "OrchB"])
    combo, _ = await all_ids({"statuses": ["Running"], "instance_id_prefix": "task-", "name": "OrchA"})
    assert sorted(combo) == sorted(i for i, s, c, n in ids if s == "Running" and i.startswith("task-") and n == "OrchA")
    counts = await client.count()
    assert counts[RuntimeStatus.COMPLETED] == 500 and sum(counts.values()) == 2500
    listed = [s async for s in client.iter_instances(InstanceQuery(statuses=["Terminated"], page_size=1000))]
    assert len(listed) == 500


async def test_quote_in_prefix_or_name_cannot_change_the_query(hub, client):
    await put_instance(hub, "it's-mine")
    await put_instance(hub, "other")
    page = await client.query(InstanceQuery(instance_id_prefix="it's"))
    assert [s.instance_id for s in page] == ["it's-mine"]
    page = await client.query(InstanceQuery(instance_id_prefix="x' or PartitionKey ne '"))
    assert list(page) == []
    page = await client.query(InstanceQuery(name="Orch' or Name ne 'x"))
    assert list(page) == []
    assert (await client.get_status("it's-mine")).instance_id == "it's-mine"


async def test_purge_by_filter_deletes_1000_instances_history_and_blobs(hub, client):
    old = [f"old-{i:04d}" for i in range(1000)]
    keep = [f"keep-{i:03d}" for i in range(30)]
    await gather_limited([put_instance(hub, i, "Completed", T0, history_events=3) for i in old] +
                         [put_instance(hub, i, "Completed", T0 + timedelta(days=40), history_events=3) for i in keep[:10]] +
                         [put_instance(hub, i, "Running", T0, history_events=3) for i in keep[10:20]] +
                         [put_instance(hub, i, "Failed", T0, history_events=3) for i in keep[20:]])
    await hub.large.upload("old-0007/history-0000000000000001-TaskCompleted-0000ABCD-Result.json.gz", "big")
    await hub.large.upload("keep-000/history-0000000000000001-TaskCompleted-0000ABCD-Result.json.gz", "big")
    seen = []
    result = await client.purge(InstanceQuery(created_from=T0 - timedelta(days=1), created_to=T0 + timedelta(days=1),
                                              statuses=["Completed"]), progress=seen.append)
    assert result.instances_deleted == 1000 and result.rows_deleted == 1000 * 4 and result.blobs_deleted == 1
    assert seen and seen[-1].instances_deleted == 1000
    for iid in old[:5] + old[-5:]:
        assert await hub.instances.get(iid) is None and await hub.history.rows(iid) == []
    left = {s.instance_id async for s in client.iter_instances(InstanceQuery(page_size=1000))}
    assert left == set(keep)
    assert len(await hub.history.rows("keep-015")) == 4
    blobs = [b.name async for b in hub.container(hub.names.large_messages_container).list_blobs()]
    assert blobs == ["keep-000/history-0000000000000001-TaskCompleted-0000ABCD-Result.json.gz"]


async def test_purge_refuses_non_terminal_statuses(hub, client):
    await put_instance(hub, "running-one", "Running")
    with pytest.raises(InvalidFilter, match="Running"):
        await client.purge(InstanceQuery(statuses=["Running"]))
    with pytest.raises(InstanceNotTerminal, match="only Completed, Failed, Terminated or Canceled"):
        await client.purge_instance("running-one")
    assert (await client.get_status("running-one")).runtime_status == RuntimeStatus.RUNNING


async def test_purge_one_instance(hub, client):
    await put_instance(hub, "done", "Terminated", history_events=4)
    result = await client.purge_instance("done")
    assert (result.instances_deleted, result.rows_deleted) == (1, 5)
    with pytest.raises(InstanceNotFound):
        await client.get_status("done")


async def test_terminate_raise_suspend_resume_send_messages(hub, client):
    await put_instance(hub, "live", "Running")
    await client.raise_event("live", "MyEvent", [1, 2, 3])
    await client.suspend("live", "pause")
    await client.resume("live", "go")
    await client.terminate("live", "Found a bug")
    msgs = await queue_messages(hub, hub.control_queue_for("live"))
    assert [m.event.type for m in msgs] == [EventType.EventRaised, EventType.ExecutionSuspended,
                                            EventType.ExecutionResumed, EventType.ExecutionTerminated]
    assert msgs[0].event.name == "MyEvent" and msgs[0].event.input == "[1,2,3]" and msgs[0].execution_id is None
    assert msgs[3].event.input == "Found a bug"


async def test_operations_on_finished_or_unknown_instances_are_refused(hub, client):
    from durable_mgmt.errors import InstanceNotRunning

    await put_instance(hub, "finished", "Completed")
    for op in (client.terminate("finished", "x"), client.raise_event("finished", "E", 1), client.suspend("finished")):
        with pytest.raises(InstanceNotRunning, match="already Completed"):
            await op
    with pytest.raises(InstanceNotFound, match="'nobody'"):
        await client.terminate("nobody", "x")
    assert await queue_messages(hub, hub.control_queue_for("finished")) == []


async def test_starting_an_active_id_is_refused_and_changes_nothing(hub, client):
    iid = await client.start("HelloWorld", 1, instance_id="singleton")
    before = await hub.instances.get(iid)
    with pytest.raises(InstanceAlreadyExists, match="already Pending"):
        await client.start("HelloWorld", 2, instance_id="singleton")
    after = await hub.instances.get(iid)
    assert after["ExecutionId"] == before["ExecutionId"] and after["Input"] == "1"
    assert len(await queue_messages(hub, hub.control_queue_for(iid))) == 1


async def test_restarting_a_finished_id_is_a_new_generation(hub, client):
    await put_instance(hub, "again", "Completed", Generation=0)
    await client.start("Orch", "x", instance_id="again")
    row = await hub.instances.get("again")
    assert row["RuntimeStatus"] == "Pending" and row["Generation"] == 1 and "Output" not in row


@pytest.mark.parametrize("bad", ["", "a/b", "@entity@key", "x" * 300])
async def test_bad_instance_ids_write_nothing(hub, client, bad):
    with pytest.raises(InvalidInstanceId):
        await client.start("Orch", 1, instance_id=bad)
    assert list(await client.query(InstanceQuery())) == []


async def test_rewind_rewrites_failed_rows_and_sends_a_replay_message(hub, client):
    iid = "failed-one"
    await put_instance(hub, iid, "Failed")
    h = History(iid)
    await hub.history.append(h, [
        execution_started(iid, "ex", "Orch", None), event(EventType.OrchestratorStarted),
        event(EventType.TaskScheduled, 0, Name="Ok"), event(EventType.TaskCompleted, -1, TaskScheduledId=0, Result="1"),
        event(EventType.TaskScheduled, 1, Name="Bad"),
        event(EventType.TaskFailed, -1, TaskScheduledId=1, Reason="boom", Details="trace"),
        event(EventType.ExecutionCompleted, 2, OrchestrationStatus=OrchestrationStatus.Failed, Result="boom"),
    ], "ex")
    assert await client.rewind(iid, "fixed") == [iid]
    rows = await hub.history.rows(iid)
    types = [r["EventType"] for r in rows if r["RowKey"] != "sentinel"]
    assert types == ["ExecutionStarted", "OrchestratorStarted", "TaskScheduled", "TaskCompleted",
                     "GenericEvent", "GenericEvent", "GenericEvent"]
    assert rows[4]["Reason"] == "Rewound: TaskScheduled" and rows[5]["Reason"] == "Rewound: TaskFailed"
    assert (await client.get_status(iid)).runtime_status == RuntimeStatus.PENDING
    msgs = await queue_messages(hub, hub.control_queue_for(iid))
    assert [(m.event.type, m.event.get("Data")) for m in msgs] == [(EventType.GenericEvent, "fixed")]


async def test_rewind_recurses_into_every_child_its_parent_saw_fail(hub, client):
    """AzureTableTrackingStore.RewindHistoryAsync rewinds the child of every SubOrchestrationInstanceFailed row,
    whatever the child's own status; a Terminated child sends its parent that event too
    (TaskOrchestrationDispatcher: Failed or Terminated -> SubOrchestrationInstanceFailedEvent)."""
    parent, child = "rw-parent", "rw-child"
    await put_instance(hub, parent, "Failed")
    await put_instance(hub, child, "Terminated")
    await hub.history.append(History(parent), [
        execution_started(parent, "ex", "Parent", None), event(EventType.OrchestratorStarted),
        event(EventType.SubOrchestrationInstanceCreated, 0, Name="Child", InstanceId=child),
        event(EventType.SubOrchestrationInstanceFailed, -1, TaskScheduledId=0, Reason="terminated"),
        event(EventType.ExecutionCompleted, 1, OrchestrationStatus=OrchestrationStatus.Failed, Result="x"),
    ], "ex")
    await hub.history.append(History(child), [
        execution_started(child, "cx", "Child", None), event(EventType.OrchestratorStarted),
        event(EventType.ExecutionTerminated, -1, Input="stop"),
        event(EventType.ExecutionCompleted, 0, OrchestrationStatus=OrchestrationStatus.Terminated, Result="stop"),
    ], "cx")
    assert await client.rewind(parent, "fixed") == [child]
    assert (await client.get_status(child)).runtime_status == RuntimeStatus.PENDING
    assert (await client.get_status(parent)).runtime_status == RuntimeStatus.PENDING
    assert [m.instance_id for m in await queue_messages(hub, hub.control_queue_for(child))] == [child]


async def test_rewind_of_a_completed_instance_is_refused(hub, client):
    await put_instance(hub, "fine", "Completed")
    with pytest.raises(InstanceNotFailed, match="only Failed instances can be rewound"):
        await client.rewind("fine", "x")
    assert (await client.get_status("fine")).runtime_status == RuntimeStatus.COMPLETED


async def test_history_view_folds_scheduled_events(hub, client):
    iid = "viewed"
    await put_instance(hub, iid, "Completed")
    await hub.history.append(History(iid), [
        execution_started(iid, "ex", "Orch", '"in"'), event(EventType.OrchestratorStarted),
        event(EventType.TaskScheduled, 0, Name="E1_SayHello", Input='"Tokyo"'),
        event(EventType.OrchestratorCompleted),
        event(EventType.TaskCompleted, -1, TaskScheduledId=0, Result='"Hello Tokyo!"'),
        event(EventType.ExecutionCompleted, 1, OrchestrationStatus=OrchestrationStatus.Completed, Result='["x"]'),
    ], "ex")
    s = await client.get_status(iid, show_history=True, show_history_output=True)
    assert [e["EventType"] for e in s.history] == ["ExecutionStarted", "TaskCompleted", "ExecutionCompleted"]
    assert s.history[0]["FunctionName"] == "Orch"
    assert s.history[1]["FunctionName"] == "E1_SayHello" and s.history[1]["Result"] == "Hello Tokyo!"
    assert "ScheduledTime" in s.history[1] and "TaskScheduledId" not in s.history[1]
    assert s.history[2]["OrchestrationStatus"] == "Completed" and s.history[2]["Result"] == ["x"]
    quiet = await client.get_status(iid, show_history=True, show_history_output=False, show_input=False)
    assert "Result" not in quiet.history[1] and "Input" not in quiet.history[0]


async def test_hub_lifecycle_create_and_delete_everything(account, hub_name):
    async with TaskHub(account, hub_name, partition_count=3) as hub:
        assert not await hub.exists()
        with pytest.raises(TaskHubNotFound, match=hub_name):
            await TaskHubClient(hub).get_status("x")
        await hub.create_if_not_exists()
        # Laid out as DurableTask.AzureStorage 2.x (TablePartitionManager): {Hub}Partitions rows, no taskhub.json.
        assert await hub.read_info() is None
        assert (hub.layout.management, hub.layout.partition_count) == ("table", 3)
        await TaskHubClient(hub).start("Orch", "x" * 100_000)
    # Reopened with another default, the recorded partition count wins.
    async with TaskHub(account, hub_name, partition_count=4) as hub:
        assert hub.names.partition_count == 3
        await hub.delete()
    async with TaskHub(account, hub_name) as hub:
        tables = [t.name async for t in hub.table_service.list_tables() if t.name.startswith(hub_name)]
        queues = [q.name async for q in hub._queues.list_queues(name_starts_with=hub_name.lower())]
        containers = [c.name async for c in hub._blobs.list_containers(name_starts_with=hub_name.lower())]
        assert (tables, queues, containers) == ([], [], [])


async def test_bad_query_values_are_specific_errors():
    with pytest.raises(InvalidFilter, match="Unknown runtime status 'Done'"):
        InstanceQuery(statuses=["Done"])
    with pytest.raises(InvalidFilter, match="from 1 to 1000"):
        InstanceQuery(page_size=5000)
    with pytest.raises(InvalidFilter, match="after createdTimeTo"):
        InstanceQuery(created_from=T0 + timedelta(days=1), created_to=T0)


async def test_bad_continuation_token(hub, client):
    with pytest.raises(InvalidFilter, match="continuation token"):
        await client.query(InstanceQuery(continuation_token="not-a-token!"))


async def test_empty_names_are_refused(hub, client):
    with pytest.raises(InvalidInput, match="orchestrator name"):
        await client.start("  ")
    await put_instance(hub, "r", "Running")
    with pytest.raises(InvalidInput, match="event name"):
        await client.raise_event("r", "", 1)
