"""History events: one in-memory form, converted to and from its three wire forms.

A ``HistoryEvent`` holds the event's common fields plus ``props``, a dict keyed
by the .NET property names of ``DurableTask.Core.History.*Event``
(``Name``, ``Input``, ``TaskScheduledId``, ``FireAt``...). That single form is
converted, without I/O, to:

* a History table row (``to_row`` / ``from_row``): EventType as its name,
  ``_Timestamp``, nested objects as JSON text, enums as names;
* a queue message event (``to_message`` / ``from_message``): Newtonsoft JSON
  with ``$type`` on every object, EventType and enums as numbers;
* the Python SDK's replay JSON (``to_sdk``): EventType as a number, ISO times.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

from .timefmt import parse_iso, to_iso, utcnow


class EventType(IntEnum):
    ExecutionStarted = 0
    ExecutionCompleted = 1
    ExecutionFailed = 2
    ExecutionTerminated = 3
    TaskScheduled = 4
    TaskCompleted = 5
    TaskFailed = 6
    SubOrchestrationInstanceCreated = 7
    SubOrchestrationInstanceCompleted = 8
    SubOrchestrationInstanceFailed = 9
    TimerCreated = 10
    TimerFired = 11
    OrchestratorStarted = 12
    OrchestratorCompleted = 13
    EventSent = 14
    EventRaised = 15
    ContinueAsNew = 16
    GenericEvent = 17
    HistoryState = 18
    ExecutionSuspended = 19
    ExecutionResumed = 20
    ExecutionRewound = 21

    @property
    def dotnet_type(self) -> str:
        """The ``$type`` of this event in a queue message: the class in src/DurableTask.Core/History/.

        Every class is ``{EventType}Event`` except ``GenericEvent`` (GenericEvent.cs). The provider binds
        the name with ``throwOnError`` (MessageManager's TypeNameHandling binder): a wrong one is a
        message no worker can read.
        """
        return "DurableTask.Core.History." + (self.name if self == EventType.GenericEvent else self.name + "Event")


class OrchestrationStatus(IntEnum):
    """DurableTask.Core.OrchestrationStatus: numbers in messages, names in tables."""

    Running = 0
    Completed = 1
    ContinuedAsNew = 2
    Failed = 3
    Canceled = 4
    Terminated = 5
    Pending = 6
    Suspended = 7


# Properties that hold times, nested objects, or enums, by .NET property name.
DATETIME_PROPS = frozenset({"FireAt", "ScheduledStartTime"})
OBJECT_PROPS = {
    "OrchestrationInstance": "DurableTask.Core.OrchestrationInstance",
    "ParentInstance": "DurableTask.Core.ParentInstance",
    "FailureDetails": "DurableTask.Core.FailureDetails",
    "ParentTraceContext": "DurableTask.Core.Tracing.DistributedTraceContext",
}
TAGS_PROP = "Tags"
ENUM_PROPS = {"OrchestrationStatus": OrchestrationStatus}

# Property order of each event in messages and SDK JSON (after the common fields).
EVENT_PROPS: dict[EventType, tuple[str, ...]] = {
    EventType.ExecutionStarted: ("OrchestrationInstance", "ParentInstance", "Name", "Version", "Input", "Tags",
                                 "Correlation", "ScheduledStartTime", "Generation"),
    EventType.ExecutionCompleted: ("OrchestrationStatus", "Result", "FailureDetails"),
    EventType.ExecutionTerminated: ("Input",),
    EventType.TaskScheduled: ("Name", "Version", "Input"),
    EventType.TaskCompleted: ("TaskScheduledId", "Result"),
    EventType.TaskFailed: ("TaskScheduledId", "Reason", "Details", "FailureDetails"),
    EventType.SubOrchestrationInstanceCreated: ("Name", "Version", "InstanceId", "Input"),
    EventType.SubOrchestrationInstanceCompleted: ("TaskScheduledId", "Result"),
    EventType.SubOrchestrationInstanceFailed: ("TaskScheduledId", "Reason", "Details", "FailureDetails"),
    EventType.TimerCreated: ("FireAt",),
    EventType.TimerFired: ("TimerId", "FireAt"),
    EventType.OrchestratorStarted: (),
    EventType.OrchestratorCompleted: (),
    EventType.EventSent: ("InstanceId", "Name", "Input"),
    EventType.EventRaised: ("Name", "Input"),
    EventType.ContinueAsNew: ("OrchestrationStatus", "Result", "FailureDetails"),
    EventType.GenericEvent: ("Data",),
    EventType.HistoryState: ("State",),
    EventType.ExecutionSuspended: ("Reason",),
    EventType.ExecutionResumed: ("Reason",),
    EventType.ExecutionRewound: ("Reason",),
}

COMMON_COLUMNS = frozenset({"PartitionKey", "RowKey", "Timestamp", "etag", "EventType", "EventId", "IsPlayed",
                            "_Timestamp", "ExecutionId"})


def _prop(column: str) -> property:
    """A read-only attribute for one of an event's properties (None when it has none)."""
    return property(lambda self: self.props.get(column), doc=f"The event's {column} property, or None.")


@dataclass
class HistoryEvent:
    type: EventType
    event_id: int = -1
    timestamp: datetime = field(default_factory=utcnow)
    is_played: bool = False
    props: dict[str, Any] = field(default_factory=dict)
    # to_sdk() is asked for every event on every replay; events do not change once written.
    _sdk: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def get(self, prop: str, default: Any = None) -> Any:
        return self.props.get(prop, default)

    # Frequently read properties, named for readability at call sites.
    name = _prop("Name")
    input = _prop("Input")
    result = _prop("Result")
    task_scheduled_id = _prop("TaskScheduledId")

    # --- History table rows ------------------------------------------------

    def to_row(self, partition_key: str, row_key: str, execution_id: str) -> dict[str, Any]:
        row: dict[str, Any] = {
            "PartitionKey": partition_key,
            "RowKey": row_key,
            "EventType": self.type.name,
            "EventId": self.event_id,
            "IsPlayed": self.is_played,
            "_Timestamp": self.timestamp,
            "ExecutionId": execution_id,
        }
        for key, value in self.props.items():
            if value is None:
                continue
            if key in ENUM_PROPS:
                value = ENUM_PROPS[key](value).name
            elif key in OBJECT_PROPS or key == TAGS_PROP:
                value = json.dumps(_strip_types(value), separators=(",", ":"))
            row[key] = value
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "HistoryEvent":
        etype = EventType[row["EventType"]]
        props: dict[str, Any] = {}
        for key, value in row.items():
            if key in COMMON_COLUMNS or key.endswith("BlobName") or value is None:
                continue
            if key in ENUM_PROPS and isinstance(value, str):
                value = ENUM_PROPS[key][value]
            elif (key in OBJECT_PROPS or key == TAGS_PROP) and isinstance(value, str):
                value = json.loads(value) if value else None
            elif key in DATETIME_PROPS and isinstance(value, str):
                value = parse_iso(value)
            props[key] = value
        ts = row.get("_Timestamp")
        if isinstance(ts, str):
            ts = parse_iso(ts)
        return cls(etype, int(row.get("EventId", -1)), ts or utcnow(), bool(row.get("IsPlayed", False)), props)

    # --- queue messages ----------------------------------------------------

    def _head(self) -> dict[str, Any]:
        """The members every event has, in the order both wire forms write them."""
        return {"EventType": int(self.type), "EventId": self.event_id, "IsPlayed": self.is_played,
                "Timestamp": to_iso(self.timestamp)}

    def to_message(self) -> dict[str, Any]:
        out: dict[str, Any] = {"$type": self.type.dotnet_type, **self._head()}  # Newtonsoft writes $type first
        for key in _ordered(self):
            value = self.props.get(key)
            if key in ENUM_PROPS:
                out[key] = int(ENUM_PROPS[key](value)) if value is not None else None
            elif key in OBJECT_PROPS:
                out[key] = _with_types(key, value)
            elif isinstance(value, datetime):
                out[key] = to_iso(value)
            else:
                out[key] = value
        return out

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> "HistoryEvent":
        etype = EventType(int(data["EventType"]))
        props: dict[str, Any] = {}
        for key, value in data.items():
            if key in ("$type", "EventType", "EventId", "IsPlayed", "Timestamp") or value is None:
                continue
            if key in ENUM_PROPS:
                value = ENUM_PROPS[key](int(value)) if not isinstance(value, str) else ENUM_PROPS[key][value]
            elif key in OBJECT_PROPS or key == TAGS_PROP:
                value = _strip_types(value)
            elif key in DATETIME_PROPS and isinstance(value, str):
                value = parse_iso(value)
            props[key] = value
        return cls(etype, int(data.get("EventId", -1)), parse_iso(data["Timestamp"]) if data.get("Timestamp") else utcnow(),
                   bool(data.get("IsPlayed", False)), props)

    # --- the Python SDK's replay input -----------------------------------

    def to_sdk(self) -> dict[str, Any]:
        if self._sdk is None:
            self._sdk = self._build_sdk()
        return self._sdk

    def _build_sdk(self) -> dict[str, Any]:
        out = self._head()
        for key in _ordered(self):
            value = self.props.get(key)
            if isinstance(value, datetime):
                value = to_iso(value)
            elif key in ENUM_PROPS and value is not None:
                value = int(ENUM_PROPS[key](value))
            out[key] = value
        if self.type == EventType.ExecutionStarted:
            out.setdefault("Version", "")  # the SDK's ExecutionStarted requires the key
        return out


def _ordered(event: HistoryEvent) -> list[str]:
    # Newtonsoft writes every declared property, null included, then we add any extras we carried.
    known = EVENT_PROPS.get(event.type, ())
    return list(known) + [k for k in event.props if k not in known]


def _strip_types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_types(v) for k, v in value.items() if k != "$type"}
    if isinstance(value, list):
        return [_strip_types(v) for v in value]
    return value


