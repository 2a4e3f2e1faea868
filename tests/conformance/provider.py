"""What DurableTask.AzureStorage writes, rebuilt from its source (never from durable_mgmt).

Each builder names the provider file and symbol it follows. Paths are in the
Azure/durabletask repository: ``src/DurableTask.AzureStorage`` (2.x on its main
branch: the extension v3 generation, "v3"; 1.17.x at tag
``durabletask.azurestorage-v1.17.5``: the extension v2 generation, "v2") and
``src/DurableTask.Core``. Nothing here imports the code under test, so a
misunderstanding in ``durable_mgmt`` cannot leak into the expected values.
"""

from __future__ import annotations

import base64
import gzip
import json
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

GENERATIONS = ("v2", "v3")

# src/DurableTask.AzureStorage/Tracking/KeySanitation.cs (EscapePartitionKey): '^' doubles, '/', '\\', '#', '?'
# become ^0..^3, control characters ^ + (char)(0xC0 + c).
_ESCAPES = {"^": "^^", "/": "^0", "\\": "^1", "#": "^2", "?": "^3"}


def escape_partition_key(instance_id: str) -> str:
    out = []
    for c in instance_id:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif ord(c) <= 0x1F or 0x7F <= ord(c) <= 0x9F:
            out.append("^" + chr(0xC0 + ord(c)))
        else:
            out.append(c)
    return "".join(out)


def fnv1a(text: str) -> int:
    """src/DurableTask.AzureStorage/Fnv1aHashHelper.cs ComputeHash: FNV-1a 32 over the UTF-8 bytes."""
    h = 2166136261
    for b in text.encode("utf-8"):
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def control_queue(hub: str, instance_id: str, partition_count: int) -> str:
    """AzureStorageOrchestrationService.GetControlQueueAsync + GetControlQueueName: "{hub}-control-{NN}", lower case."""
    return f"{hub.lower()}-control-{fnv1a(instance_id) % partition_count:02d}"


def workitem_queue(hub: str) -> str:
    """AzureStorageOrchestrationService.GetWorkItemQueueName."""
    return f"{hub.lower()}-workitems"


def large_messages_container(hub: str) -> str:
    """AzureStorageOrchestrationServiceSettings: "{hub}-largemessages", lower case."""
    return f"{hub.lower()}-largemessages"


def newtonsoft_time(value: datetime) -> str:
    """Newtonsoft's IsoDateTimeFormat for a UTC DateTime: seven fraction digits, trailing zeros trimmed, 'Z'."""
    text = value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


# --- queue messages: MessageManager's serializer (TypeNameHandling.Objects, the type's FullName) -------------

INSTANCE_TYPE = "DurableTask.Core.OrchestrationInstance"
# TypeNameHandling.Objects also types dictionaries: IDictionary<string,string> Tags is a Dictionary`2 on .NET.
TAGS_TYPE = ("System.Collections.Generic.Dictionary`2[[System.String, System.Private.CoreLib],"
             "[System.String, System.Private.CoreLib]], System.Private.CoreLib")


def instance(instance_id: str, execution_id: str | None) -> dict[str, Any]:
    return {"$type": INSTANCE_TYPE, "InstanceId": instance_id, "ExecutionId": execution_id}


def history_event(cls: str, event_type: int, timestamp: datetime, event_id: int = -1,
                  **members: Any) -> dict[str, Any]:
    """A src/DurableTask.Core/History/{cls}.cs event as a message member: base members
    (HistoryEvent.cs: EventId, IsPlayed, Timestamp, EventType as a number) then the class's own."""
    return {"$type": f"DurableTask.Core.History.{cls}", "EventId": event_id, "IsPlayed": False,
            "Timestamp": newtonsoft_time(timestamp), "EventType": event_type, **members}


def execution_started(generation: str, instance_id: str, execution_id: str, name: str, input: str | None,
                      timestamp: datetime, tags: dict[str, str] | None = None) -> dict[str, Any]:
    """ExecutionStartedEvent.cs DataMembers, as a client's start (TaskHubClient.InternalCreateOrchestrationInstance)."""
    members: dict[str, Any] = {
        "OrchestrationInstance": instance(instance_id, execution_id), "ParentInstance": None, "Name": name,
        "Version": "", "Input": input,
        "Tags": None if tags is None else {"$type": TAGS_TYPE, **tags},
        "Correlation": None, "ParentTraceContext": None, "ScheduledStartTime": None, "Generation": 0,
    }
    if generation == "v3":
        members["GenerateNewTrace"] = False  # added to Core in 2026 (ExecutionStartedEvent.GenerateNewTrace)
    return history_event("ExecutionStartedEvent", 0, timestamp, **members)


