"""Orchestrators and activities that exercise the durable engine (tests only).

Activities record each run as a line in ``$ENGINE_TEST_STATE/<activity>.log``
so tests can count executions across host processes.
"""

import json
import os
import time
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def _record(name: str, value) -> int:
    folder = os.environ.get("ENGINE_TEST_STATE")
    if not folder:
        return 0
    path = Path(folder) / f"{name}.log"
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(value) + "\n")
    return sum(1 for _ in open(path, encoding="utf-8"))


def _count(name: str, key) -> int:
    folder = os.environ.get("ENGINE_TEST_STATE")
    path = Path(folder or ".") / f"{name}.log"
    if not path.exists():
        return 0
    return sum(1 for line in open(path, encoding="utf-8") if json.loads(line) == key)


# --- activities --------------------------------------------------------------

@app.activity_trigger(input_name="city")
def SayHello(city: str) -> str:
    _record("SayHello", city)
    return f"Hello {city}!"


@app.activity_trigger(input_name="value")
async def Double(value: int) -> int:
    _record("Double", value)
    return value * 2


@app.activity_trigger(input_name="key")
def Flaky(key: str) -> str:
    """Fails until its third attempt for ``key``."""
    _record("Flaky", key)
    if _count("Flaky", key) < 3:
        raise ValueError(f"attempt {_count('Flaky', key)} for {key} failed")
    return f"ok after {_count('Flaky', key)}"


@app.activity_trigger(input_name="key")
def AlwaysFails(key: str) -> str:
    _record("AlwaysFails", key)
    raise RuntimeError(f"always fails: {key}")


@app.activity_trigger(input_name="key")
def FailsUntilFixed(key: str) -> str:
    """Fails until the file ``$ENGINE_TEST_STATE/fixed`` exists (the rewind story)."""
    _record("FailsUntilFixed", key)
    if not (Path(os.environ.get("ENGINE_TEST_STATE", ".")) / "fixed").exists():
        raise RuntimeError("the setting is wrong")
    return f"fixed {key}"


@app.activity_trigger(input_name="seconds")
def Sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


# --- orchestrators -----------------------------------------------------------

@app.orchestration_trigger(context_name="context")
def HelloSequence(context: df.DurableOrchestrationContext):
    result1 = yield context.call_activity("SayHello", "Tokyo")
    result2 = yield context.call_activity("SayHello", "Seattle")
    result3 = yield context.call_activity("SayHello", "London")
    return [result1, result2, result3]


@app.orchestration_trigger(context_name="context")
def Sequence(context: df.DurableOrchestrationContext):
    n = context.get_input() or 5
    total = 0
    for i in range(n):
        total += yield context.call_activity("Double", i)
    return total


@app.orchestration_trigger(context_name="context")
def FanOutFanIn(context: df.DurableOrchestrationContext):
    n = context.get_input() or 10
    results = yield context.task_all([context.call_activity("Double", i) for i in range(n)])
    return sum(results)


@app.orchestration_trigger(context_name="context")
def TimerThenHello(context: df.DurableOrchestrationContext):
    seconds = context.get_input() or 1
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=seconds))
    return (yield context.call_activity("SayHello", "after timer"))


@app.orchestration_trigger(context_name="context")
def WaitForApproval(context: df.DurableOrchestrationContext):
    context.set_custom_status("waiting for approval")
    approval = yield context.wait_for_external_event("Approval")
    context.set_custom_status({"approved": approval})
    return {"approval": approval}


@app.orchestration_trigger(context_name="context")
def ApprovalOrTimeout(context: df.DurableOrchestrationContext):
    timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=context.get_input() or 30))
    approval = context.wait_for_external_event("Approval")
    winner = yield context.task_any([approval, timer])
    if winner == approval:
        timer.cancel()
        return "approved"
    return "timed out"


@app.orchestration_trigger(context_name="context")
def ParentOfHello(context: df.DurableOrchestrationContext):
    child = yield context.call_sub_orchestrator("HelloSequence", None, f"{context.instance_id}-child")
    doubled = yield context.call_activity("Double", 21)
    return {"child": child, "doubled": doubled}


@app.orchestration_trigger(context_name="context")
def RetryThenSucceed(context: df.DurableOrchestrationContext):
    opts = df.RetryOptions(first_retry_interval_in_milliseconds=100, max_number_of_attempts=3)
    result = yield context.call_activity_with_retry("Flaky", opts, context.instance_id)
    after = yield context.call_activity("SayHello", "after retry")
    return [result, after]


@app.orchestration_trigger(context_name="context")
def RetryExhausted(context: df.DurableOrchestrationContext):
    opts = df.RetryOptions(first_retry_interval_in_milliseconds=100, max_number_of_attempts=2)
    try:
        yield context.call_activity_with_retry("AlwaysFails", opts, context.instance_id)
    except Exception as e:
        return f"gave up: {'always fails' in str(e)}"
    return "unexpected"


@app.orchestration_trigger(context_name="context")
def Counter(context: df.DurableOrchestrationContext):
    n = context.get_input() or 0
    if n < 3:
        yield context.call_activity("Double", n)
        context.continue_as_new(n + 1)
        return None
    return f"done at {n}"


@app.orchestration_trigger(context_name="context")
def Fails(context: df.DurableOrchestrationContext):
    yield context.call_activity("SayHello", "before failure")
    raise ValueError("orchestrator broke on purpose")


@app.orchestration_trigger(context_name="context")
def RewindableSequence(context: df.DurableOrchestrationContext):
    a = yield context.call_activity("SayHello", "first")
    b = yield context.call_activity("FailsUntilFixed", context.instance_id)
    c = yield context.call_activity("SayHello", "third")
    return [a, b, c]


@app.orchestration_trigger(context_name="context")
def RewindableParent(context: df.DurableOrchestrationContext):
    a = yield context.call_activity("SayHello", "parent-first")
    child = yield context.call_sub_orchestrator("RewindableSequence", None, f"{context.instance_id}-child")
    return [a, child]


@app.orchestration_trigger(context_name="context")
def SlowHello(context: df.DurableOrchestrationContext):
    yield context.call_activity("Sleep", context.get_input() or 1.0)
    return "slow hello"


@app.orchestration_trigger(context_name="context")
def FamilyTree(context: df.DurableOrchestrationContext):
    """A family for bulk-job tests: depth > 0 starts one child with depth - 1; the leaf waits for "Go"."""
    args = context.get_input() or {}
    depth = args.get("depth", 0)
    if depth > 0:
        return (yield context.call_sub_orchestrator("FamilyTree", {"depth": depth - 1},
                                                    f"{context.instance_id}-c"))
    context.set_custom_status("waiting")
    return (yield context.wait_for_external_event("Go"))
