"""The provider's reading rules, applied to what OUR code writes.

A .NET worker (DurableTask.AzureStorage) reads our queue messages, Instances rows and History rows.
These checks restate what its readers require, from its source, independently of durable_mgmt:

* Messages: MessageManager.DeserializeQueueMessageAsync (UTF-8 JSON, or Base64 of it; a
  CompressedBlobName is replaced by the blob), its TypeNameSerializationBinder (every ``$type`` in a
  DurableTask.* namespace is bound with ``throwOnError: true``: it must name a real class),
  MessageData.cs (Sender is never null, written without ``$type``), OrchestrationSession.IsOutOfOrderMessage
  (reads ``Sender.InstanceId`` of an EventRaised), TaskHubQueue.AddMessageAsync (SequenceNumber > 0),
  Storage/Queue.cs AddMessageAsync (time-to-live infinite), GetControlQueueAsync (the control queue is
  FNV-1a(instance id) % partition count; work items go to ``{hub}-workitems``).
* Rows: Tracking/KeySanitation.cs (PartitionKey), AzureTableTrackingStore (History RowKey "X16", the
  "sentinel" row, ``…BlobName`` columns beside an emptied property; Instances RowKey "", Tags as
  TagsSerializer writes it, typed DateTime columns of OrchestrationInstanceStatus.cs).

``problems_*`` return a list of readable problems (empty: conformant); ``check_*`` raise AssertionError.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from typing import Any, Callable

from . import provider as p

# src/DurableTask.Core/History/EventType.cs (numbers) -> the class in src/DurableTask.Core/History/*.cs.
# ExecutionFailed (2) has no class: failures are ExecutionCompletedEvent with OrchestrationStatus Failed.
EVENT_CLASSES: dict[int, str] = {
    0: "ExecutionStartedEvent", 1: "ExecutionCompletedEvent", 3: "ExecutionTerminatedEvent",
    4: "TaskScheduledEvent", 5: "TaskCompletedEvent", 6: "TaskFailedEvent",
    7: "SubOrchestrationInstanceCreatedEvent", 8: "SubOrchestrationInstanceCompletedEvent",
    9: "SubOrchestrationInstanceFailedEvent", 10: "TimerCreatedEvent", 11: "TimerFiredEvent",
    12: "OrchestratorStartedEvent", 13: "OrchestratorCompletedEvent", 14: "EventSentEvent",
    15: "EventRaisedEvent", 16: "ContinueAsNewEvent", 17: "GenericEvent", 18: "HistoryStateEvent",
    19: "ExecutionSuspendedEvent", 20: "ExecutionResumedEvent", 21: "ExecutionRewoundEvent",
}
EVENT_TYPE_NAMES = ["ExecutionStarted", "ExecutionCompleted", "ExecutionFailed", "ExecutionTerminated",
                    "TaskScheduled", "TaskCompleted", "TaskFailed", "SubOrchestrationInstanceCreated",
                    "SubOrchestrationInstanceCompleted", "SubOrchestrationInstanceFailed", "TimerCreated",
                    "TimerFired", "OrchestratorStarted", "OrchestratorCompleted", "EventSent", "EventRaised",
                    "ContinueAsNew", "GenericEvent", "HistoryState", "ExecutionSuspended", "ExecutionResumed",
                    "ExecutionRewound"]
# Every DurableTask.* type a message may carry (the binder throws on any other name in these namespaces).
REAL_TYPES = frozenset({f"DurableTask.Core.History.{c}" for c in EVENT_CLASSES.values()} | {
    "DurableTask.AzureStorage.MessageData", "DurableTask.Core.TaskMessage", "DurableTask.Core.OrchestrationInstance",
    "DurableTask.Core.ParentInstance", "DurableTask.Core.FailureDetails",
    "DurableTask.Core.OrchestrationExecutionContext", "DurableTask.Core.Tracing.DistributedTraceContext",
    "DurableTask.Core.OrchestrationState",
})
# Members each event class declares ([DataMember], src/DurableTask.Core/History/*.cs) that every writer emits.
# Trace-context members (ParentTraceContext, ClientSpanId, GenerateNewTrace) are optional: absent reads as null.
REQUIRED_MEMBERS: dict[str, tuple[str, ...]] = {
    "ExecutionStartedEvent": ("OrchestrationInstance", "Name", "Version", "Input"),
    "ExecutionCompletedEvent": ("OrchestrationStatus", "Result"),
    "ExecutionTerminatedEvent": ("Input",),
    "TaskScheduledEvent": ("Name", "Version", "Input"),
    "TaskCompletedEvent": ("TaskScheduledId", "Result"),
    "TaskFailedEvent": ("TaskScheduledId", "Reason", "Details"),
    "SubOrchestrationInstanceCreatedEvent": ("Name", "Version", "InstanceId", "Input"),
    "SubOrchestrationInstanceCompletedEvent": ("TaskScheduledId", "Result"),
    "SubOrchestrationInstanceFailedEvent": ("TaskScheduledId", "Reason", "Details"),
    "TimerCreatedEvent": ("FireAt",),
    "TimerFiredEvent": ("TimerId", "FireAt"),
    "EventSentEvent": ("InstanceId", "Name", "Input"),
    "EventRaisedEvent": ("Name", "Input"),
    "GenericEvent": ("Data",),
    "ExecutionSuspendedEvent": ("Reason",),
    "ExecutionResumedEvent": ("Reason",),
}
BASE_MEMBERS = ("EventId", "IsPlayed", "Timestamp", "EventType")  # HistoryEvent.cs
WORK_ITEM_EVENTS = {4}  # TaskScheduled goes to the work-item queue; everything else to a control queue
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?Z$")
RUNTIME_STATUSES = {"Running", "Completed", "ContinuedAsNew", "Failed", "Canceled", "Terminated", "Pending",
                    "Suspended"}  # OrchestrationStatus.cs, stored by name


def decode_body(body: str) -> dict[str, Any]:
    text = body if body.lstrip().startswith("{") else base64.b64decode(body).decode("utf-8")
    return json.loads(text)


def _types(value: Any, path: str = "") -> list[tuple[str, str]]:
    out = []
    if isinstance(value, dict):
        if "$type" in value:
            # Newtonsoft's default MetadataPropertyHandling reads $type only as the first member.
            out.append((path or "<root>", value["$type"] if next(iter(value)) == "$type" else "<$type not first>"))
        for k, v in value.items():
            out += _types(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _types(v, f"{path}[{i}]")
    return out


def problems_message(body: str, *, queue: str, hub: str, partition_count: int,
                     blob_text: Callable[[str], str] | None = None) -> list[str]:
    """Everything a provider worker would refuse or misread in the queue message ``body`` found on ``queue``."""
    problems: list[str] = []
    try:
        data = decode_body(body)
    except (ValueError, UnicodeDecodeError) as e:
        return [f"body is neither JSON nor Base64 JSON: {e}"]
    blob_name = data.get("CompressedBlobName")
    if blob_name:
        if data != p.compressed_wrapper(blob_name):
            problems.append(f"compressed wrapper differs from MessageManager's: {data}")
        if blob_text is None:
            return problems + ["wrapper names a blob but no blob reader was given"]
        data = json.loads(blob_text(blob_name))
        if data.get("CompressedBlobName") is not None:
            problems.append("the blob's message has CompressedBlobName set (the provider serializes it before)")
    for path, t in _types(data):
        if t == "<$type not first>":
            problems.append(f"$type at {path} is not the object's first member; Newtonsoft would not read it")
        elif t.startswith("DurableTask.") and t not in REAL_TYPES:
            problems.append(f"$type {t!r} at {path} names no class (the provider's binder throws)")
    if data.get("$type") != "DurableTask.AzureStorage.MessageData":
        problems.append(f"envelope $type is {data.get('$type')!r}")
    if not GUID.match(str(data.get("ActivityId", ""))):
        problems.append(f"ActivityId {data.get('ActivityId')!r} is not a Guid")
    seq = data.get("SequenceNumber")
    if not isinstance(seq, int) or seq <= 0:
        problems.append(f"SequenceNumber is {seq!r}; the provider numbers every message from 1 (TaskHubQueue)")
    sender = data.get("Sender")
    if not isinstance(sender, dict):
        problems.append("Sender is missing: MessageData always has one; IsOutOfOrderMessage reads Sender.InstanceId")
    else:
        if "$type" in sender:
            problems.append("Sender has a $type; MessageData.Sender is written with TypeNameHandling.None")
        if not isinstance(sender.get("InstanceId"), str) or not isinstance(sender.get("ExecutionId"), str):
            problems.append(f"Sender {sender} lacks string InstanceId/ExecutionId")
    episode = data.get("Episode")
    if episode is not None and not isinstance(episode, int):
        problems.append(f"Episode is {episode!r}")
    tm = data.get("TaskMessage")
    if not isinstance(tm, dict):
        return problems + ["TaskMessage is missing"]
    if tm.get("$type") != "DurableTask.Core.TaskMessage":
        problems.append(f"TaskMessage $type is {tm.get('$type')!r}")
    inst = tm.get("OrchestrationInstance") or {}
    instance_id = inst.get("InstanceId")
    if not isinstance(instance_id, str) or not instance_id:
        problems.append("TaskMessage.OrchestrationInstance.InstanceId is missing")
    ev = tm.get("Event")
    if not isinstance(ev, dict):
        return problems + ["TaskMessage.Event is missing"]
    number = ev.get("EventType")
    cls = EVENT_CLASSES.get(number)
    if cls is None:
        problems.append(f"EventType {number!r} has no event class")
    elif ev.get("$type") != f"DurableTask.Core.History.{cls}":
        problems.append(f"Event $type {ev.get('$type')!r} does not match EventType {number} ({cls})")
    for m in BASE_MEMBERS + REQUIRED_MEMBERS.get(cls or "", ()):
        if m not in ev:
            problems.append(f"{cls} lacks member {m}")
    if not ISO.match(str(ev.get("Timestamp", ""))):
        problems.append(f"Timestamp {ev.get('Timestamp')!r} is not a UTC ISO time")
    if cls == "ExecutionStartedEvent":
        started = ev.get("OrchestrationInstance") or {}
        if started.get("InstanceId") != instance_id or not started.get("ExecutionId"):
            problems.append("ExecutionStarted.OrchestrationInstance must name the instance and a new ExecutionId")
    if isinstance(instance_id, str) and instance_id:
        want = p.workitem_queue(hub) if number in WORK_ITEM_EVENTS else p.control_queue(hub, instance_id,
                                                                                          partition_count)
        if queue != want:
            problems.append(f"message for {instance_id!r} is on {queue}, the provider reads it from {want}")
    return problems


def problems_time_to_live(inserted_on: datetime | None, expires_on: datetime | None) -> list[str]:
    """Storage/Queue.cs AddMessageAsync sends with TimeSpan.FromSeconds(-1): the message never expires
    (the service reports expiry 9999-12-31)."""
    if expires_on is None or expires_on.year < 9999:
        return [f"message expires at {expires_on} (inserted {inserted_on}); the provider's never expire"]
    return []


def problems_instance_row(row: dict[str, Any], instance_id: str) -> list[str]:
    """An Instances row as OrchestrationInstanceStatus.cs declares it and the tracking store writes it."""
    out = []
    if row.get("PartitionKey") != p.escape_partition_key(instance_id):
        out.append(f"PartitionKey {row.get('PartitionKey')!r} is not KeySanitation.EscapePartitionKey({instance_id!r})")
    if row.get("RowKey") != "":
        out.append(f"RowKey is {row.get('RowKey')!r}, not ''")
    if row.get("RuntimeStatus") not in RUNTIME_STATUSES:
        out.append(f"RuntimeStatus {row.get('RuntimeStatus')!r} is not an OrchestrationStatus name")
    for col in ("CreatedTime", "LastUpdatedTime", "CompletedTime", "ScheduledStartTime"):
        if col in row and row[col] is not None and not isinstance(row[col], datetime):
            out.append(f"{col} is {type(row[col]).__name__}, not a DateTime column")
    if not isinstance(row.get("Generation"), int):
        out.append("Generation is missing or not an int")
    ex = row.get("ExecutionId")
    if not (isinstance(ex, str) and ex):
        out.append("ExecutionId is missing")
    tags = row.get("Tags")
    if not isinstance(tags, str):
        out.append("Tags is missing: SetNewExecutionAsync/UpdateStateAsync always write TagsSerializer.Serialize")
    else:
        parsed = json.loads(tags)
        if parsed is not None and not (isinstance(parsed, dict) and all(isinstance(v, str) for v in parsed.values())):
            out.append(f"Tags {tags!r} is not a JSON object of strings or null")
    for col in ("Input", "Output", "CustomStatus", "Name", "Version", "TaskHubName"):
        if col in row and row[col] is not None and not isinstance(row[col], str):
            out.append(f"{col} is {type(row[col]).__name__}, not a string")
    return out


def problems_history(rows: list[dict[str, Any]], instance_id: str) -> list[str]:
    """History rows of one instance: RowKeys "X16" from 0, one sentinel, names of EventType.cs, typed times."""
    out = []
    pk = p.escape_partition_key(instance_id)
    events = [r for r in rows if r["RowKey"] != "sentinel"]
    sentinels = [r for r in rows if r["RowKey"] == "sentinel"]
    if len(sentinels) != 1:
        out.append(f"{len(sentinels)} sentinel rows, not 1")
    execution = sentinels[0].get("ExecutionId") if sentinels else None
    current = [r for r in events if r.get("ExecutionId") == execution]
    for i, r in enumerate(current):
        if r["PartitionKey"] != pk:
            out.append(f"row {r['RowKey']} has PartitionKey {r['PartitionKey']!r}, not {pk!r}")
        if r["RowKey"] != f"{i:016X}":
            out.append(f"row {i} has RowKey {r['RowKey']!r}, not {i:016X}")
        if r.get("EventType") not in EVENT_TYPE_NAMES:
            out.append(f"row {r['RowKey']} EventType {r.get('EventType')!r} is not an EventType name")
        if not isinstance(r.get("_Timestamp"), datetime):
            out.append(f"row {r['RowKey']} _Timestamp is not a DateTime column")
        for col, value in r.items():
            if col.endswith("BlobName") and r.get(col[:-len("BlobName")]) != "":
                out.append(f"row {r['RowKey']} has {col} but {col[:-8]} is not emptied")
            if col in ("FireAt", "ScheduledStartTime") and not isinstance(value, datetime):
                out.append(f"row {r['RowKey']} {col} is not a DateTime column")
    return out


def check(problems: list[str], what: str) -> None:
    assert not problems, f"{what} does not conform to DurableTask.AzureStorage:\n  " + "\n  ".join(problems)


# --- reading back a hub --------------------------------------------------------------------------------


async def queue_messages(account, hub: str, partition_count: int) -> list[tuple[str, Any]]:
    """Every visible message of the hub's queues, peeked (left in place): (queue name, PeekedMessage)."""
    names = [f"{hub.lower()}-control-{i:02d}" for i in range(partition_count)] + [p.workitem_queue(hub)]
    out = []
    async with account.queue_service() as service:
        for name in names:
            queue = service.get_queue_client(name)
            try:
                for m in await queue.peek_messages(max_messages=32):
                    out.append((name, m))
            except Exception as e:  # a queue our code never created: nothing to validate
                if "QueueNotFound" not in str(e):
                    raise
    return out


