"""The pure replay core, driven with the real SDK and the test app, without storage.

A tiny in-memory world delivers messages, runs activities and advances a
simulated clock; every decision comes from ``run_episode`` and the SDK.
"""

import asyncio
import json
import os
from collections import defaultdict, deque
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from durable_mgmt.taskhub.events import EventType, OrchestrationStatus, event, execution_started
from durable_mgmt.taskhub.messages import TaskMessage
from funchost.engine.episode import InstanceState, run_episode
from funchost.engine.functions import call_orchestrator, decode_activity_input, encode_activity_output
from funchost.engine.replay import plan_episode, parse_sdk_result, ScheduleActivity, CreateTimer
from funchost.loader import load_app

APP = Path(__file__).parent / "apps" / "engine_app"


@pytest.fixture(scope="module")
def index():
    return load_app(APP)


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ENGINE_TEST_STATE", str(tmp_path))
    return tmp_path


class World:
    """Messages, activities and a clock, all in memory."""

    def __init__(self, index):
        self.index = index
        self.states: dict[str, InstanceState] = {}
        self.rows: dict[str, dict] = {}
        self.control: deque[TaskMessage] = deque()
        self.timers: list[TaskMessage] = []
        self.work: deque[TaskMessage] = deque()
        self.now = datetime(2026, 1, 1, tzinfo=timezone.utc)
        self.activity_runs: list[str] = []

    def start(self, name, input=None, instance_id="i1"):
        ex = f"x-{instance_id}"
        self.rows[instance_id] = {"ExecutionId": ex, "RuntimeStatus": "Pending"}
        self.control.append(TaskMessage(execution_started(instance_id, ex, name, json.dumps(input), timestamp=self.now),
                                        instance_id, ex))
        return instance_id

    def send(self, instance_id, ev):
        self.control.append(TaskMessage(ev, instance_id, None))

    def invoke(self, name, context):
        return call_orchestrator(self.index.orchestrators[name].user_function, context)

    def step(self) -> bool:
        if self.control:
            batch = defaultdict(list)
            while self.control:
                m = self.control.popleft()
                batch[m.instance_id].append(m)
            for iid, msgs in batch.items():
                self.episode(iid, msgs)
            return True
        if self.work:
            m = self.work.popleft()
            self.run_activity(m)
            return True
        if self.timers:
            self.timers.sort(key=lambda m: m.event.get("FireAt"))
            m = self.timers.pop(0)
            self.now = max(self.now, m.event.get("FireAt"))
            self.control.append(m)
            return True
        return False

    def episode(self, iid, msgs):
        state = self.states.setdefault(iid, InstanceState(iid))
        self.now += timedelta(milliseconds=10)
        row = self.rows.get(iid, {})
        out = run_episode(state, msgs, self.invoke, now=self.now, row_execution_id=row.get("ExecutionId"),
                          row_status=row.get("RuntimeStatus"))
        if out.deferred:
            self.control.extend(out.deferred)
        if out.terminate_unstarted is not None:
            row["RuntimeStatus"] = "Terminated"
        if out.has_commit:
            state.events = (out.new_events if out.reset_history else state.events + out.new_events)
            state.execution_id = out.execution_id
            self.rows.setdefault(iid, {}).update(out.row.to_entity())
        self.work.extend(out.to_activities)
        for m in out.to_orchestrations:
            (self.timers if m.event.type == EventType.TimerFired else self.control).append(m)

    def run_activity(self, m):
        name = m.event.name
        info = self.index.activities[name]
        self.activity_runs.append(name)
        try:
            fn = info.user_function
            value = decode_activity_input(m.event.input)
            result = fn(**{info.trigger_parameter: value})
            if asyncio.iscoroutine(result):
                result = asyncio.run(result)
            ev = event(EventType.TaskCompleted, -1, self.now, TaskScheduledId=m.event.event_id,
                       Result=encode_activity_output(result))
        except Exception as e:
            ev = event(EventType.TaskFailed, -1, self.now, TaskScheduledId=m.event.event_id,
                       Reason=f"{type(e).__name__}: {e}", Details="trace")
        self.control.append(TaskMessage(ev, m.instance_id, m.execution_id))

    def run(self, limit=2000):
        for _ in range(limit):
            if not self.step():
                return
        raise AssertionError("world did not go idle")

    def status(self, iid):
        return self.rows[iid]["RuntimeStatus"]

    def output(self, iid):
        return json.loads(self.rows[iid]["Output"])

    def types(self, iid):
        return [e.type.name for e in self.states[iid].events]


