"""One orchestration episode, decided without I/O.

Given an instance's current history and the messages that arrived for it,
``run_episode`` decides which messages to consume, defer or drop, which
events to append, what to send, and how the Instances row changes. The
orchestrator itself is reached through a callback, so this module can be
tested with the real SDK and no storage.
"""

from __future__ import annotations

import json
import traceback
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Callable

from durable_mgmt.models import TERMINAL_STATUSES, RuntimeStatus
from durable_mgmt.taskhub.events import (EventType, HistoryEvent, OrchestrationStatus, event, execution_started,
                                         failure_details, parent_instance, serialize_tags)
from durable_mgmt.taskhub.instance_row import InstanceRow, runtime_status_of
from durable_mgmt.taskhub.messages import TaskMessage

from .replay import (CreateTimer, EpisodePlan, ScheduleActivity, SdkResult, StartSubOrchestration, parse_sdk_result,
                     plan_episode, sdk_context)

# Calls the orchestrator function ``name`` with the context JSON; returns its JSON result.
InvokeOrchestrator = Callable[[str, str], str]

_TASK_RESPONSES = {EventType.TaskCompleted, EventType.TaskFailed, EventType.SubOrchestrationInstanceCompleted,
                   EventType.SubOrchestrationInstanceFailed}
_SCHEDULING = {EventType.TaskCompleted: EventType.TaskScheduled, EventType.TaskFailed: EventType.TaskScheduled,
               EventType.SubOrchestrationInstanceCompleted: EventType.SubOrchestrationInstanceCreated,
               EventType.SubOrchestrationInstanceFailed: EventType.SubOrchestrationInstanceCreated}
TIMER_EARLY_TOLERANCE = timedelta(milliseconds=50)


@dataclass
class InstanceState:
    """The current execution of one instance, as loaded from (or cached after writing) history."""

    instance_id: str
    execution_id: str | None = None
    events: list[HistoryEvent] = field(default_factory=list)
    etag: str | None = None

    @property
    def started(self) -> HistoryEvent | None:
        return next((e for e in self.events if e.type == EventType.ExecutionStarted), None)

    @property
    def status(self) -> OrchestrationStatus | None:
        """None before the first episode; else what the history says now."""
        if not self.started:
            return None
        status = OrchestrationStatus.Running
        for e in self.events:
            status = _next_status(status, e)
        return status

    @property
    def is_terminal(self) -> bool:
        return self.status in (OrchestrationStatus.Completed, OrchestrationStatus.Failed,
                               OrchestrationStatus.Terminated, OrchestrationStatus.Canceled)


def _next_status(status: OrchestrationStatus, e: HistoryEvent) -> OrchestrationStatus:
    """The runtime status after ``e``, given the status before it (the history is a fold of these)."""
    if e.type == EventType.ExecutionCompleted:
        return OrchestrationStatus(e.get("OrchestrationStatus", OrchestrationStatus.Completed))
    if e.type == EventType.ExecutionTerminated:
        return OrchestrationStatus.Terminated
    if e.type == EventType.ExecutionSuspended and status == OrchestrationStatus.Running:
        return OrchestrationStatus.Suspended
    if e.type == EventType.ExecutionResumed and status == OrchestrationStatus.Suspended:
        return OrchestrationStatus.Running
    return status


