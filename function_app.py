"""Durable Functions instance management, as the "Manage instances" document shows it.

Every operation of the document is a trigger here, in the Python v2
programming model, over ``durable_mgmt.InstanceManager`` (the typed wrapper of
the durable client binding). Runs locally with ``funcpy start`` and deploys to
Azure unchanged.

    start        HelloWorldQueueTrigger (queue start-queue), HttpStart (POST orchestrators/{functionName})
    status       GetStatus (queue check-status-queue), GetAllStatus (HTTP, pages followed), QueryStatus (HTTP filters)
    terminate    TerminateInstance (queue terminate-queue)
    events       RaiseEvent (queue event-queue)
    wait         HttpSyncStart (orchestrators/{functionName}/wait?timeout=&retryInterval=)
    webhooks     SendInstanceInfo (activity: management URLs into the HttpManagementPayloads table)
    rewind       RewindInstance (queue rewind-queue)
    purge        PurgeInstanceHistory (queue purge-queue), PurgeOldInstanceHistory (daily timer)
    dashboard    durable_dashboard (HTTP dashboard/{*path}: the web dashboard, from durable_mgmt.dashboard)

Bad input never reaches the task hub: HTTP triggers answer 400 saying what is
wrong, queue triggers log the problem and fail, so the host retries and then
moves the message to the ``<queue>-poison`` queue.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Awaitable, Callable

import azure.durable_functions as df
import azure.functions as func

from durable_mgmt import (CONTINUATION_HEADER, DurableError, InstanceManager, InstanceQuery, InvalidInput, QueryString,
                          RuntimeStatus, WaitTimeout, check_wait, http_status_of, parse_json_body)
from durable_mgmt.dashboard import dashboard_blueprint

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
# The instance dashboard at /api/dashboard/ (function key; see README "The dashboard" for users, roles, read-only).
app.register_functions(dashboard_blueprint(script_root=os.path.dirname(os.path.abspath(__file__))))
log = logging.getLogger("function_app")

STORAGE = "AzureWebJobsStorage"


class BadMessage(ValueError):
    """A queue message this app cannot act on; the host retries it, then moves it to the poison queue."""


# --- helpers -----------------------------------------------------------------


def _instance_id_from(message: func.QueueMessage, queue: str) -> str:
    text = message.get_body().decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        try:
            text = str(json.loads(text).get("instanceId") or "")
        except (ValueError, AttributeError):
            text = ""
    if not text or any(c.isspace() for c in text):
        raise BadMessage(f"{queue}: expected an orchestration instance id (or {{\"instanceId\": \"...\"}}), "
                         f"got {message.get_body()[:80]!r}.")
    return text


def _json_response(body, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, default=str), status_code=status, mimetype="application/json")


def _bad_request(message: str) -> func.HttpResponse:
    return _json_response({"error": message}, 400)


def _error_response(err: DurableError) -> func.HttpResponse:
    """The same status the management API gives the same error (404 unknown id, 409 still running...)."""
    return _json_response({"error": str(err), "type": type(err).__name__}, http_status_of(err))


MAX_LISTED = 1000  # instances one GetAllStatus/QueryStatus response holds; the rest is one token away


async def _listing(req: func.HttpRequest, client, query: InstanceQuery) -> func.HttpResponse:
    """Pages of ``query`` followed until MAX_LISTED instances or the end; when more remain, the answer
    carries x-ms-continuation-token, which the caller sends back (header or ``continuationToken``) for
    the rest. One response never holds a whole large hub."""
    token = req.headers.get(CONTINUATION_HEADER) or QueryString(req.params).text("continuationToken") or None
    q = replace(query, continuation_token=token)
    statuses: list[dict] = []
    async with InstanceManager.from_client(client) as manager:
        while True:
            page = await manager.page(q)
            statuses += [s.to_json() for s in page]
            token = page.continuation_token
            if not token or len(statuses) + q.page_size > MAX_LISTED:
                break
            q = replace(q, continuation_token=token)
    headers = {CONTINUATION_HEADER: token} if token else {}
    return func.HttpResponse(json.dumps(statuses, default=str), status_code=200, mimetype="application/json",
                             headers=headers)


def _query_from(params) -> InstanceQuery:
    """QueryStatus filters: createdFrom, createdTo (ISO 8601), runtimeStatus (comma list), instanceIdPrefix,
    showInput, top. The management API's names createdTimeFrom/createdTimeTo are accepted too."""
    q = QueryString(params)
    return InstanceQuery(
        created_from=q.time("createdFrom") or q.time("createdTimeFrom"),
        created_to=q.time("createdTo") or q.time("createdTimeTo"),
        statuses=q.statuses(),
        instance_id_prefix=q.text("instanceIdPrefix") or None,
        show_input=q.flag("showInput", False),
        page_size=q.integer("top", 1, 1000) or 100)


