"""Queue messages: the MessageData/TaskMessage envelope of DurableTask.AzureStorage.

Messages are JSON text (Newtonsoft with ``TypeNameHandling.Objects``:
every object carries a ``$type`` without assembly name), sent as UTF-8 or
Base64 by the hub's generation (``queue_body``). Readers accept both, as the
real provider does.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .events import EventType, HistoryEvent, orchestration_instance
from .timefmt import MIN_DATETIME, as_utc, to_iso, utcnow

MESSAGE_DATA_TYPE = "DurableTask.AzureStorage.MessageData"
TASK_MESSAGE_TYPE = "DurableTask.Core.TaskMessage"
INSTANCE_TYPE = "DurableTask.Core.OrchestrationInstance"

# Beyond this many UTF-8 bytes, the message body goes to a gzip blob (MessageManager.cs).
MAX_INLINE_MESSAGE_BYTES = 45 * 1024
# Azure Storage queues hide a message for at most 7 days (the Put Message limit). The provider sends
# the whole delay (TaskHubQueue.GetVisibilityDelay, no cap), so a longer one fails at the service.
MAX_VISIBILITY_DELAY = timedelta(days=7)
# Every send has an infinite time-to-live, as Storage/Queue.cs AddMessageAsync (TimeSpan.FromSeconds(-1)):
# the service default of 7 days would silently drop a start or an event sent while workers are down.
INFINITE_TIME_TO_LIVE = -1
# The Sender of a client's message: DurableTask.AzureStorage's EmptySourceInstance.
CLIENT_SENDER = {"InstanceId": "", "ExecutionId": ""}

# TaskHubQueue.messageSequenceNumber: one counter per process (static), incremented for every message sent.
_sequence = itertools.count(1)


def next_sequence_number() -> int:
    """The next MessageData.SequenceNumber of this process (1, 2, ...), as TaskHubQueue numbers them."""
    return next(_sequence)


class MessageFormatError(ValueError):
    """A queue message is not a MessageData envelope this layer can read."""


@dataclass
class TaskMessage:
    """One durable message: an event addressed to one orchestration instance."""

    event: HistoryEvent
    instance_id: str
    execution_id: str | None = None
    sequence_number: int = 0
    activity_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    episode: int | None = None
    # MessageData.Sender: the sending orchestration, or None for a client (sent as CLIENT_SENDER).
    sender: dict[str, Any] | None = None
    compressed_blob_name: str | None = None
    # Set on received messages: where they came from, for delete/update.
    queue_name: str | None = None
    message_id: str | None = None
    pop_receipt: str | None = None
    dequeue_count: int = 0
    inserted_on: datetime | None = None
    received_at: float | None = None  # monotonic time of receipt, for visibility renewal

    def to_json(self) -> dict[str, Any]:
        envelope: dict[str, Any] = {
            "$type": MESSAGE_DATA_TYPE,
            "ActivityId": self.activity_id,
            "TaskMessage": {
                "$type": TASK_MESSAGE_TYPE,
                "Event": self.event.to_message(),
                # Core's TaskMessage.SequenceNumber: the provider never sets it (only MessageData's).
                "SequenceNumber": 0,
                "OrchestrationInstance": {"$type": INSTANCE_TYPE,
                                          **orchestration_instance(self.instance_id, self.execution_id)},
                "OrchestrationExecutionContext": None,
            },
            "CompressedBlobName": self.compressed_blob_name,
            "SequenceNumber": self.sequence_number,
        }
        # Episode is [DataMember(EmitDefaultValue = false)]: absent when null.
        if self.episode is not None:
            envelope["Episode"] = self.episode
        # Sender is always set by the provider (MessageData's constructor throws on null), and written
        # without $type ([JsonProperty(TypeNameHandling = TypeNameHandling.None)]).
        # OrchestrationSession.IsOutOfOrderMessage reads Sender.InstanceId of every EventRaised.
        sender = self.sender if self.sender is not None else CLIENT_SENDER
        envelope["Sender"] = {"InstanceId": sender.get("InstanceId") or "",
                              "ExecutionId": sender.get("ExecutionId") or ""}
        envelope["SerializableTraceContext"] = None
        return envelope

    def encode(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TaskMessage":
        tm = data.get("TaskMessage")
        if not isinstance(tm, dict) or not isinstance(tm.get("Event"), dict):
            raise MessageFormatError("message has no TaskMessage.Event")
        inst = tm.get("OrchestrationInstance") or {}
        sender = data.get("Sender")
        return cls(
            event=HistoryEvent.from_message(tm["Event"]),
            instance_id=inst.get("InstanceId") or "",
            execution_id=inst.get("ExecutionId"),
            sequence_number=int(data.get("SequenceNumber", tm.get("SequenceNumber", 0)) or 0),
            activity_id=str(data.get("ActivityId") or uuid.UUID(int=0)),
            episode=data.get("Episode"),
            sender={k: v for k, v in sender.items() if k != "$type"} if isinstance(sender, dict) else None,
            compressed_blob_name=data.get("CompressedBlobName"),
        )

    @property
    def large_blob_name(self) -> str:
        """Where this message's body goes when it is too large for the queue."""
        return f"{self.instance_id}/message-{uuid.UUID(self.activity_id).hex}-{self.event.type.name}.json.gz"