def _with_types(key: str, value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    out = {"$type": OBJECT_PROPS[key]}
    for k, v in value.items():
        out[k] = _with_types(k, v) if k in OBJECT_PROPS else v
    return out


def serialize_tags(tags: dict[str, str] | None) -> str:
    """An Instances row's Tags column, as TagsSerializer.Serialize (JsonConvert): "null" for no tags."""
    return json.dumps(tags, separators=(",", ":"), ensure_ascii=False)


# --- constructors for the events the host and the management operations write


def orchestration_instance(instance_id: str, execution_id: str | None) -> dict[str, Any]:
    return {"InstanceId": instance_id, "ExecutionId": execution_id}


def failure_details(error_type: str, message: str, stack: str | None = None) -> dict[str, Any]:
    return {"ErrorType": error_type, "ErrorMessage": message, "StackTrace": stack, "InnerFailure": None,
            "IsNonRetriable": False}


def execution_started(instance_id: str, execution_id: str, name: str, input: str | None, *,
                      version: str = "", parent: dict | None = None, scheduled_start: datetime | None = None,
                      generation: int | None = None, tags: dict | None = None,
                      timestamp: datetime | None = None) -> HistoryEvent:
    props: dict[str, Any] = {
        "OrchestrationInstance": orchestration_instance(instance_id, execution_id),
        "ParentInstance": parent,
        "Name": name,
        "Version": version,
        "Input": input,
        "Tags": tags,
        "Correlation": None,
        "ScheduledStartTime": scheduled_start,
        "Generation": generation,
    }
    return HistoryEvent(EventType.ExecutionStarted, -1, timestamp or utcnow(), False, props)


def parent_instance(name: str, instance_id: str, execution_id: str, task_schedule_id: int,
                    version: str = "") -> dict[str, Any]:
    return {"Name": name, "Version": version, "OrchestrationInstance": orchestration_instance(instance_id, execution_id),
            "TaskScheduleId": task_schedule_id}


def event(etype: EventType, event_id: int = -1, timestamp: datetime | None = None, **props: Any) -> HistoryEvent:
    """Any other event: ``event(EventType.TaskCompleted, TaskScheduledId=3, Result='"x"')``."""
    return HistoryEvent(etype, event_id, timestamp or utcnow(), False, props)