def test_hello_sequence_history_and_output(index):
    w = World(index)
    w.start("HelloSequence")
    w.run()
    assert w.status("i1") == "Completed"
    assert w.output("i1") == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert w.types("i1") == [
        "OrchestratorStarted", "ExecutionStarted", "TaskScheduled", "OrchestratorCompleted",
        "OrchestratorStarted", "TaskCompleted", "TaskScheduled", "OrchestratorCompleted",
        "OrchestratorStarted", "TaskCompleted", "TaskScheduled", "OrchestratorCompleted",
        "OrchestratorStarted", "TaskCompleted", "ExecutionCompleted", "OrchestratorCompleted"]
    scheduled = [e for e in w.states["i1"].events if e.type == EventType.TaskScheduled]
    assert [(e.event_id, e.name, e.input) for e in scheduled] == [
        (0, "SayHello", '"Tokyo"'), (1, "SayHello", '"Seattle"'), (2, "SayHello", '"London"')]
    completed = [e for e in w.states["i1"].events if e.type == EventType.TaskCompleted]
    assert [e.task_scheduled_id for e in completed] == [0, 1, 2]


def test_fan_out_fan_in_numbers_tasks_in_order(index):
    w = World(index)
    w.start("FanOutFanIn", 20)
    w.run()
    assert w.output("i1") == sum(2 * i for i in range(20))
    ids = [e.event_id for e in w.states["i1"].events if e.type == EventType.TaskScheduled]
    assert ids == list(range(20))


def test_timer_then_activity(index):
    w = World(index)
    w.start("TimerThenHello", 5)
    w.run()
    timer = next(e for e in w.states["i1"].events if e.type == EventType.TimerCreated)
    fired = next(e for e in w.states["i1"].events if e.type == EventType.TimerFired)
    assert timer.event_id == 0 and fired.get("TimerId") == 0
    assert w.output("i1") == "Hello after timer!"


def test_external_event_raised_before_the_wait(index):
    w = World(index)
    w.start("WaitForApproval")
    # Raised in the same batch as the start: the orchestrator has not waited yet.
    w.send("i1", event(EventType.EventRaised, Name="Approval", Input='"yes"'))
    w.run()
    assert w.output("i1") == {"approval": "yes"}
    assert json.loads(w.rows["i1"]["CustomStatus"]) == {"approved": "yes"}


def test_external_event_after_the_wait_and_custom_status(index):
    w = World(index)
    w.start("WaitForApproval")
    w.run()
    assert w.status("i1") == "Running" and json.loads(w.rows["i1"]["CustomStatus"]) == "waiting for approval"
    w.send("i1", event(EventType.EventRaised, Name="Approval", Input="true"))
    w.run()
    assert w.output("i1") == {"approval": True}


def test_task_any_with_cancelled_timer(index):
    w = World(index)
    w.start("ApprovalOrTimeout", 60)
    w.control.append(TaskMessage(event(EventType.EventRaised, Name="Approval", Input="1"), "i1", None))
    w.run()
    assert w.output("i1") == "approved"


def test_task_any_timer_wins(index):
    w = World(index)
    w.start("ApprovalOrTimeout", 2)
    w.run()
    assert w.output("i1") == "timed out"


def test_sub_orchestration(index):
    w = World(index)
    w.start("ParentOfHello", instance_id="p")
    w.run()
    assert w.output("p") == {"child": ["Hello Tokyo!", "Hello Seattle!", "Hello London!"], "doubled": 42}
    created = next(e for e in w.states["p"].events if e.type == EventType.SubOrchestrationInstanceCreated)
    assert created.event_id == 0 and created.get("InstanceId") == "p-child"
    assert w.states["p-child"].started.get("ParentInstance")["TaskScheduleId"] == 0
    assert [e.event_id for e in w.states["p"].events if e.type == EventType.TaskScheduled] == [1]