async def check_queues(account, hub: str, partition_count: int, *, expect: int | None = None) -> list[dict]:
    """Validate every message on the hub's queues (body, time-to-live, routing); returns their MessageData."""
    async with account.blob_service() as blobs:
        container = blobs.get_container_client(p.large_messages_container(hub))
        texts: dict[str, str] = {}
        found = await queue_messages(account, hub, partition_count)
        for _, m in found:
            name = decode_body(m.content).get("CompressedBlobName")
            if name:
                import gzip

                data = await (await container.download_blob(name)).readall()
                texts[name] = gzip.decompress(data).decode("utf-8")
    all_problems, datas = [], []
    for queue, m in found:
        all_problems += [f"{queue}: {x}" for x in problems_message(m.content, queue=queue, hub=hub,
                                                                   partition_count=partition_count,
                                                                   blob_text=texts.__getitem__)]
        all_problems += [f"{queue}: {x}" for x in problems_time_to_live(m.inserted_on, m.expires_on)]
        data = decode_body(m.content)
        datas.append(json.loads(texts[data["CompressedBlobName"]]) if data.get("CompressedBlobName") else data)
    check(all_problems, f"the messages of hub {hub}")
    if expect is not None:
        assert len(found) == expect, f"expected {expect} messages, found {len(found)}: {datas}"
    return datas


async def check_rows(account, hub: str, instance_id: str, *, with_history: bool = True) -> None:
    async with account.table_service() as tables:
        pk = p.escape_partition_key(instance_id)
        inst = [dict(e) async for e in tables.get_table_client(f"{hub}Instances").query_entities(
            "PartitionKey eq @pk", parameters={"pk": pk})]
        assert len(inst) == 1, f"no Instances row for {instance_id!r}"
        check(problems_instance_row(inst[0], instance_id), f"the Instances row of {instance_id!r}")
        if with_history:
            rows = [dict(e) async for e in tables.get_table_client(f"{hub}History").query_entities(
                "PartitionKey eq @pk", parameters={"pk": pk})]
            check(problems_history(rows, instance_id), f"the History rows of {instance_id!r}")