class _EventIndex:
    """What an episode asks of its growing history for each message, answered without a scan.

    A fan-in of 500 results otherwise scans the whole history per result
    (duplicate? scheduled? status?), which is quadratic. The history list
    only grows (or is replaced for a new execution: ``reset``), so the index
    catches up with the events appended since the last question.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._seen = 0
        self._keys: set[tuple] = set()
        self._status: OrchestrationStatus | None = None

    def _catch_up(self, events: list[HistoryEvent]) -> None:
        for e in events[self._seen:]:
            self._keys.add((e.type, e.event_id))
            if e.type in _TASK_RESPONSES:
                self._keys.add(("answered", e.task_scheduled_id))
            elif e.type == EventType.TimerFired:
                self._keys.add(("fired", e.get("TimerId")))
            if e.type == EventType.ExecutionStarted and self._status is None:
                self._status = OrchestrationStatus.Running
            elif self._status is not None:
                self._status = _next_status(self._status, e)
        self._seen = len(events)

    def has(self, events: list[HistoryEvent], key: tuple) -> bool:
        self._catch_up(events)
        return key in self._keys

    def status(self, events: list[HistoryEvent]) -> OrchestrationStatus | None:
        self._catch_up(events)
        return self._status


@dataclass
class EpisodeResult:
    consumed: list[TaskMessage] = field(default_factory=list)   # delete from the queue after the commit
    deferred: list[TaskMessage] = field(default_factory=list)   # a response before its schedule: retry soon
    awaiting_start: list[TaskMessage] = field(default_factory=list)  # for an execution not started yet: keep
    new_events: list[HistoryEvent] = field(default_factory=list)
    reset_history: bool = False          # a new execution: write from row 0
    execution_id: str | None = None
    to_activities: list[TaskMessage] = field(default_factory=list)
    to_orchestrations: list[TaskMessage] = field(default_factory=list)
    row: InstanceRow | None = None  # the Instances columns to write with the history (None fields: unchanged)
    terminate_unstarted: str | None = None  # reason: mark a never-started instance Terminated
    log: list[str] = field(default_factory=list)

    @property
    def has_commit(self) -> bool:
        return bool(self.new_events)


class _Episode:
    def __init__(self, state: InstanceState, now: datetime, invoke: InvokeOrchestrator,
                 row_execution_id: str | None, row_status: RuntimeStatus | None):
        self.state = state
        self.now = now
        self.invoke = invoke
        self.row_execution_id = row_execution_id
        self.row_status = row_status
        self.out = EpisodeResult(execution_id=state.execution_id, row=InstanceRow(state.instance_id))
        self.events = list(state.events)  # the execution being built: old + new
        self.index = _EventIndex()
        self.new: list[HistoryEvent] = []
        self.needs_run = False

    # --- inbound messages --------------------------------------------------

    def take(self, messages: list[TaskMessage]) -> None:
        starts = [m for m in messages if m.event.type == EventType.ExecutionStarted]
        for m in starts + [m for m in messages if m.event.type != EventType.ExecutionStarted]:
            self.take_one(m)

    def take_one(self, m: TaskMessage) -> None:
        t = m.event.type
        status = self.current_status()
        if t == EventType.ExecutionStarted:
            self.take_start(m)
            return
        if status is None or self.restarted_but_not_started():
            if t == EventType.ExecutionTerminated and self.row_status in (RuntimeStatus.PENDING, None) \
                    and self.row_execution_id:
                self.out.terminate_unstarted = m.event.input or ""
                self.out.consumed.append(m)
            elif self.row_status == RuntimeStatus.PENDING and t != EventType.ExecutionTerminated:
                # Kept until the start message is processed (events wait for the orchestration).
                self.out.awaiting_start.append(m)
            else:
                self.drop(m, "the instance has not started")
            return
        if self.is_terminal(status):
            self.drop(m, f"the instance is already {status.name}")
            return
        if m.execution_id and m.execution_id != self.current_execution_id() and t in (
                _TASK_RESPONSES | {EventType.TimerFired}):
            self.drop(m, "it belongs to an earlier execution")
            return
        if t in _TASK_RESPONSES:
            task_id = m.event.task_scheduled_id
            if self.has(("answered", task_id)):
                self.drop(m, f"task #{task_id} already completed (duplicate)")
                return
            if not self.has((_SCHEDULING[t], task_id)):
                self.out.deferred.append(m)  # arrived before the history that scheduled it
                return
        elif t == EventType.TimerFired:
            timer_id = m.event.get("TimerId")
            if self.has(("fired", timer_id)):
                self.drop(m, f"timer #{timer_id} already fired (duplicate)")
                return
            if not self.has((EventType.TimerCreated, timer_id)):
                self.out.deferred.append(m)
                return
            fire_at = m.event.get("FireAt")
            if fire_at and fire_at - self.now > TIMER_EARLY_TOLERANCE:
                # A long timer's intermediate hop: send it on for the rest of the wait.
                self.out.to_orchestrations.append(TaskMessage(m.event, m.instance_id, m.execution_id,
                                                              sender=m.sender))
                self.out.consumed.append(m)
                return
        elif t not in (EventType.EventRaised, EventType.ExecutionTerminated, EventType.ExecutionSuspended,
                       EventType.ExecutionResumed, EventType.GenericEvent):
            self.drop(m, f"{t.name} messages are not handled")
            return
        if t == EventType.ExecutionSuspended and status == OrchestrationStatus.Suspended:
            self.drop(m, "the instance is already suspended")
            return
        if t == EventType.ExecutionResumed and status != OrchestrationStatus.Suspended:
            self.drop(m, "the instance is not suspended")
            return
        self.append(self.inbound_event(m))
        self.out.consumed.append(m)
        if t == EventType.ExecutionTerminated:
            reason = m.event.input
            self.append(event(EventType.ExecutionCompleted, -1, self.now,
                              OrchestrationStatus=OrchestrationStatus.Terminated, Result=reason))
        elif t not in (EventType.ExecutionSuspended,):
            self.needs_run = True

    def take_start(self, m: TaskMessage) -> None:
        status = self.current_status()
        if self.current_execution_id() == m.execution_id and status is not None:
            self.drop(m, "this execution already started (duplicate)")
            return
        if self.row_execution_id and self.row_execution_id != m.execution_id:
            if self.row_status in TERMINAL_STATUSES:
                # A restart of a finished id: the client sends the start, then replaces the row. Wait for it.
                self.out.deferred.append(m)
            else:
                self.drop(m, "the instance was started again since (this start is superseded)")
            return
        if self.row_status == RuntimeStatus.TERMINATED and self.row_execution_id == m.execution_id:
            self.drop(m, "the instance was terminated before it started")
            return
        if status is not None and not self.is_terminal(status):
            self.drop(m, "another execution of this instance is still running")
            return
        due = m.event.get("ScheduledStartTime")
        if due is not None and due - self.now > TIMER_EARLY_TOLERANCE:
            # Early (a clock ahead of ours, or a start written before the 7-day limit was enforced): send it on
            # for the rest of the wait. A .NET worker would run it at once; our writer never sends one early.
            self.out.to_orchestrations.append(TaskMessage(m.event, m.instance_id, m.execution_id, sender=m.sender))
            self.out.consumed.append(m)
            return
        self.begin_execution(m.event.props, m.execution_id, m.event.timestamp)
        self.out.consumed.append(m)

    def restarted_but_not_started(self) -> bool:
        """The row names a new Pending execution, while history still holds the previous one."""
        return (self.row_status == RuntimeStatus.PENDING and self.row_execution_id is not None
                and self.row_execution_id != self.current_execution_id()
                and self.is_terminal(self.current_status()))

    def begin_execution(self, started_props: dict[str, Any], execution_id: str | None, timestamp: datetime) -> None:
        """Start a new execution: history restarts at row 0 (the provider overwrites, readers stop at
        the first row of another execution)."""
        execution_id = execution_id or uuid.uuid4().hex
        props = dict(started_props)
        props["OrchestrationInstance"] = {"InstanceId": self.state.instance_id, "ExecutionId": execution_id}
        started = HistoryEvent(EventType.ExecutionStarted, -1, timestamp, False, props)
        self.events, self.new = [], []
        self.index.reset()
        self.out.reset_history = True
        self.out.execution_id = execution_id
        self.append(started)
        self.needs_run = True
        row = replace(self.out.row, name=props.get("Name"), version=props.get("Version") or "",
                      input=props.get("Input"), execution_id=execution_id, runtime_status=RuntimeStatus.RUNNING,
                      generation=props.get("Generation"), created_time=timestamp, output=None, completed_time=None,
                      # AzureTableTrackingStore.UpdateStateAsync on ExecutionStarted: TagsSerializer.Serialize(Tags).
                      tags=serialize_tags(props.get("Tags")))
        if props.get("ScheduledStartTime"):
            row = replace(row, scheduled_start_time=props["ScheduledStartTime"])
        self.out.row = row

    def inbound_event(self, m: TaskMessage) -> HistoryEvent:
        # Inbound events are recorded with their own timestamp and no id, as DTFx does.
        return HistoryEvent(m.event.type, -1, m.event.timestamp, False, dict(m.event.props))

    def drop(self, m: TaskMessage, why: str) -> None:
        self.out.consumed.append(m)
        self.out.log.append(f"dropped {m.event.type.name} for {m.instance_id!r}: {why}")

    # --- state helpers -----------------------------------------------------

    def append(self, ev: HistoryEvent) -> None:
        if not self.new:
            self.new.append(event(EventType.OrchestratorStarted, -1, self.now))
            self.events.append(self.new[0])
        self.new.append(ev)
        self.events.append(ev)

    def has(self, key: tuple) -> bool:
        return self.index.has(self.events, key)

    def current_status(self) -> OrchestrationStatus | None:
        return self.index.status(self.events)

    def current_execution_id(self) -> str | None:
        return self.out.execution_id

    @staticmethod
    def is_terminal(status: OrchestrationStatus | None) -> bool:
        return status in (OrchestrationStatus.Completed, OrchestrationStatus.Failed, OrchestrationStatus.Terminated,
                          OrchestrationStatus.Canceled)

    # --- running the orchestrator -----------------------------------------

    def run(self) -> None:
        for _ in range(100):  # continue-as-new loops within one episode are bounded
            if not self.needs_run or self.current_status() != OrchestrationStatus.Running:
                return
            self.needs_run = False
            started = next(e for e in self.events if e.type == EventType.ExecutionStarted)
            name = started.name or ""
            parent = started.get("ParentInstance") or None
            old_count = len(self.events) - len(self.new)
            context = sdk_context(self.state.instance_id, self.events, input=started.input,
                                  parent_instance_id=((parent or {}).get("OrchestrationInstance") or {}).get(
                                      "InstanceId"),
                                  is_replaying=old_count > 0)
            result = self.call(name, context)
            self.out.row = replace(self.out.row, custom_status="null" if result.custom_status is None
                                   else _dumps(result.custom_status))
            if result.failed:
                self.fail(name, result.error or "", result.details)
                return
            plan = plan_episode(self.state.instance_id, self.events, result)
            if plan.problem:
                self.fail(name, plan.problem, None)
                return
            self.schedule(plan)
            if plan.continued_as_new:
                self.continue_as_new(started, plan)
                continue
            if result.is_done:
                self.complete(OrchestrationStatus.Completed, _dumps(result.output))
            return

    def call(self, name: str, context: str) -> SdkResult:
        try:
            return parse_sdk_result(self.invoke(name, context))
        except Exception as e:  # the SDK reports orchestrator failures by raising
            return parse_sdk_result(raised=e, traceback_text=_traceback(e))

    def schedule(self, plan: EpisodePlan) -> None:
        execution_id = self.out.execution_id
        for work in plan.new_work:
            if isinstance(work, ScheduleActivity):
                ev = event(EventType.TaskScheduled, work.task_id, self.now, Name=work.name, Version="",
                           Input=work.input)
                self.out.to_activities.append(TaskMessage(ev, self.state.instance_id, execution_id))
            elif isinstance(work, CreateTimer):
                ev = event(EventType.TimerCreated, work.task_id, self.now, FireAt=work.fire_at)
                fired = event(EventType.TimerFired, -1, self.now, TimerId=work.task_id, FireAt=work.fire_at)
                self.out.to_orchestrations.append(TaskMessage(fired, self.state.instance_id, execution_id))
            elif isinstance(work, StartSubOrchestration):
                ev = event(EventType.SubOrchestrationInstanceCreated, work.task_id, self.now, Name=work.name,
                           Version="", InstanceId=work.instance_id, Input=work.input)
                started = self.started_event()
                child_exec = uuid.uuid4().hex
                start = execution_started(
                    work.instance_id, child_exec, work.name, work.input, timestamp=self.now,
                    parent=parent_instance(started.name or "", self.state.instance_id, execution_id, work.task_id),
                    generation=0)
                self.out.to_orchestrations.append(TaskMessage(start, work.instance_id, child_exec))
            else:  # pragma: no cover - exhaustive
                continue
            self.append(ev)

    def started_event(self) -> HistoryEvent:
        return next(e for e in self.events if e.type == EventType.ExecutionStarted)

    def continue_as_new(self, started: HistoryEvent, plan: EpisodePlan) -> None:
        # Record the end of this execution's episode, then begin the next one in place.
        self.append(event(EventType.OrchestratorCompleted, -1, self.now))
        props = dict(started.props)
        props["Input"] = plan.continue_as_new
        previous = self.out.execution_id
        self.begin_execution(props, None, self.now)
        self.out.row = replace(self.out.row, runtime_status=RuntimeStatus.RUNNING)
        self.out.log.append(f"{self.state.instance_id!r} continued as new (previous execution {previous})")

    def fail(self, name: str, error: str, details: str | None) -> None:
        message = f"Orchestrator function '{name}' failed: {error}"
        self.complete(OrchestrationStatus.Failed, message,
                      failure=failure_details("OrchestrationFailureException", message, details))

    def complete(self, status: OrchestrationStatus, result: str | None, *, failure: dict | None = None) -> None:
        self.append(event(EventType.ExecutionCompleted, -1, self.now, OrchestrationStatus=status, Result=result,
                          FailureDetails=failure))

    # --- the outcome -------------------------------------------------------

    def finish(self) -> EpisodeResult:
        if self.new:
            self.append(event(EventType.OrchestratorCompleted, -1, self.now))
            self.out.new_events = self.new
            self.row_for_outcome()
            self.notify_parent()
        return self.out

    def row_for_outcome(self) -> None:
        status = self.current_status()
        row = replace(self.out.row, last_updated_time=self.now, execution_id=self.out.execution_id,
                      runtime_status=runtime_status_of(status) if status is not None else RuntimeStatus.PENDING)
        completed = next((e for e in reversed(self.new) if e.type == EventType.ExecutionCompleted), None)
        if completed is not None:
            row = replace(row, output=completed.result, completed_time=self.now)
        else:
            for e in reversed(self.new):
                if e.type in (EventType.ExecutionSuspended, EventType.ExecutionResumed):
                    row = replace(row, output=e.get("Reason"))  # as the provider does: the reason shows as output
                    break
        self.out.row = row

    def notify_parent(self) -> None:
        completed = next((e for e in reversed(self.new) if e.type == EventType.ExecutionCompleted), None)
        if completed is None:
            return
        started = self.started_event()
        parent = started.get("ParentInstance")
        if not parent:
            return
        target = parent.get("OrchestrationInstance") or {}
        task_id = parent.get("TaskScheduleId")
        status = OrchestrationStatus(completed.get("OrchestrationStatus"))
        if status == OrchestrationStatus.Completed:
            ev = event(EventType.SubOrchestrationInstanceCompleted, -1, self.now, TaskScheduledId=task_id,
                       Result=completed.result)
        else:
            fd = completed.get("FailureDetails") or {}
            reason = completed.result if status == OrchestrationStatus.Failed else (
                f"Sub-orchestration '{self.state.instance_id}' was {status.name.lower()}: {completed.result or ''}")
            ev = event(EventType.SubOrchestrationInstanceFailed, -1, self.now, TaskScheduledId=task_id,
                       Reason=reason, Details=fd.get("StackTrace"))
        self.out.to_orchestrations.append(TaskMessage(ev, target.get("InstanceId"), target.get("ExecutionId")))


def run_episode(state: InstanceState, messages: list[TaskMessage], invoke: InvokeOrchestrator, *,
                now: datetime, row_execution_id: str | None = None,
                row_status: RuntimeStatus | None = None) -> EpisodeResult:
    """Decide one episode of ``state`` for ``messages`` (see the module docstring).

    ``row_execution_id`` and ``row_status`` come from the Instances row; they
    are needed only when the instance has no history yet or a start arrives.
    """
    ep = _Episode(state, now, invoke, row_execution_id, row_status)
    ep.take(messages)
    ep.run()
    return ep.finish()


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _traceback(e: BaseException) -> str:
    text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    return text.split("\n\n$OutOfProcData$")[0][-8000:]