def test_retry_succeeds_on_third_attempt_with_dtfx_numbering(index):
    w = World(index)
    w.start("RetryThenSucceed")
    w.run()
    assert w.output("i1") == ["ok after 3", "Hello after retry!"]
    evs = w.states["i1"].events
    sched = [(e.type.name, e.event_id) for e in evs if e.type in (EventType.TaskScheduled, EventType.TimerCreated)]
    # attempt, timer, attempt, timer, attempt, then the next activity: one counter for all.
    assert sched == [("TaskScheduled", 0), ("TimerCreated", 1), ("TaskScheduled", 2), ("TimerCreated", 3),
                     ("TaskScheduled", 4), ("TaskScheduled", 5)]


def test_retry_exhausted_raises_into_the_orchestrator(index):
    w = World(index)
    w.start("RetryExhausted")
    w.run()
    assert w.output("i1") == "gave up: True"
    timers = [e.event_id for e in w.states["i1"].events if e.type == EventType.TimerCreated]
    assert timers == [1, 3]  # one after each failed attempt, the last one included (DTFx semantics)
    assert w.activity_runs.count("AlwaysFails") == 2


def test_continue_as_new_restarts_history(index):
    w = World(index)
    w.start("Counter", 0)
    w.run()
    assert w.output("i1") == "done at 3"
    started = w.states["i1"].started
    assert started.input == "3"
    assert w.states["i1"].execution_id != "x-i1"


def test_failure_details(index):
    w = World(index)
    w.start("Fails")
    w.run()
    assert w.status("i1") == "Failed"
    assert w.rows["i1"]["Output"].startswith("Orchestrator function 'Fails' failed: orchestrator broke on purpose")
    done = w.states["i1"].events[-2]
    assert done.type == EventType.ExecutionCompleted and done.get("OrchestrationStatus") == OrchestrationStatus.Failed
    assert "ValueError" in done.get("FailureDetails")["StackTrace"]


def test_terminate_running_and_pending(index):
    w = World(index)
    w.start("WaitForApproval")
    w.run()
    w.send("i1", event(EventType.ExecutionTerminated, Input="stop"))
    w.run()
    assert w.status("i1") == "Terminated" and w.rows["i1"]["Output"] == "stop"
    w.send("i1", event(EventType.EventRaised, Name="Approval", Input="1"))
    w.run()
    assert w.status("i1") == "Terminated"
    # Pending: terminated before its start message was processed.
    w2 = World(index)
    w2.rows["p"] = {"ExecutionId": "x-p", "RuntimeStatus": "Pending"}
    w2.send("p", event(EventType.ExecutionTerminated, Input="never mind"))
    w2.run()
    assert w2.rows["p"]["RuntimeStatus"] == "Terminated"
    w2.control.append(TaskMessage(execution_started("p", "x-p", "HelloSequence", None), "p", "x-p"))
    w2.run()
    assert "p" not in w2.states or not w2.states["p"].events


def test_suspend_holds_work_until_resume(index):
    w = World(index)
    w.start("WaitForApproval")
    w.run()
    w.send("i1", event(EventType.ExecutionSuspended, Reason="hold"))
    w.run()
    assert w.status("i1") == "Suspended"
    w.send("i1", event(EventType.EventRaised, Name="Approval", Input='"late"'))
    w.run()
    assert w.status("i1") == "Suspended"
    w.send("i1", event(EventType.ExecutionResumed, Reason="go"))
    w.run()
    assert w.status("i1") == "Completed" and w.output("i1") == {"approval": "late"}


def test_duplicate_and_early_messages(index):
    w = World(index)
    w.start("HelloSequence")
    w.step()  # start episode: TaskScheduled 0
    act = w.work.popleft()
    w.run_activity(act)
    dup = w.control[0]
    w.control.append(TaskMessage(dup.event, dup.instance_id, dup.execution_id))  # a duplicate completion
    early = TaskMessage(event(EventType.TaskCompleted, TaskScheduledId=1, Result='"early"'), "i1", "x-i1")
    w.control.append(early)  # task 1 is not scheduled yet: deferred, not lost
    w.step()
    assert sum(1 for e in w.states["i1"].events if e.type == EventType.TaskCompleted) == 1
    assert early in w.control
    w.run()
    assert w.output("i1") == ["Hello Tokyo!", "early", "Hello London!"]


