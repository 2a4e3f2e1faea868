"""Golden tests: queue messages and table rows exactly as DurableTask.AzureStorage writes them.

Expected values are written out by hand from ../shared/reference/taskhub-azure-storage.md
(and the provider's source it names), not produced by the code under test.
"""

import json
from datetime import datetime, timezone

from durable_mgmt.taskhub.events import EventType, HistoryEvent, OrchestrationStatus, event, execution_started
from durable_mgmt.taskhub.messages import TaskMessage, compressed_wrapper, decode_body, visibility_delay
from durable_mgmt.taskhub.history import row_key

T = datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=timezone.utc)
T_TEXT = "2026-11-26T10:00:00.123456Z"
ACTIVITY = "5f0f6b3c-8f2e-4a7e-9a57-3f3c2f6b1a01"


def message(ev, instance_id="inst1", execution_id="e1", **kw):
    return json.loads(TaskMessage(ev, instance_id, execution_id, activity_id=ACTIVITY, **kw).encode())


def test_execution_started_message():
    ev = execution_started("inst1", "e1", "HelloWorld", '"Tokyo"', generation=0, timestamp=T)
    assert message(ev) == {
        "$type": "DurableTask.AzureStorage.MessageData",
        "ActivityId": ACTIVITY,
        "TaskMessage": {
            "$type": "DurableTask.Core.TaskMessage",
            "Event": {
                "$type": "DurableTask.Core.History.ExecutionStartedEvent",
                "EventType": 0, "EventId": -1, "IsPlayed": False, "Timestamp": T_TEXT,
                "OrchestrationInstance": {"$type": "DurableTask.Core.OrchestrationInstance",
                                          "InstanceId": "inst1", "ExecutionId": "e1"},
                "ParentInstance": None, "Name": "HelloWorld", "Version": "", "Input": '"Tokyo"', "Tags": None,
                "Correlation": None, "ScheduledStartTime": None, "Generation": 0,
            },
            "SequenceNumber": 0,
            "OrchestrationInstance": {"$type": "DurableTask.Core.OrchestrationInstance",
                                      "InstanceId": "inst1", "ExecutionId": "e1"},
            # src/DurableTask.Core/TaskMessage.cs: a [DataMember], null when not set.
            "OrchestrationExecutionContext": None,
        },
        "CompressedBlobName": None,
        "SequenceNumber": 0,
        # A client start: AzureStorageOrchestrationService.EmptySourceInstance, written without $type
        # (MessageData.Sender has [JsonProperty(TypeNameHandling = TypeNameHandling.None)]).
        "Sender": {"InstanceId": "", "ExecutionId": ""},
        "SerializableTraceContext": None,
    }


def test_task_scheduled_message():
    ev = event(EventType.TaskScheduled, 3, T, Name="E1_SayHello", Version="", Input='"Tokyo"')
    got = message(ev, episode=2, sender={"InstanceId": "inst1", "ExecutionId": "e1"}, sequence_number=7)
    assert got["TaskMessage"]["Event"] == {
        "$type": "DurableTask.Core.History.TaskScheduledEvent",
        "EventType": 4, "EventId": 3, "IsPlayed": False, "Timestamp": T_TEXT,
        "Name": "E1_SayHello", "Version": "", "Input": '"Tokyo"',
    }
    assert got["Episode"] == 2
    assert got["Sender"] == {"InstanceId": "inst1", "ExecutionId": "e1"}  # no $type: TypeNameHandling.None
    # TaskHubQueue.AddMessageAsync numbers MessageData.SequenceNumber only; Core's TaskMessage keeps 0.
    assert got["SequenceNumber"] == 7 and got["TaskMessage"]["SequenceNumber"] == 0


def test_task_completed_message():
    ev = event(EventType.TaskCompleted, -1, T, TaskScheduledId=3, Result='"Hello Tokyo!"')
    assert message(ev)["TaskMessage"]["Event"] == {
        "$type": "DurableTask.Core.History.TaskCompletedEvent",
        "EventType": 5, "EventId": -1, "IsPlayed": False, "Timestamp": T_TEXT,
        "TaskScheduledId": 3, "Result": '"Hello Tokyo!"',
    }


def test_event_raised_message_from_a_client():
    ev = event(EventType.EventRaised, -1, T, Name="MyEvent", Input="[1,2,3]")
    got = message(ev, execution_id=None)
    assert got["TaskMessage"]["Event"] == {
        "$type": "DurableTask.Core.History.EventRaisedEvent",
        "EventType": 15, "EventId": -1, "IsPlayed": False, "Timestamp": T_TEXT,
        "Name": "MyEvent", "Input": "[1,2,3]",
    }
    assert got["TaskMessage"]["OrchestrationInstance"]["ExecutionId"] is None
    assert "Episode" not in got  # EmitDefaultValue = false
    # MessageData's constructor throws on a null sender; a client sends EmptySourceInstance
    # (src/DurableTask.AzureStorage/AzureStorageOrchestrationService.cs), which
    # OrchestrationSession.IsOutOfOrderMessage dereferences (Sender.InstanceId) for every EventRaised.
    assert got["Sender"] == {"InstanceId": "", "ExecutionId": ""}


