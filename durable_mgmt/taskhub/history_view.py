"""History as the HTTP management API shows it (``showHistory=true``).

The extension's rules (DurableClient.GetStatusAsync): EventType by name;
TaskScheduled and SubOrchestrationInstanceCreated folded into the event that
answers them (``FunctionName``, ``ScheduledTime``); OrchestratorStarted and
OrchestratorCompleted dropped; ``Result`` only with showHistoryOutput, then as
a JSON value; ``Input`` only with showInput; no EventId or IsPlayed.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..models import parse_json_text
from .events import EventType, HistoryEvent, OrchestrationStatus
from .timefmt import to_iso

_HIDDEN = {"OrchestrationInstance", "ParentInstance", "Version", "Tags", "Correlation", "ParentTraceContext"}
_ANSWERS = {
    EventType.TaskCompleted: EventType.TaskScheduled,
    EventType.TaskFailed: EventType.TaskScheduled,
    EventType.SubOrchestrationInstanceCompleted: EventType.SubOrchestrationInstanceCreated,
    EventType.SubOrchestrationInstanceFailed: EventType.SubOrchestrationInstanceCreated,
}
_WITH_RESULT = {EventType.TaskCompleted, EventType.SubOrchestrationInstanceCompleted, EventType.ExecutionCompleted}


def render_history(events: Iterable[HistoryEvent], *, show_output: bool = False,
                   show_input: bool = False) -> list[dict[str, Any]]:
    events = list(events)
    scheduled: dict[tuple[EventType, int], tuple[int, HistoryEvent]] = {}
    for i, ev in enumerate(events):
        if ev.type in (EventType.TaskScheduled, EventType.SubOrchestrationInstanceCreated):
            scheduled[(ev.type, ev.event_id)] = (i, ev)

    folded: set[int] = set()
    out: list[tuple[int, dict[str, Any]]] = []
    for i, ev in enumerate(events):
        if ev.type in (EventType.OrchestratorStarted, EventType.OrchestratorCompleted):
            continue
        item: dict[str, Any] = {"EventType": ev.type.name, "Timestamp": to_iso(ev.timestamp)}
        for key, value in ev.props.items():
            if key in _HIDDEN or value is None and key not in ("Input", "Result"):
                continue
            item[key] = to_iso(value) if hasattr(value, "isoformat") else value
        if ev.type == EventType.ExecutionStarted:
            item["FunctionName"] = item.pop("Name", None)
        elif ev.type == EventType.ExecutionCompleted and "OrchestrationStatus" in item:
            item["OrchestrationStatus"] = OrchestrationStatus(item["OrchestrationStatus"]).name
        elif ev.type == EventType.TimerFired:
            item.pop("TimerId", None)
        answered = _ANSWERS.get(ev.type)
        if answered is not None:
            match = scheduled.get((answered, ev.task_scheduled_id))
            item.pop("TaskScheduledId", None)
            if match:
                idx, sched = match
                folded.add(idx)
                item["ScheduledTime"] = to_iso(sched.timestamp)
                item["FunctionName"] = sched.name
                if show_input:
                    item["Input"] = sched.input
        if ev.type in _WITH_RESULT:
            if show_output:
                item["Result"] = parse_json_text(ev.result)
            else:
                item.pop("Result", None)
        if not show_input:
            item.pop("Input", None)
        out.append((i, item))
    return [item for i, item in out if i not in folded]
