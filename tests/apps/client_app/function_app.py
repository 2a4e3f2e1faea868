"""Client functions that drive the unmodified azure-functions-durable client against the host.

Each HTTP function makes one client call and answers with what the SDK returned
(as JSON), or 409 with the SDK's exception message when it raised.
"""

import json
from datetime import datetime

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def _json(value, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(value, default=str), status_code=status, mimetype="application/json")


def _failed(e: Exception) -> func.HttpResponse:
    return _json({"error": str(e)}, 409)


def _status(status) -> dict:
    return {"exists": bool(status), "name": status.name, "instanceId": status.instance_id,
            "runtimeStatus": status.runtime_status.value if status.runtime_status else None,
            "input": status.input_, "output": status.output, "customStatus": status.custom_status,
            "createdTime": status.created_time, "historyEvents": getattr(status, "historyEvents", None),
            "message": getattr(status, "message", None)}  # set from a body that is not a status (a 404's)


def _time(text):
    return datetime.fromisoformat(text) if text else None


@app.route(route="start/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_orchestration(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    try:
        instance_id = await client.start_new(req.route_params["name"], req.params.get("id"),
                                             json.loads(body) if body else None)
    except Exception as e:
        return _failed(e)
    return client.create_check_status_response(req, instance_id)


@app.route(route="wait/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_and_wait(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    instance_id = await client.start_new(req.route_params["name"], None, json.loads(body) if body else None)
    return await client.wait_for_completion_or_create_check_status_response(
        req, instance_id, timeout_in_milliseconds=int(req.params.get("timeout_ms", "2000")),
        retry_interval_in_milliseconds=int(req.params.get("interval_ms", "200")))


@app.route(route="status/{id}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    flag = lambda name: req.params.get(name) == "true"  # noqa: E731
    result = await client.get_status(req.route_params["id"], show_history=flag("history"),
                                     show_history_output=flag("output"), show_input=flag("input"))
    return _json(_status(result))


@app.route(route="all", methods=["GET"])
@app.durable_client_input(client_name="client")
async def status_all(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return _json([_status(s) for s in await client.get_status_all()])


@app.route(route="by", methods=["GET"])
@app.durable_client_input(client_name="client")
async def status_by(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    statuses = [df.OrchestrationRuntimeStatus(s) for s in req.params.get("status", "").split(",") if s]
    found = await client.get_status_by(_time(req.params.get("from")), _time(req.params.get("to")),
                                       statuses or None, req.params.get("prefix"))
    return _json([_status(s) for s in found])


@app.route(route="terminate/{id}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def terminate(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        await client.terminate(req.route_params["id"], req.params.get("reason", "because"))
    except Exception as e:
        return _failed(e)
    return _json({"ok": True})


@app.route(route="raise/{id}/{event}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def raise_event(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        await client.raise_event(req.route_params["id"], req.route_params["event"], req.get_json())
    except Exception as e:
        return _failed(e)
    return _json({"ok": True})


@app.route(route="steer/{op}/{id}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def steer(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    op, instance_id = req.route_params["op"], req.route_params["id"]
    try:
        if op == "restart":
            # Deployed, the SDK returns the extension's answer body: the check-status payload, not a bare id.
            returned = await client.restart(instance_id, req.params.get("new", "true") == "true")
            return _json({"ok": True, "returned": returned})
        await getattr(client, op)(instance_id, req.params.get("reason", "because"))
    except Exception as e:
        return _failed(e)
    return _json({"ok": True})


@app.route(route="purge/{id}", methods=["DELETE"])
@app.durable_client_input(client_name="client")
async def purge(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        result = await client.purge_instance_history(req.route_params["id"])
    except Exception as e:
        return _failed(e)
    return _json({"instancesDeleted": result.instances_deleted})


@app.route(route="purge", methods=["DELETE"])
@app.durable_client_input(client_name="client")
async def purge_by(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    statuses = [df.OrchestrationRuntimeStatus(s) for s in req.params.get("status", "").split(",") if s]
    try:
        result = await client.purge_instance_history_by(_time(req.params.get("from")), _time(req.params.get("to")),
                                                        statuses or None)
    except Exception as e:
        return _failed(e)
    return _json({"instancesDeleted": result.instances_deleted})


@app.route(route="payload/{id}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def payload(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return _json(client.create_http_management_payload(req.route_params["id"]))


@app.orchestration_trigger(context_name="context")
def hello_sequence(context: df.DurableOrchestrationContext):
    name = context.get_input() or {"name": "world"}
    first = yield context.call_activity("greet", name["name"])
    second = yield context.call_activity("greet", "again")
    return [first, second]


@app.orchestration_trigger(context_name="context")
def wait_for_approval(context: df.DurableOrchestrationContext):
    approval = yield context.wait_for_external_event("approval")
    return {"approved": approval}


@app.orchestration_trigger(context_name="context")
def fails_once(context: df.DurableOrchestrationContext):
    result = yield context.call_activity("flaky", context.instance_id)
    return result


@app.activity_trigger(input_name="name")
def greet(name: str) -> str:
    return f"Hello {name}"


_FLAKY_SEEN: set[str] = set()


@app.activity_trigger(input_name="key")
def flaky(key: str) -> str:
    # Fails the first time for each key, succeeds after: a rewind re-runs it successfully.
    if key not in _FLAKY_SEEN:
        _FLAKY_SEEN.add(key)
        raise RuntimeError(f"first attempt for {key} fails")
    return f"recovered {key}"
