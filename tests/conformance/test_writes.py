"""What our writers put in a task hub, checked against the provider's reading rules (validator.py).

One test per point of issue 10 (items 1-5, 7, 8), each naming the DurableTask.AzureStorage /
DurableTask.Core source it follows; each failed before the fix.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from durable_mgmt.errors import InvalidInput
from durable_mgmt.taskhub.events import EventType, event
from durable_mgmt.taskhub import messages
from durable_mgmt.taskhub.messages import TaskMessage
from funchost.engine import orchestrations
from funchost.engine.episode import InstanceState, run_episode

from . import provider as p
from .validator import (EVENT_CLASSES, REAL_TYPES, check, check_queues, check_rows, decode_body, problems_message,
                        queue_messages)


async def _messages(hub) -> list[dict]:
    return await check_queues(hub.account, hub.name, hub.names.partition_count)


# --- 1. Sender ------------------------------------------------------------------------------------------------


async def test_client_messages_carry_the_empty_sender(client, hub):
    """MessageData.cs: Sender is required (the constructor throws on null) and written without $type;
    AzureStorageOrchestrationService.SendTaskOrchestrationMessageAsync sends EmptySourceInstance
    (InstanceId = ExecutionId = ""); OrchestrationSession.IsOutOfOrderMessage reads Sender.InstanceId of every
    EventRaised, so without it a .NET worker throws and abandons the session again and again."""
    iid = await client.start("HelloSequence", instance_id="sender-1")
    await client.raise_event(iid, "Approval", True)
    await client.terminate(iid, "done")
    datas = await _messages(hub)  # validates every message (Sender among the rules)
    assert len(datas) == 3
    assert [d["Sender"] for d in datas] == [{"InstanceId": "", "ExecutionId": ""}] * 3


# --- 2. real class names ---------------------------------------------------------------------------------------


def test_every_event_type_we_write_names_a_real_class():
    """src/DurableTask.Core/History/*.cs: every class is {EventType}Event except GenericEvent (GenericEvent.cs);
    MessageManager's TypeNameSerializationBinder binds DurableTask.* names with throwOnError: true."""
    for et in EventType:
        if et == EventType.ExecutionFailed:
            assert int(et) not in EVENT_CLASSES  # no class: failures are ExecutionCompletedEvent
            continue
        assert et.dotnet_type in REAL_TYPES, et
        assert et.dotnet_type == f"DurableTask.Core.History.{EVENT_CLASSES[int(et)]}"
    body = TaskMessage(event(EventType.GenericEvent, Data="why"), "x", None).encode()
    assert json.loads(body)["TaskMessage"]["Event"]["$type"] == "DurableTask.Core.History.GenericEvent"


# --- 3. time-to-live ------------------------------------------------------------------------------------------


async def test_every_send_never_expires(client, hub):
    """Storage/Queue.cs AddMessageAsync: TimeSpan.FromSeconds(-1), "Infinite time to live"; the service default
    (7 days) silently drops a start sent while the workers are down for a week."""
    await client.start("HelloSequence", instance_id="ttl-1")
    [(queue, m)] = await queue_messages(hub.account, hub.name, hub.names.partition_count)
    assert m.expires_on.year == 9999, m.expires_on


# --- 4. SequenceNumber ----------------------------------------------------------------------------------------


async def test_sequence_numbers_count_up_per_process(client, hub):
    """Messaging/TaskHubQueue.cs: data.SequenceNumber = Interlocked.Increment(ref messageSequenceNumber) (static:
    one counter per process), the tie-breaker of ControlQueue.MessageOrderingComparer."""
    iid = await client.start("WaitForApproval", instance_id="seq-1")
    for i in range(3):
        await client.raise_event(iid, f"E{i}", i)
    datas = await _messages(hub)
    seqs = {d["TaskMessage"]["Event"]["Name"]: d["SequenceNumber"] for d in datas}
    assert seqs["WaitForApproval"] < seqs["E0"] < seqs["E1"] < seqs["E2"], seqs
    assert all(d["TaskMessage"]["SequenceNumber"] == 0 for d in datas)  # Core's TaskMessage member is left alone


def test_messages_are_applied_in_the_providers_order():
    """ControlQueue.MessageOrderingComparer: queue insertion time (whole seconds), then SequenceNumber."""
    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    a, b, c = (TaskMessage(event(EventType.EventRaised, Name=n, Input="1"), "i", None) for n in "abc")
    a.inserted_on, a.sequence_number = t, 9
    b.inserted_on, b.sequence_number = t, 3
    c.inserted_on, c.sequence_number = t - timedelta(seconds=1), 20
    assert [m.event.name for m in messages.order_messages([a, b, c])] == ["c", "b", "a"]
    assert messages.next_sequence_number() < messages.next_sequence_number()


# --- 5. large start input ----------------------------------------------------------------------------------------


async def test_large_start_input_is_the_started_message_blob(client, hub):
    """AzureStorageOrchestrationService.CreateTaskOrchestrationAsync: a start message over 45 KB goes to a blob
    and the Instances row's Input is that blob's URL; AzureTableTrackingStore.ConvertFromAsync returns the
    message's ExecutionStarted Input (not the envelope). Restart must then start with the real input."""
    big = {"text": "z" * 60_000}
    iid = await client.start("HelloSequence", big, instance_id="big-1")
    row = await hub.instances.client.get_entity("big-1", "")
    assert row["Input"].endswith("/big-1/message-" + row["Input"].split("/message-")[1])
    assert row["Input"].endswith("-ExecutionStarted.json.gz")
    assert (await client.get_status(iid)).input == big
    again = await client.restart(iid)
    assert (await client.get_status(again)).input == big
    await _messages(hub)  # both starts: wrapper + blob, as MessageManager writes them


# --- 7. scheduled starts and timers ------------------------------------------------------------------------------


async def test_a_start_beyond_the_queue_limit_is_refused_before_any_write(client, hub):
    """TaskHubQueue.GetVisibilityDelay sends the whole delay (no cap; the service refuses more than 7 days) and
    a .NET worker runs an ExecutionStarted as soon as it sees it (no re-defer), so a start further ahead can only
    be refused; before, it was capped to 6 days and would have run a day early on a .NET worker."""
    later = datetime.now(timezone.utc) + timedelta(days=8)
    with pytest.raises(InvalidInput, match="at most 7 days"):
        await client.start("HelloSequence", instance_id="late-1", scheduled_start=later)
    assert await hub.instances.get("late-1") is None
    assert await queue_messages(hub.account, hub.name, hub.names.partition_count) == []
    soon = datetime.now(timezone.utc) + timedelta(days=6, hours=23)
    await client.start("HelloSequence", instance_id="late-2", scheduled_start=soon)
    assert (await client.get_status("late-2")).scheduled_start_time is not None
    await check_rows(hub.account, hub.name, "late-2", with_history=False)


def test_long_timers_are_split_into_hops_a_worker_fires_on_time(tmp_path, monkeypatch):
    """AzureStorageDurabilityProvider: MaximumDelayTime 6 days, LongRunningTimerIntervalLength 3 days, passed to
    the SDK by OrchestrationTriggerAttributeBindingProvider.OrchestrationContextToString; the SDK then creates
    timers of 3 days while more than 6 remain, so no TimerFired message waits longer than a queue allows and a .NET worker (which
    applies a TimerFired when it arrives) fires each one on time."""
    from tests.test_engine_replay import APP, World
    from funchost.loader import load_app

    monkeypatch.setenv("ENGINE_TEST_STATE", str(tmp_path))
    world = World(load_app(APP))
    start = world.now
    world.start("TimerThenHello", 10 * 24 * 3600)
    world.run()
    assert world.status("i1") == "Completed"
    events = world.states["i1"].events
    created = [e for e in events if e.type == EventType.TimerCreated]
    # Hops of 3 days while more than 6 remain, then the rest (4 days) as one: 3 + 3 + 4.
    fire_times = [start] + [e.get("FireAt") for e in created]
    hops = [b - a for a, b in zip(fire_times, fire_times[1:])]
    assert len(created) == 3 and all(h <= timedelta(days=6) for h in hops), hops
    assert created[-1].get("FireAt") >= start + timedelta(days=10)


# --- engine messages ------------------------------------------------------------------------------------------


def test_what_an_episode_sends_is_what_a_worker_reads(tmp_path, monkeypatch):
    """Messages an orchestration sends carry the session's Sender and Episode (TaskHubQueue.AddMessageAsync with
    the OrchestrationSession: Utils.GetEpisodeNumber = OrchestratorStarted count)."""
    from durable_mgmt.taskhub.events import execution_started
    from tests.test_engine_replay import APP, World
    from funchost.loader import load_app

    monkeypatch.setenv("ENGINE_TEST_STATE", str(tmp_path))
    world = World(load_app(APP))
    sent = []
    for name in ("ParentOfHello", "HelloSequence"):  # a sub-orchestration start, an activity
        start = TaskMessage(execution_started("e-1", "x1", name, None, timestamp=world.now), "e-1", "x1")
        out = run_episode(InstanceState("e-1"), [start], world.invoke, now=world.now, row_execution_id="x1",
                          row_status="Pending")
        orchestrations._stamp_sender("e-1", out, [])
        sent += out.to_activities + out.to_orchestrations
    assert [m.event.type for m in sent] == [EventType.ExecutionStarted, EventType.TaskScheduled]
    for m in sent:
        m.sequence_number = messages.next_sequence_number()
        queue = p.workitem_queue("H") if m.event.type == EventType.TaskScheduled else p.control_queue(
            "H", m.instance_id, 6)
        check(problems_message(m.encode(), queue=queue, hub="H", partition_count=6), m.event.type.name)
        data = decode_body(m.encode())
        assert data["Sender"] == {"InstanceId": "e-1", "ExecutionId": "x1"} and data["Episode"] == 1


# --- 8. purge and Tags ----------------------------------------------------------------------------------------


async def test_start_writes_tags_as_the_tracking_store_does(client, hub):
    """AzureTableTrackingStore.SetNewExecutionAsync: ["Tags"] = TagsSerializer.Serialize(event.Tags), which is
    JsonConvert.SerializeObject: the text "null" when there are none."""
    await client.start("HelloSequence", instance_id="tags-1")
    row = await hub.instances.client.get_entity("tags-1", "")
    assert row["Tags"] == "null"
    await check_rows(hub.account, hub.name, "tags-1", with_history=False)