def on_instance_message(function_name: str, queue: str,
                        act: Callable[[InstanceManager, str], Awaitable[None]]) -> None:
    """A queue trigger whose message names an instance (its id, or {"instanceId": ...}): ``act`` does the
    work with the manager of the durable client binding."""

    @app.function_name(function_name)
    @app.queue_trigger(arg_name="msg", queue_name=queue, connection=STORAGE)
    @app.durable_client_input(client_name="client")
    async def trigger(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
        instance_id = _instance_id_from(msg, queue)
        async with InstanceManager.from_client(client) as manager:
            await act(manager, instance_id)


# --- start instances ------------------------------------------------------------


@app.function_name("HelloWorldQueueTrigger")
@app.queue_trigger(arg_name="msg", queue_name="start-queue", connection=STORAGE)
@app.durable_client_input(client_name="client")
async def hello_world_queue_trigger(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    """Start HelloWorld with the message text as its input."""
    text = msg.get_body().decode("utf-8", errors="replace")
    async with InstanceManager.from_client(client) as manager:
        instance_id = await manager.start("HelloWorld", text)
    log.info("Started orchestration with ID = '%s'.", instance_id)


async def _start_from(req: func.HttpRequest, client: df.DurableOrchestrationClient,
                      wait: tuple[float, float] | None = None) -> func.HttpResponse:
    """Start the route's orchestrator with the request's JSON body as input; 202 with the check-status
    links, or, with ``wait`` (timeout, polling interval), the outcome if it finishes in time."""
    name = req.route_params["functionName"]
    try:
        event_data = parse_json_body(req.get_body())
    except InvalidInput as e:
        return _bad_request(str(e))
    try:
        async with InstanceManager.from_client(client) as manager:
            instance_id = await manager.start(name, event_data)
            log.info("Started orchestration with ID = '%s'.", instance_id)
            if wait is None:
                return client.create_check_status_response(req, instance_id)
            try:
                status = await manager.wait_for_completion(instance_id, timeout=wait[0], retry_interval=wait[1])
            except WaitTimeout:
                return client.create_check_status_response(req, instance_id)
    except DurableError as e:
        return _error_response(e)
    if status.runtime_status == RuntimeStatus.COMPLETED:
        return _json_response(status.output)
    return _json_response(status.to_json(), 500 if status.runtime_status == RuntimeStatus.FAILED else 200)


@app.function_name("HttpStart")
@app.route(route="orchestrators/{functionName}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start any orchestrator with the request's JSON body as input; 202 with the check-status links."""
    return await _start_from(req, client)


@app.function_name("HttpSyncStart")
@app.route(route="orchestrators/{functionName}/wait", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_sync_start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start, then wait up to ``timeout`` s (default 10) polling every ``retryInterval`` s (default 1).

    200 with the output if it completed in time; 202 with the check-status
    links if not; 500 with the status if it failed (as the SDK's
    wait_for_completion_or_create_check_status_response answers).
    """
    params = QueryString(req.params)
    try:
        timeout = params.seconds("timeout", maximum=3600)
        timeout = 10.0 if timeout is None else timeout
        interval = params.seconds("retryInterval", maximum=3600)
        interval = 1.0 if interval is None else interval
        check_wait(timeout, interval, interval_name="retryInterval")  # bounded, and no tighter than 0.1 s
        if interval > timeout:
            raise InvalidInput(f"retryInterval ({interval:g}) must not be longer than timeout ({timeout:g}).")
    except InvalidInput as e:
        return _bad_request(str(e))
    return await _start_from(req, client, (timeout, interval))


# --- query instances ------------------------------------------------------------


async def log_status(manager: InstanceManager, instance_id: str) -> None:
    status = await manager.status(instance_id)
    log.info("Instance %s is %s: %s", instance_id, status.runtime_status.value, json.dumps(status.to_json()))


on_instance_message("GetStatus", "check-status-queue", log_status)


@app.function_name("GetAllStatus")
@app.route(methods=["GET", "POST"])  # no route, as in the document: served at /api/GetAllStatus
@app.durable_client_input(client_name="client")
async def get_all_status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Every instance of the task hub, following continuation tokens page by page (``top`` a page, default 100),
    up to 1000 per response; past that, x-ms-continuation-token fetches the rest."""
    try:
        query = InstanceQuery(page_size=QueryString(req.params).integer("top", 1, 1000) or 100)
        return await _listing(req, client, query)
    except DurableError as e:
        return _error_response(e)


@app.function_name("QueryStatus")
@app.route(methods=["GET", "POST"])  # no route, as in the document: served at /api/QueryStatus
@app.durable_client_input(client_name="client")
async def query_status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Instances filtered by createdFrom, createdTo, runtimeStatus (comma list) and instanceIdPrefix."""
    try:
        query = _query_from(req.params)
        return await _listing(req, client, query)
    except DurableError as e:
        return _error_response(e)


# --- steer instances ------------------------------------------------------------


async def terminate(manager: InstanceManager, instance_id: str) -> None:
    await manager.terminate(instance_id, "It was time to be done.")
    log.info("Asked instance %s to terminate.", instance_id)


on_instance_message("TerminateInstance", "terminate-queue", terminate)


@app.function_name("RaiseEvent")
@app.queue_trigger(arg_name="msg", queue_name="event-queue", connection=STORAGE)
@app.durable_client_input(client_name="client")
async def raise_event(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    """A bare instance id sends MyEvent [1, 2, 3], as the document does; or
    ``{"instanceId": ..., "eventName": ..., "eventData": ...}``."""
    text = msg.get_body().decode("utf-8", errors="replace").strip()
    event_name, event_data = "MyEvent", [1, 2, 3]
    if text.startswith("{"):
        try:
            body = json.loads(text)
        except ValueError:
            raise BadMessage(f"event-queue: the message starts with '{{' but is not valid JSON: {text[:80]!r}.")
        if not isinstance(body.get("instanceId"), str) or not body["instanceId"]:
            raise BadMessage("event-queue: the JSON message needs \"instanceId\" (a non-empty string).")
        instance_id = body["instanceId"]
        event_name = body.get("eventName") or event_name
        if not isinstance(event_name, str):
            raise BadMessage("event-queue: \"eventName\" must be a string.")
        event_data = body.get("eventData", event_data)
    else:
        instance_id = _instance_id_from(msg, "event-queue")
    async with InstanceManager.from_client(client) as manager:
        await manager.raise_event(instance_id, event_name, event_data)
    log.info("Raised event '%s' to instance '%s'.", event_name, instance_id)


async def rewind(manager: InstanceManager, instance_id: str) -> None:
    await manager.rewind(instance_id, "Orchestrator failed and needs to be revived.")
    log.info("Rewound instance %s.", instance_id)


on_instance_message("RewindInstance", "rewind-queue", rewind)


# --- purge instance history -----------------------------------------------------


async def purge_instance(manager: InstanceManager, instance_id: str) -> None:
    result = await manager.purge_instance(instance_id)
    log.info("Purged instance %s (%d instance deleted).", instance_id, result.instances_deleted)


on_instance_message("PurgeInstanceHistory", "purge-queue", purge_instance)


def purge_settings() -> tuple[int, frozenset[RuntimeStatus]]:
    """PURGE_OLDER_THAN_DAYS (default 30) and PURGE_RUNTIME_STATUSES (default Completed), validated."""
    days_text = os.environ.get("PURGE_OLDER_THAN_DAYS", "30")
    if not days_text.isdigit() or int(days_text) < 1:
        # Setting values never go into messages (a setting may hold a secret): the name and the rule do.
        raise InvalidInput("App setting PURGE_OLDER_THAN_DAYS must be a whole number of days >= 1.")
    statuses = RuntimeStatus.parse_many(os.environ.get("PURGE_RUNTIME_STATUSES", "Completed"))
    if not statuses:
        raise InvalidInput("App setting PURGE_RUNTIME_STATUSES is empty; give e.g. 'Completed,Failed'.")
    return int(days_text), statuses


@app.function_name("PurgeOldInstanceHistory")
@app.timer_trigger(arg_name="timer", schedule="0 0 12 * * *")
@app.durable_client_input(client_name="client")
async def purge_old_instance_history(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    """Every day at noon: purge Completed instances created more than 30 days ago."""
    days, statuses = purge_settings()
    older_than = datetime.now(timezone.utc) - timedelta(days=days)
    async with InstanceManager.from_client(client) as manager:
        result = await manager.purge(created_to=older_than, statuses=statuses)
    log.info("Purged %d instances (%s) created before %s.", result.instances_deleted,
             ",".join(sorted(s.value for s in statuses)), older_than.isoformat())


# --- orchestrations and activities the triggers drive ----------------------------


@app.orchestration_trigger(context_name="context")
def HelloWorld(context: df.DurableOrchestrationContext):
    """Publishes its management URLs, then greets its input."""
    yield context.call_activity("SendInstanceInfo", context.instance_id)
    return (yield context.call_activity("E1_SayHello", context.get_input() or "World"))


@app.orchestration_trigger(context_name="context")
def E1_HelloSequence(context: df.DurableOrchestrationContext):
    """Greets three cities, one activity after the other (the function chaining pattern)."""
    greetings: list[str] = []
    for city in ("Tokyo", "Seattle", "London"):
        greeting = yield context.call_activity("E1_SayHello", city)
        greetings.append(greeting)
    return greetings


@app.activity_trigger(input_name="name")
def E1_SayHello(name: str) -> str:
    """The activity each step of the sequences calls."""
    return f"Hello {name}!"


@app.orchestration_trigger(context_name="context")
def SlowHelloSequence(context: df.DurableOrchestrationContext):
    """E1_HelloSequence with a pause first (seconds from the input, default 5): the 202 branch of the wait."""
    seconds = context.get_input() or 5
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=float(seconds)))
    return (yield context.call_sub_orchestrator("E1_HelloSequence"))


@app.function_name("SendInstanceInfo")
@app.activity_trigger(input_name="instanceId")
@app.table_output(arg_name="document", table_name="HttpManagementPayloads", connection=STORAGE)
@app.durable_client_input(client_name="client")
async def send_instance_info(instanceId: str, document: func.Out[str], client: df.DurableOrchestrationClient) -> None:
    """Stores the instance's management webhook URLs in the HttpManagementPayloads table.

    The document's example writes them to Cosmos DB; an Azure Table output
    binding is the same pattern on the storage account every app has.
    """
    async with InstanceManager.from_client(client) as manager:
        urls = await manager.management_urls(instanceId)
    document.set(json.dumps({"PartitionKey": "payloads", "RowKey": instanceId, "Payload": json.dumps(urls.to_json())}))


@app.orchestration_trigger(context_name="context")
def ApprovalWorkflow(context: df.DurableOrchestrationContext):
    """Waits for MyEvent (RaiseEvent sends [1, 2, 3]) or gives up after the input's timeoutSeconds (default 3600)."""
    options = context.get_input()
    timeout = float(options.get("timeoutSeconds", 3600)) if isinstance(options, dict) else 3600.0
    context.set_custom_status("Waiting for MyEvent")
    approval = context.wait_for_external_event("MyEvent")
    timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=timeout))
    winner = yield context.task_any([approval, timer])
    if winner == approval:
        timer.cancel()
        context.set_custom_status("Approved")
        return {"approved": True, "data": approval.result}
    context.set_custom_status("Timed out")
    return {"approved": False}


@app.orchestration_trigger(context_name="context")
def ApprovalWithRecord(context: df.DurableOrchestrationContext):
    """The rewind story: approvals are collected, then recording them fails on a wrong setting.

    Once APPROVAL_RECORD_TABLE is fixed and the instance rewound, the
    recording runs again and the instance completes; the approvals are not
    asked for again (their results replay from history).
    """
    requests = context.get_input() or ["alice", "bob"]
    yield context.task_all([context.call_activity("RequestApproval", who) for who in requests])
    decision = yield context.wait_for_external_event("MyEvent")
    record = yield context.call_activity("RecordApproval", {"instanceId": context.instance_id,
                                                            "decision": decision})
    return {"decision": decision, "recordedIn": record}


@app.function_name("RequestApproval")
@app.activity_trigger(input_name="approver")
@app.queue_output(arg_name="notification", queue_name="approval-requests", connection=STORAGE)
def request_approval(approver: str, notification: func.Out[str]) -> str:
    """Notifies an approver (a message on the approval-requests queue)."""
    notification.set(json.dumps({"approver": approver}))
    return f"asked {approver}"


@app.function_name("RecordApproval")
@app.activity_trigger(input_name="record")
@app.table_output(arg_name="row", table_name="%APPROVAL_RECORD_TABLE%", connection=STORAGE)
def record_approval(record: dict, row: func.Out[str]) -> str:
    """Writes the decision to the table named by APPROVAL_RECORD_TABLE: a wrong name fails here."""
    table = os.environ.get("APPROVAL_RECORD_TABLE", "")
    if not table.isalnum() or not table[:1].isalpha() or not 3 <= len(table) <= 63:
        raise InvalidInput("App setting APPROVAL_RECORD_TABLE is not a valid table name (3-63 letters and digits, "
                           "starting with a letter). Fix it, then rewind the instance.")
    row.set(json.dumps({"PartitionKey": "approvals", "RowKey": record["instanceId"],
                        "Decision": json.dumps(record["decision"])}))
    return table
