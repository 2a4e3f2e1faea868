"""The pure core of orchestration replay: history in, decisions out, no I/O.

One orchestration episode goes through three steps, all here:

1. ``sdk_context``: the JSON the Python SDK's orchestrator handle reads
   (history, input, instance id...).
2. ``parse_sdk_result``: what the handle returned (or raised, with the
   ``$OutOfProcData$`` state appended to the message).
3. ``plan_episode``: which new history events and messages follow from the
   SDK's actions.

Task ids. The SDK numbers every task it yields (and every retry timer and
retried attempt) with one counter, and expects the host to write
TaskScheduled/TimerCreated/SubOrchestrationInstanceCreated events with the
same numbers. The Durable Functions extension gets those numbers by feeding
the SDK's action list, one top-level action at a time, into the Durable Task
Framework's context while DTFx replays the history (``OutOfProcOrchestrationShim
.ProcessAsyncActionsV2``), with DTFx's retry interceptor creating a timer after
each failed attempt. ``_Shim`` below is that same process in miniature: a
deterministic, single-threaded simulation in which continuations run as soon
as the event that completes a task is replayed. Ids that history already
records are confirmed; the rest are this episode's new work.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from durable_mgmt.taskhub.events import EventType, HistoryEvent
from durable_mgmt.taskhub.timefmt import parse_iso

OUT_OF_PROC_MARKER = "$OutOfProcData$:"
SCHEMA_VERSION = 2


class ActionType:
    CALL_ACTIVITY = 0
    CALL_ACTIVITY_WITH_RETRY = 1
    CALL_SUB_ORCHESTRATOR = 2
    CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
    CONTINUE_AS_NEW = 4
    CREATE_TIMER = 5
    WAIT_FOR_EXTERNAL_EVENT = 6
    CALL_ENTITY = 7
    CALL_HTTP = 8
    SIGNAL_ENTITY = 9
    WHEN_ANY = 11
    WHEN_ALL = 12


UNSUPPORTED_ACTIONS = {
    ActionType.CALL_ENTITY: "durable entities (call_entity)",
    ActionType.SIGNAL_ENTITY: "durable entities (signal_entity)",
    ActionType.CALL_HTTP: "durable HTTP calls (call_http)",
}


# --- 1. the SDK's input -----------------------------------------------------


# .NET TimeSpan.ToString("c") of the Azure Storage provider's limits (AzureStorageDurabilityProvider).
MAXIMUM_SHORT_TIMER = "6.00:00:00"
LONG_TIMER_INTERVAL = "3.00:00:00"


def sdk_context(instance_id: str, history: list[HistoryEvent], *, input: str | None,
                parent_instance_id: str | None, is_replaying: bool) -> str:
    """The context JSON for the SDK's orchestrator handle.

    Rewound failures (GenericEvent rows) are left out: the SDK would ignore
    them anyway, and they carry no id.
    """
    return json.dumps({
        "history": [e.to_sdk() for e in history if e.type != EventType.GenericEvent],
        "input": input,
        "instanceId": instance_id,
        "isReplaying": is_replaying,
        "parentInstanceId": parent_instance_id,
        # upperSchemaVersion 2 is the SDK's ReplaySchema.V3.
        "upperSchemaVersion": SCHEMA_VERSION,
        "upperSchemaVersionNew": SCHEMA_VERSION,
        # As the extension (OrchestrationTriggerAttributeBindingProvider.OrchestrationContextToString, with
        # AzureStorageDurabilityProvider's MaximumDelayTime 6 days and LongRunningTimerIntervalLength 3 days):
        # the SDK splits a longer timer into TimerCreated hops of 3 days, so no TimerFired message ever needs
        # to stay hidden longer than a queue allows, and a .NET worker taking the hub over fires each on time.
        "longRunningTimerIntervalDuration": LONG_TIMER_INTERVAL,
        "maximumShortTimerDuration": MAXIMUM_SHORT_TIMER,
    }, separators=(",", ":"))


# --- 2. the SDK's output ----------------------------------------------------


@dataclass
class SdkResult:
    is_done: bool = False
    actions: list[dict[str, Any]] = field(default_factory=list)
    output: Any = None
    error: str | None = None
    custom_status: Any = None
    details: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


def parse_sdk_result(returned: str | None = None, raised: BaseException | None = None,
                     traceback_text: str | None = None) -> SdkResult:
    """Interpret what the orchestrator handle returned, or the exception it raised."""
    if raised is not None:
        message = str(raised)
        state_text = None
        if OUT_OF_PROC_MARKER in message:
            message, _, state_text = message.partition(OUT_OF_PROC_MARKER)
            message = message.rstrip()
        result = _state(state_text) if state_text else SdkResult()
        result.error = result.error or message or type(raised).__name__
        result.details = traceback_text
        return result
    return _state(returned or "{}")


def _state(text: str) -> SdkResult:
    data = json.loads(text)
    actions = data.get("actions") or []
    # Schema V2+: [[every action so far]]; V1 would be a list per episode.
    flat: list[dict[str, Any]] = []
    for group in actions:
        flat.extend(group if isinstance(group, list) else [group])
    return SdkResult(bool(data.get("isDone")), flat, data.get("output"), data.get("error"),
                     data.get("customStatus"))


# --- 3. the plan -----------------------------------------------------------


@dataclass(frozen=True)
class ScheduleActivity:
    task_id: int
    name: str
    input: str | None


@dataclass(frozen=True)
class CreateTimer:
    task_id: int
    fire_at: datetime


@dataclass(frozen=True)
class StartSubOrchestration:
    task_id: int
    name: str
    instance_id: str
    input: str | None


NewWork = ScheduleActivity | CreateTimer | StartSubOrchestration


@dataclass
class EpisodePlan:
    """What follows from one run of the orchestrator over its history."""

    new_work: list[NewWork] = field(default_factory=list)
    continue_as_new: str | None = None  # the new input (JSON text), when the SDK continued as new
    continued_as_new: bool = False
    problem: str | None = None  # non-determinism or an unsupported action: the orchestration must fail


class _Future:
    """A task in the simulation: completes once, runs its callbacks at once."""

    __slots__ = ("done", "ok", "_callbacks")

    def __init__(self) -> None:
        self.done = False
        self.ok = True
        self._callbacks: list[Callable[["_Future"], None]] = []

    def then(self, callback: Callable[["_Future"], None]) -> None:
        if self.done:
            callback(self)
        else:
            self._callbacks.append(callback)

    def resolve(self, ok: bool = True) -> None:
        if self.done:
            return
        self.done, self.ok = True, ok
        callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            cb(self)


def _resolved(ok: bool = True) -> _Future:
    f = _Future()
    f.resolve(ok)
    return f


def _when_all(children: list[_Future]) -> _Future:
    f = _Future()
    remaining = [len(children)]
    if not children:
        f.resolve()

    def one(child: _Future) -> None:
        remaining[0] -= 1
        if remaining[0] == 0:
            f.resolve(all(c.ok for c in children))

    for c in children:
        c.then(one)
    return f


def _when_any(children: list[_Future]) -> _Future:
    f = _Future()
    for c in children:
        c.then(lambda _c: f.resolve())
    if not children:
        f.resolve()
    return f


_CONFIRMS = {
    EventType.TaskScheduled: ScheduleActivity,
    EventType.TimerCreated: CreateTimer,
    EventType.SubOrchestrationInstanceCreated: StartSubOrchestration,
}
_COMPLETES = {
    EventType.TaskCompleted: True, EventType.TaskFailed: False,
    EventType.SubOrchestrationInstanceCompleted: True, EventType.SubOrchestrationInstanceFailed: False,
}


class _Shim:
    """DTFx's context plus the extension's out-of-proc shim, simulated (see module docstring)."""

    def __init__(self, instance_id: str, actions: list[dict[str, Any]]):
        self.instance_id = instance_id
        self.actions = actions
        self.next_index = 0
        self.next_id = 0
        self.now: datetime | None = None
        self.pending: dict[int, NewWork] = {}
        self.open: dict[int, _Future] = {}
        self.waiters: dict[str, deque[_Future]] = {}
        self.buffered: dict[str, int] = {}
        self.plan = EpisodePlan()
        self.started = False

    # The shim's loop: issue one top-level action, wait for it, issue the next.
    def advance(self, _f: _Future | None = None) -> None:
        while self.next_index < len(self.actions) and self.plan.problem is None:
            action = self.actions[self.next_index]
            self.next_index += 1
            f = self.invoke(action)
            if not f.done:
                f.then(self.advance)
                return

    def invoke(self, action: dict[str, Any]) -> _Future:
        kind = action.get("actionType")
        if kind == ActionType.CALL_ACTIVITY:
            return self.schedule(ScheduleActivity, action["functionName"], action.get("input"))
        if kind == ActionType.CALL_SUB_ORCHESTRATOR:
            return self.schedule(StartSubOrchestration, action["functionName"], action.get("input"),
                                 action.get("instanceId"))
        if kind in (ActionType.CALL_ACTIVITY_WITH_RETRY, ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY):
            work = ScheduleActivity if kind == ActionType.CALL_ACTIVITY_WITH_RETRY else StartSubOrchestration
            return self.with_retry(work, action)
        if kind == ActionType.CREATE_TIMER:
            f = self.timer(parse_iso(action["fireAt"]))
            if action.get("isCanceled"):
                # A canceled timer is still created (its id is used), but nobody waits for it.
                return _resolved(False)
            return f
        if kind == ActionType.WAIT_FOR_EXTERNAL_EVENT:
            return self.wait_for_event(action["externalEventName"])
        if kind == ActionType.CONTINUE_AS_NEW:
            self.plan.continued_as_new = True
            self.plan.continue_as_new = action.get("input")
            return _resolved()
        if kind == ActionType.WHEN_ALL:
            return _when_all([self.invoke(a) for a in action.get("compoundActions") or []])
        if kind == ActionType.WHEN_ANY:
            return _when_any([self.invoke(a) for a in action.get("compoundActions") or []])
        what = UNSUPPORTED_ACTIONS.get(kind, f"action type {kind!r}")
        self.plan.problem = f"funcpy's local host does not support {what}."
        return _Future()

    def schedule(self, work: type, name: str, input: str | None, instance_id: str | None = None) -> _Future:
        task_id = self.take_id()
        if work is ScheduleActivity:
            self.pending[task_id] = ScheduleActivity(task_id, name, input)
        else:
            child = instance_id or f"{self.instance_id}:{task_id:04X}"
            self.pending[task_id] = StartSubOrchestration(task_id, name, child, input)
        f = self.open[task_id] = _Future()
        return f

    def timer(self, fire_at: datetime) -> _Future:
        task_id = self.take_id()
        self.pending[task_id] = CreateTimer(task_id, fire_at)
        f = self.open[task_id] = _Future()
        return f

    def with_retry(self, work: type, action: dict[str, Any]) -> _Future:
        """DTFx's RetryInterceptor: attempt, and after every failure wait (a timer) before the next.

        After the last failed attempt there is one more timer before the task
        fails: DTFx computes the delay before checking the attempt count, and
        the SDK expects exactly that timer.
        """
        options = action.get("retryOptions") or {}
        attempts = max(1, int(options.get("maxNumberOfAttempts", 1)))
        first_interval = timedelta(milliseconds=float(options.get("firstRetryIntervalInMilliseconds", 0)))
        backoff = float(options.get("backoffCoefficient", 1.0))
        max_interval = options.get("maxRetryIntervalInMilliseconds")
        timeout = options.get("retryTimeoutInMilliseconds")
        started_at = self.now
        result = _Future()

        def delay(retry_count: int) -> timedelta:
            if timeout is not None and self.now >= started_at + timedelta(milliseconds=float(timeout)):
                return timedelta(0)
            d = first_interval * (backoff ** retry_count)
            if max_interval is not None:
                d = min(d, timedelta(milliseconds=float(max_interval)))
            return d

        def attempt(retry_count: int) -> None:
            f = self.schedule(work, action["functionName"], action.get("input"), action.get("instanceId"))
            f.then(lambda done: after(retry_count, done))

        def after(retry_count: int, done: _Future) -> None:
            if done.ok:
                result.resolve(True)
                return
            d = delay(retry_count)
            if d <= timedelta(0):
                result.resolve(False)
                return
            wait = self.timer(self.now + d)
            wait.then(lambda _t: attempt(retry_count + 1) if retry_count + 1 < attempts else result.resolve(False))

        attempt(0)
        return result

    def wait_for_event(self, name: str) -> _Future:
        if self.buffered.get(name):
            self.buffered[name] -= 1
            return _resolved()
        f = _Future()
        self.waiters.setdefault(name, deque()).append(f)
        return f

    def take_id(self) -> int:
        task_id = self.next_id
        self.next_id += 1
        return task_id

    # Replay of history events, in order.
    def replay(self, event: HistoryEvent) -> None:
        t = event.type
        if t == EventType.OrchestratorStarted:
            if self.now is None or event.timestamp > self.now:
                self.now = event.timestamp
        elif t == EventType.ExecutionStarted:
            self.now = self.now or event.timestamp
            self.started = True
            self.advance()
        elif t in _CONFIRMS:
            work = self.pending.pop(event.event_id, None)
            if not isinstance(work, _CONFIRMS[t]) or (
                    hasattr(work, "name") and event.name is not None and work.name != event.name):
                self.plan.problem = (
                    f"Non-deterministic orchestration: history has {t.name} #{event.event_id}"
                    f" ({event.name or ''}) but the orchestrator now schedules "
                    f"{_describe(work)} there. Orchestrator code must make the same calls in the same order "
                    "on every replay.")
        elif t in _COMPLETES:
            f = self.open.pop(event.task_scheduled_id, None)
            if f is not None:
                f.resolve(_COMPLETES[t])
        elif t == EventType.TimerFired:
            f = self.open.pop(event.get("TimerId"), None)
            if f is not None:
                f.resolve(True)
        elif t == EventType.EventRaised:
            queue = self.waiters.get(event.name or "")
            if queue:
                queue.popleft().resolve(True)
            else:
                self.buffered[event.name or ""] = self.buffered.get(event.name or "", 0) + 1


def _describe(work: NewWork | None) -> str:
    if work is None:
        return "nothing"
    return f"{type(work).__name__} {getattr(work, 'name', '')}".strip()


def plan_episode(instance_id: str, history: list[HistoryEvent], result: SdkResult) -> EpisodePlan:
    """Replay ``history`` (old and this episode's new events) against the SDK's actions.

    Returns the work the orchestrator asked for that history does not record
    yet, in id order, plus continue-as-new and any problem that must fail the
    orchestration.
    """
    shim = _Shim(instance_id, result.actions)
    for event in history:
        shim.replay(event)
        if shim.plan.problem:
            break
    plan = shim.plan
    plan.new_work = [shim.pending[k] for k in sorted(shim.pending)]
    return plan
