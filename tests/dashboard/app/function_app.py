"""A small durable app with the dashboard Blueprint registered in one line (the dashboard's tests only).

Orchestrations cover what the instance page draws: activities, a timer, a sub-orchestration,
an external event, a failure and a custom status that holds markup.
"""

from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

from durable_mgmt.dashboard import dashboard_blueprint

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
# The connection setting is named so the tests can set it for the whole session without touching
# AzureWebJobsStorage, which other tests read.
app.register_functions(dashboard_blueprint(script_root=Path(__file__).parent, connection_setting="DASHBOARD_TEST_STORAGE"))


@app.activity_trigger(input_name="city")
def SayHello(city: str) -> str:
    return f"Hello {city}!"


@app.orchestration_trigger(context_name="context")
def HelloSequence(context: df.DurableOrchestrationContext):
    first = yield context.call_activity("SayHello", "Tokyo")
    second = yield context.call_activity("SayHello", "Seattle")
    return [first, second]


@app.orchestration_trigger(context_name="context")
def TimerParent(context: df.DurableOrchestrationContext):
    yield context.create_timer(context.current_utc_datetime + timedelta(milliseconds=300))
    child = yield context.call_sub_orchestrator("HelloSequence", None, f"{context.instance_id}-child")
    return {"child": child}


@app.orchestration_trigger(context_name="context")
def WaitForApproval(context: df.DurableOrchestrationContext):
    context.set_custom_status(context.get_input() or "waiting for approval")
    approval = yield context.wait_for_external_event("Approval")
    context.set_custom_status({"approved": approval})
    return {"approval": approval}


@app.orchestration_trigger(context_name="context")
def Fails(context: df.DurableOrchestrationContext):
    yield context.call_activity("SayHello", "before failure")
    raise ValueError("orchestrator broke on purpose")