def test_execution_terminated_message():
    ev = event(EventType.ExecutionTerminated, -1, T, Input="Found a bug")
    assert message(ev, execution_id=None)["TaskMessage"]["Event"] == {
        "$type": "DurableTask.Core.History.ExecutionTerminatedEvent",
        "EventType": 3, "EventId": -1, "IsPlayed": False, "Timestamp": T_TEXT, "Input": "Found a bug",
    }


def test_message_round_trip_and_base64_bodies():
    ev = event(EventType.TimerFired, -1, T, TimerId=4, FireAt=T)
    body = TaskMessage(ev, "x", "e", activity_id=ACTIVITY).encode()
    import base64

    for raw in (body, base64.b64encode(body.encode()).decode()):
        back = TaskMessage.from_json(decode_body(raw))
        assert back.event.type == EventType.TimerFired
        assert back.event.get("TimerId") == 4 and back.event.get("FireAt") == T
        assert back.instance_id == "x" and back.execution_id == "e" and back.activity_id == ACTIVITY


def test_compressed_wrapper_names_the_blob():
    wrapper = json.loads(compressed_wrapper("inst1/message-5f0f6b3c8f2e4a7e9a573f3c2f6b1a01-TaskCompleted.json.gz"))
    assert wrapper["CompressedBlobName"].endswith("-TaskCompleted.json.gz")
    assert wrapper["TaskMessage"] is None
    msg = TaskMessage(event(EventType.TaskCompleted, TaskScheduledId=0), "inst1", "e", activity_id=ACTIVITY)
    assert msg.large_blob_name == "inst1/message-5f0f6b3c8f2e4a7e9a573f3c2f6b1a01-TaskCompleted.json.gz"


def test_visibility_delays():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    fire = event(EventType.TimerFired, TimerId=1, FireAt=datetime(2026, 1, 1, 0, 0, 30, tzinfo=timezone.utc))
    assert visibility_delay(fire, now) == 30
    far = event(EventType.TimerFired, TimerId=1, FireAt=datetime(2026, 3, 1, tzinfo=timezone.utc))
    # The SDK splits timers into hops of at most 6 days (maximumShortTimerDuration); a longer one is held to
    # the queue's 7-day limit and sent on by our engine.
    assert visibility_delay(far, now) == 7 * 24 * 3600
    start = execution_started("i", "e", "N", None, scheduled_start=datetime(2026, 1, 1, 0, 1, tzinfo=timezone.utc))
    assert visibility_delay(start, now) == 60
    assert visibility_delay(event(EventType.EventRaised, Name="x"), now) == 0


def test_history_rows():
    started = execution_started("inst/1", "e1", "HelloWorld", '"in"', generation=0, timestamp=T)
    row = started.to_row("inst^01", row_key(0), "e1")
    assert row == {
        "PartitionKey": "inst^01", "RowKey": "0000000000000000", "EventType": "ExecutionStarted", "EventId": -1,
        "IsPlayed": False, "_Timestamp": T, "ExecutionId": "e1",
        "OrchestrationInstance": '{"InstanceId":"inst/1","ExecutionId":"e1"}',
        "Name": "HelloWorld", "Version": "", "Input": '"in"', "Generation": 0,
    }
    completed = event(EventType.ExecutionCompleted, 5, T, OrchestrationStatus=OrchestrationStatus.Completed,
                      Result='["a"]')
    assert completed.to_row("p", row_key(10), "e1") == {
        "PartitionKey": "p", "RowKey": "000000000000000A", "EventType": "ExecutionCompleted", "EventId": 5,
        "IsPlayed": False, "_Timestamp": T, "ExecutionId": "e1", "OrchestrationStatus": "Completed",
        "Result": '["a"]',
    }
    failed = event(EventType.TaskFailed, 4, T, TaskScheduledId=2, Reason="boom", Details="trace")
    assert failed.to_row("p", row_key(255), "e1")["RowKey"] == "00000000000000FF"
    for ev in (started, completed, failed):
        back = HistoryEvent.from_row(ev.to_row("p", "0000000000000000", "e1"))
        assert (back.type, back.event_id, back.timestamp, back.props) == (
            ev.type, ev.event_id, ev.timestamp, {k: v for k, v in ev.props.items() if v is not None})


def test_sdk_history_json():
    started = execution_started("i", "e", "HelloWorld", None, timestamp=T)
    sdk = started.to_sdk()
    assert sdk["EventType"] == 0 and sdk["Version"] == "" and sdk["Timestamp"] == T_TEXT and sdk["Input"] is None
    timer = event(EventType.TimerCreated, 2, T, FireAt=T).to_sdk()
    assert timer == {"EventType": 10, "EventId": 2, "IsPlayed": False, "Timestamp": T_TEXT, "FireAt": T_TEXT}
