"""HTTP routing, methods, auth levels and outputs, plus one orchestrator for the management API."""

import json

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="hello/{name?}", methods=["GET"])
def hello(req: func.HttpRequest) -> func.HttpResponse:
    name = req.route_params.get("name") or req.params.get("name") or "world"
    return func.HttpResponse(f"Hello, {name}!", headers={"X-Greeting": "yes"})


@app.route(route="items/{id:int}", methods=["GET", "PUT"])
def item(req: func.HttpRequest) -> func.HttpResponse:
    body = req.get_body().decode() if req.method == "PUT" else None
    return func.HttpResponse(json.dumps({"id": req.route_params["id"], "method": req.method, "body": body}),
                             mimetype="application/json", status_code=201 if body else 200)


@app.route(route="items/special", methods=["GET"])
def special_item(req: func.HttpRequest) -> str:
    return "literal segments win over parameters"


@app.route(route="files/{*path}")
async def files(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.route_params.get("path", ""))


@app.route(route="echo", methods=["POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.get_body(), status_code=200, mimetype=req.headers.get("content-type", "text/plain"),
                             headers={"X-Query": req.params.get("q", "")})


@app.route(route="boom")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("boom on purpose")


@app.route(route="nothing")
def nothing(req: func.HttpRequest) -> None:
    return None


@app.route(route="secret", auth_level=func.AuthLevel.FUNCTION)
def secret(req: func.HttpRequest) -> str:
    return "function level"


@app.route(route="admin-only", auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> str:
    return "admin level"


@app.route(route="enqueue/{word}", methods=["POST"])
@app.queue_output(arg_name="msg", queue_name="%OutQueue%", connection="AzureWebJobsStorage")
def enqueue(req: func.HttpRequest, msg: func.Out[str]) -> func.HttpResponse:
    msg.set(req.route_params["word"])
    return func.HttpResponse("queued", status_code=202)


@app.route(route="context")
def with_context(req: func.HttpRequest, context: func.Context) -> str:
    return f"{context.function_name}:{bool(context.invocation_id)}"


@app.orchestration_trigger(context_name="context")
def hello_orchestrator(context: df.DurableOrchestrationContext):
    name = context.get_input() or "world"
    result = yield context.call_activity("say_hello", name)
    return result


@app.activity_trigger(input_name="name")
def say_hello(name: str) -> str:
    return f"Hello {name}"