def queue_body(text: str, *, base64_encoded: bool) -> str:
    """The text put on the queue for a message whose JSON (or large-message wrapper) is ``text``.

    Base64 for hubs run by DurableTask.AzureStorage 1.x (extension v2, blob leases): its CloudQueue writes
    and reads Base64 (``CloudQueueMessage.AsString``), and up to 1.17.3 a raw UTF-8 body throws a
    FormatException in ``Storage/Queue.cs`` ``GetMessagesAsync`` for the whole batch, so a worker never
    gets past it (the raw fallback in ``Storage/QueueMessage.cs`` arrived in 1.17.4, commit d75526f5).
    UTF-8 for table-managed hubs (DurableTask.AzureStorage 2.x, extension v3), as their own clients write it
    (``QueueClientMessageEncoding.UTF8``, the default); every 2.x release reads Base64 too
    (``MessageManager.DeserializeQueueMessageAsync``).
    """
    return base64.b64encode(text.encode("utf-8")).decode("ascii") if base64_encoded else text


def decode_body(body: str | bytes) -> dict[str, Any]:
    """Parse a queue message body: UTF-8 JSON, or Base64 of it (older clients)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    text = body.strip()
    if not text.startswith("{"):
        try:
            text = base64.b64decode(text, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as e:
            raise MessageFormatError("message body is neither JSON nor Base64-encoded JSON") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise MessageFormatError(f"message body is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise MessageFormatError("message body is not a JSON object")
    return data


def order_messages(messages: list["TaskMessage"]) -> list["TaskMessage"]:
    """Messages for one instance in the order the provider applies them (ControlQueue.MessageOrderingComparer):
    by queue insertion time (whole seconds), then by the sender's SequenceNumber."""
    return sorted(messages, key=lambda m: (as_utc(m.inserted_on) if m.inserted_on else MIN_DATETIME,
                                           m.sequence_number))


def compressed_wrapper(blob_name: str) -> str:
    """The small message that stands in the queue for a body stored in a blob."""
    return json.dumps({
        "$type": MESSAGE_DATA_TYPE,
        "ActivityId": str(uuid.UUID(int=0)),
        "TaskMessage": None,
        "CompressedBlobName": blob_name,
        "SequenceNumber": 0,
        "SerializableTraceContext": None,
    }, separators=(",", ":"))


def visibility_delay(event: HistoryEvent, now: datetime | None = None) -> int:
    """Seconds a new message must stay invisible: timers until FireAt, scheduled starts until their time.

    As TaskHubQueue.GetVisibilityDelay. A scheduled start beyond the queue's
    limit is refused before anything is written (``check_scheduled_start``):
    a .NET worker runs an ExecutionStarted as soon as it sees it, so a start
    sent early would run early. Timers are split by the SDK into hops of at
    most 6 days (the extension's maximumShortTimerDuration), so a TimerFired
    never needs more; one that would is capped and re-sent by our engine.
    """
    now = now or utcnow()
    if event.type == EventType.TimerFired:
        due = event.get("FireAt")
    elif event.type == EventType.ExecutionStarted:
        due = event.get("ScheduledStartTime")
    else:
        return 0
    if due is None:
        return 0
    seconds = (as_utc(due) - now).total_seconds()
    seconds = min(seconds, MAX_VISIBILITY_DELAY.total_seconds())
    return max(0, int(seconds + 0.999))  # round up: never deliver before it is due


def check_scheduled_start(scheduled_start: datetime, now: datetime | None = None) -> None:
    """Refuse a scheduled start the queue cannot hold back until it is due.

    The provider sends an ExecutionStarted with the whole delay
    (TaskHubQueue.GetVisibilityDelay), which Azure Storage refuses beyond 7
    days, and its workers never re-defer a start that arrives early
    (OrchestrationSessionManager runs it at once). So a later start can
    neither be sent whole nor in hops: it is an error, before any write.
    """
    now = now or utcnow()
    ahead = as_utc(scheduled_start) - now
    if ahead > MAX_VISIBILITY_DELAY:
        raise ValueError(
            f"Invalid scheduled start time {to_iso(scheduled_start)}: it is {ahead.total_seconds() / 86400:.1f} days ahead, and an Azure "
            f"Storage task hub can delay a start by at most {MAX_VISIBILITY_DELAY.days} days (a queue message "
            "stays hidden at most that long, and a worker starts an instance as soon as it sees the message). "
            "Give a time within 7 days, or start it later with a timer trigger.")