def message_data(event: dict[str, Any], instance_id: str, execution_id: str | None, *, activity_id: str,
                 sequence_number: int, sender: dict[str, str], episode: int | None = None,
                 compressed_blob_name: str | None = None) -> dict[str, Any]:
    """src/DurableTask.AzureStorage/MessageData.cs, built by Messaging/TaskHubQueue.cs AddMessageAsync:
    SequenceNumber from the process-wide messageSequenceNumber, Sender always set (client: the
    EmptySourceInstance of AzureStorageOrchestrationService.cs) and written without $type
    ([JsonProperty(TypeNameHandling = TypeNameHandling.None)]), Episode only when set."""
    data: dict[str, Any] = {
        "$type": "DurableTask.AzureStorage.MessageData",
        "ActivityId": activity_id,
        "TaskMessage": {
            "$type": "DurableTask.Core.TaskMessage",
            "Event": event,
            "SequenceNumber": 0,
            "OrchestrationInstance": instance(instance_id, execution_id),
            "OrchestrationExecutionContext": None,
        },
        "CompressedBlobName": compressed_blob_name,
        "SequenceNumber": sequence_number,
    }
    if episode is not None:
        data["Episode"] = episode
    data["Sender"] = dict(sender)
    data["SerializableTraceContext"] = None
    return data


CLIENT = {"InstanceId": "", "ExecutionId": ""}


def compressed_wrapper(blob_name: str) -> dict[str, Any]:
    """MessageManager.SerializeMessageDataAsync: ``new MessageData { CompressedBlobName = blobName }``."""
    return {"$type": "DurableTask.AzureStorage.MessageData", "ActivityId": "00000000-0000-0000-0000-000000000000",
            "TaskMessage": None, "CompressedBlobName": blob_name, "SequenceNumber": 0,
            "SerializableTraceContext": None}


def message_blob_name(instance_id: str, activity_id: str, event_type: str) -> str:
    """MessageManager.GetNewLargeMessageBlobName: the RAW instance id, the activity id as 32 hex digits."""
    return f"{instance_id}/message-{activity_id.replace('-', '')}-{event_type}.json.gz"


def queue_body(generation: str, data: dict[str, Any]) -> str:
    """The queue message text. v2: WindowsAzure.Storage's CloudQueue (EncodeMessage defaults to true) sends
    Base64 (Storage/QueueMessage.cs at v1.17.5). v3: Azure.Storage.Queues with QueueClientMessageEncoding.UTF8,
    the default of AzureStorageOrchestrationServiceSettings.QueueClientMessageEncoding."""
    text = json.dumps(data, separators=(",", ":"))
    return base64.b64encode(text.encode("utf-8")).decode("ascii") if generation == "v2" else text


def gzip_text(text: str) -> bytes:
    """MessageManager.CompressAndUploadAsBytesAsync: UTF-8, GZipStream."""
    return gzip.compress(text.encode("utf-8"))


def blob_url(container_url: str, blob_name: str) -> str:
    """MessageManager.GetBlobUrl: each path segment escaped (Uri.EscapeDataString), slashes kept."""
    return container_url.rstrip("/") + "/" + "/".join(quote(p, safe="") for p in blob_name.split("/"))


# --- History rows: Tracking/TableEntityConverter.cs Serialize + AzureTableTrackingStore.UpdateStateAsync --------


def history_row(pk: str, seq: int, execution_id: str, event_type: str, timestamp: datetime, event_id: int = -1,
                **members: Any) -> dict[str, Any]:
    """One History row: RowKey = sequence number ToString("X16"); enums by name; Timestamp as "_Timestamp"
    (TableEntityConverter.EnumerateMembers); nested objects as JSON without $type (Utils.DefaultJsonSerializer);
    null members left out."""
    row = {"PartitionKey": pk, "RowKey": f"{seq:016X}", "EventId": event_id, "IsPlayed": False,
           "_Timestamp": timestamp, "EventType": event_type, "ExecutionId": execution_id}
    for key, value in members.items():
        if value is None:
            continue
        row[key] = json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else value
    return row


def sentinel_row(pk: str, execution_id: str, completed: datetime) -> dict[str, Any]:
    """AzureTableTrackingStore.UploadHistoryBatch: the "sentinel" row after the final batch."""
    return {"PartitionKey": pk, "RowKey": "sentinel", "ExecutionId": execution_id, "IsCheckpointComplete": True,
            "CheckpointCompletedTimestamp": completed}


def history_blob_name(pk: str, row_key: str, event_type: str, prop: str, random: int) -> str:
    """AzureTableTrackingStore.GetBlobName: the ESCAPED key, "{pk}/history-{RowKey}-{EventType}-{random:X8}-{prop}"."""
    return f"{pk}/history-{row_key}-{event_type}-{random:08X}-{prop}.json.gz"


def tags_column(tags: dict[str, str] | None) -> str:
    """Tracking/TagsSerializer.cs Serialize = JsonConvert.SerializeObject: "null" when there are none."""
    return json.dumps(tags, separators=(",", ":"))
