"""Orchestrations measured by bench/engine.py."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.activity_trigger(input_name="value")
def Echo(value):
    return value


@app.activity_trigger(input_name="city")
def Hello(city: str) -> str:
    return f"Hello {city}!"


@app.orchestration_trigger(context_name="context")
def Sequential(context: df.DurableOrchestrationContext):
    n = context.get_input()
    for i in range(n):
        yield context.call_activity("Echo", i)
    return n


@app.orchestration_trigger(context_name="context")
def FanOutFanIn(context: df.DurableOrchestrationContext):
    n = context.get_input()
    results = yield context.task_all([context.call_activity("Echo", i) for i in range(n)])
    return len(results)


@app.orchestration_trigger(context_name="context")
def EventCounter(context: df.DurableOrchestrationContext):
    n = context.get_input()
    for _ in range(n):
        yield context.wait_for_external_event("tick")
    return n


@app.orchestration_trigger(context_name="context")
def HelloSequence5(context: df.DurableOrchestrationContext):
    out = []
    for city in ("Tokyo", "Seattle", "London", "Cairo", "Lima"):
        out.append((yield context.call_activity("Hello", city)))
    return out


@app.orchestration_trigger(context_name="context")
def OneActivity(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("Echo", "ping"))
