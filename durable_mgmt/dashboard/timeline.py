"""An instance's history as table rows and as Gantt spans (activities, timers, sub-orchestrations).

Over storage the raw events are read (they keep the parent and child
instance ids that the management API's rendering drops); over other
transports the management API's history is used, without those links.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..manager import InstanceManager
from ..models import parse_json_text
from ..taskhub.timefmt import parse_iso
from ..transports import StorageTransport


@dataclass(frozen=True)
class Event:
    """One row of the history table."""

    event_type: str
    timestamp: datetime | None
    event_id: int | None
    name: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class Span:
    """One bar of the timeline: ``end`` None while it is still open."""

    kind: str  # activity, timer, suborchestration
    name: str
    start: datetime
    end: datetime | None
    outcome: str  # completed, failed, pending
    instance_id: str | None = None  # a sub-orchestration's child instance

    @property
    def seconds(self) -> float | None:
        return (self.end - self.start).total_seconds() if self.end else None


@dataclass(frozen=True)
class Timeline:
    events: tuple[Event, ...]
    spans: tuple[Span, ...]
    parent_id: str | None
    child_ids: tuple[str, ...]
    raw: list[dict[str, Any]]  # what the history download holds


async def load_timeline(manager: InstanceManager, instance_id: str) -> Timeline:
    transport = manager.transport
    if isinstance(transport, StorageTransport):
        events = await manager.history(instance_id)
        return _from_raw(events)
    status = await manager.status(instance_id, show_history=True, show_history_output=True)
    return _from_rendered(list(status.history or ()))


def _from_raw(events: list) -> Timeline:
    rows: list[Event] = []
    raw: list[dict[str, Any]] = []
    spans: list[Span] = []
    open_tasks: dict[int, tuple[str, str, datetime, str | None]] = {}
    open_timers: dict[int, tuple[datetime, Any]] = {}
    parent_id = None
    children: list[str] = []
    for ev in events:
        kind = ev.type.name
        props = {k: v for k, v in ev.props.items() if v is not None}
        details = {k: (v.isoformat() if hasattr(v, "isoformat") else _decoded(k, v)) for k, v in props.items()}
        rows.append(Event(kind, ev.timestamp, ev.event_id, ev.name, details))
        raw.append({"EventType": kind, "EventId": ev.event_id, "Timestamp": ev.timestamp.isoformat(), **details})
        if kind == "ExecutionStarted":
            parent_id = _find_instance_id(props.get("ParentInstance")) or parent_id
        elif kind == "TaskScheduled":
            open_tasks[ev.event_id] = ("activity", ev.name or "", ev.timestamp, None)
        elif kind == "SubOrchestrationInstanceCreated":
            child = props.get("InstanceId")
            if child:
                children.append(str(child))
            open_tasks[ev.event_id] = ("suborchestration", ev.name or "", ev.timestamp, child)
        elif kind in ("TaskCompleted", "TaskFailed", "SubOrchestrationInstanceCompleted",
                      "SubOrchestrationInstanceFailed"):
            opened = open_tasks.pop(ev.task_scheduled_id, None)
            if opened:
                what, name, start, child = opened
                spans.append(Span(what, name, start, ev.timestamp,
                                  "failed" if kind.endswith("Failed") else "completed", child))
        elif kind == "TimerCreated":
            open_timers[ev.event_id] = (ev.timestamp, props.get("FireAt"))
        elif kind == "TimerFired":
            opened_timer = open_timers.pop(props.get("TimerId"), None)
            if opened_timer:
                # A TimerFired event is written when the timer is scheduled (its message waits until FireAt),
                # so its own timestamp says nothing: the timer ran from its creation to FireAt.
                start, fire_at = opened_timer
                end = fire_at if isinstance(fire_at, datetime) else ev.timestamp
                spans.append(Span("timer", f"until {_fmt(fire_at)}", start, max(end, start), "completed"))
    for what, name, start, child in open_tasks.values():
        spans.append(Span(what, name, start, None, "pending", child))
    for start, fire_at in open_timers.values():
        spans.append(Span("timer", f"until {_fmt(fire_at)}", start, None, "pending"))
    spans.sort(key=lambda s: s.start)
    return Timeline(tuple(rows), tuple(spans), parent_id, tuple(dict.fromkeys(children)), raw)


def _from_rendered(history: list[dict[str, Any]]) -> Timeline:
    rows, spans, children = [], [], []
    for item in history:
        details = {k: v for k, v in item.items() if k not in ("EventType", "Timestamp")}
        stamp = _time(item.get("Timestamp"))
        rows.append(Event(item.get("EventType", ""), stamp, None, item.get("FunctionName") or item.get("Name"),
                          details))
        kind = item.get("EventType", "")
        scheduled = _time(item.get("ScheduledTime"))
        if scheduled and stamp and kind.startswith(("Task", "SubOrchestrationInstance")):
            what = "activity" if kind.startswith("Task") else "suborchestration"
            spans.append(Span(what, item.get("FunctionName") or "", scheduled, stamp,
                              "failed" if kind.endswith("Failed") else "completed"))
        if kind == "SubOrchestrationInstanceCreated" and item.get("InstanceId"):
            children.append(item["InstanceId"])
    return Timeline(tuple(rows), tuple(spans), None, tuple(children), history)


def _find_instance_id(value: Any) -> str | None:
    """The ``InstanceId`` inside a ParentInstance value (a dict, possibly nested, or its JSON text)."""
    if isinstance(value, str):
        value = parse_json_text(value)
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "InstanceId" and isinstance(inner, str):
                return inner
            found = _find_instance_id(inner) if isinstance(inner, dict) else None
            if found:
                return found
    return None


def _decoded(key: str, value: Any) -> Any:
    return parse_json_text(value) if key in ("Input", "Result", "Details") and isinstance(value, str) else value


def _time(text: Any) -> datetime | None:
    try:
        return parse_iso(text) if text else None
    except (TypeError, ValueError):
        return None


def _fmt(value: Any) -> str:
    return value.strftime("%H:%M:%S") if hasattr(value, "strftime") else str(value)


@dataclass(frozen=True)
class Bar:
    span: Span
    x: float  # percent of the timeline's width
    width: float


def gantt(spans: tuple[Span, ...], now: datetime, limit: int = 500) -> tuple[list[Bar], float]:
    """Bars placed on one time axis (open spans run to ``now``), and the axis length in seconds.

    At most ``limit`` bars: an orchestration with thousands of activities stays a page, not a hang.
    """
    shown = spans[:limit]
    if not shown:
        return [], 0.0
    t0 = min(s.start for s in shown)
    t1 = max((s.end or now) for s in shown)
    total = max((t1 - t0).total_seconds(), 0.001)
    bars = []
    for s in shown:
        x = (s.start - t0).total_seconds() / total * 100
        w = ((s.end or now) - s.start).total_seconds() / total * 100
        bars.append(Bar(s, round(x, 3), round(max(w, 0.4), 3)))
    return bars, total