def test_rewind_reruns_only_the_failed_activity(index, state_dir):
    w = World(index)
    w.start("RewindableSequence", instance_id="r")
    w.run()
    assert w.status("r") == "Failed"
    # The storage-level rewind: failure rows become GenericEvent, then a GenericEvent message.
    for e in w.states["r"].events:
        if e.type == EventType.TaskFailed or (e.type == EventType.ExecutionCompleted) or (
                e.type == EventType.TaskScheduled and e.name == "FailsUntilFixed"):
            e.type = EventType.GenericEvent
    (state_dir / "fixed").write_text("yes")
    w.send("r", event(EventType.GenericEvent, Data="fixed the setting"))
    w.run()
    assert w.output("r") == ["Hello first!", "fixed r", "Hello third!"]
    assert w.activity_runs.count("SayHello") == 2  # "first" was not run again
    assert w.activity_runs.count("FailsUntilFixed") == 2


def test_nondeterminism_fails_the_instance(index):
    w = World(index)
    w.start("HelloSequence")
    w.step()
    # Corrupt history: pretend task 0 was another activity.
    events = w.states["i1"].events
    i = next(i for i, e in enumerate(events) if e.type == EventType.TaskScheduled)
    events[i] = event(EventType.TaskScheduled, 0, Name="SomethingElse", Input='"Tokyo"')
    w.run()
    assert w.status("i1") == "Failed" and "Non-deterministic" in w.rows["i1"]["Output"]


def test_sdk_result_parsing_of_raised_state():
    raised = Exception('boom\n\n$OutOfProcData$:{"isDone":false,"actions":[[{"actionType":0,"functionName":"A",'
                       '"input":"1"}]],"error":"boom","customStatus":"cs"}')
    r = parse_sdk_result(raised=raised)
    assert r.failed and r.error == "boom" and r.custom_status == "cs" and r.actions[0]["functionName"] == "A"


def test_restart_start_waits_for_the_row_instead_of_being_dropped(index):
    """A restart sends its start before it replaces the row: the start must wait, not vanish."""
    w = World(index)
    w.start("HelloSequence", instance_id="again")
    w.run()
    assert w.status("again") == "Completed"
    new = TaskMessage(execution_started("again", "x-new", "HelloSequence", None), "again", "x-new")
    raised = TaskMessage(event(EventType.EventRaised, Name="Approval", Input="1"), "again", None)
    # The row still names the finished execution: both are kept, nothing is dropped.
    out = run_episode(w.states["again"], [new], w.invoke, now=w.now, row_execution_id="x-again",
                      row_status="Completed")
    assert out.deferred == [new] and not out.consumed and not out.has_commit
    # The row now names the new, not yet started execution: events wait for it, terminate marks the row.
    out = run_episode(w.states["again"], [raised], w.invoke, now=w.now, row_execution_id="x-new", row_status="Pending")
    assert out.awaiting_start == [raised] and not out.consumed
    stop = TaskMessage(event(EventType.ExecutionTerminated, Input="no"), "again", None)
    out = run_episode(w.states["again"], [stop], w.invoke, now=w.now, row_execution_id="x-new", row_status="Pending")
    assert out.terminate_unstarted == "no" and out.consumed == [stop]
    # And once the row is replaced, the start runs the new execution.
    out = run_episode(w.states["again"], [new, raised], w.invoke, now=w.now, row_execution_id="x-new",
                      row_status="Pending")
    assert out.reset_history and out.execution_id == "x-new" and out.consumed == [new, raised]


def test_a_start_scheduled_beyond_one_queue_hop_is_sent_on(index):
    w = World(index)
    later = w.now + timedelta(days=10)
    start = TaskMessage(execution_started("s", "x-s", "HelloSequence", None, scheduled_start=later), "s", "x-s")
    out = run_episode(InstanceState("s"), [start], w.invoke, now=w.now, row_execution_id="x-s", row_status="Pending")
    assert out.consumed == [start] and not out.has_commit
    [hop] = out.to_orchestrations
    assert hop.event.type == EventType.ExecutionStarted and hop.event.get("ScheduledStartTime") == later
