"""Commands on one instance: start, inspect, steer.

Each works on the task hub in storage, with no host running; the ones that
steer (terminate, raise-event, suspend, resume, rewind) queue a message that
a host running on the hub carries out.
"""

from __future__ import annotations

import inspect
import json
import math
import uuid

import click

from ..errors import WaitTimeout
from ..limits import MAX_WAIT_SECONDS
from ..models import RuntimeStatus
from .context import Target, hub_options
from .errors import CliError
from .output import event_json, iso, status_json
from .params import JSON_TEXT, bool_option, id_option

_POLL_SECONDS = (0.2, 0.5, 1.0)  # terminate: poll fast first, then settle at one read a second


@click.command("start-new")
@click.option("--function-name", required=True, metavar="NAME", help="Orchestrator function to start.")
@click.option("--id", "instance_id", metavar="ID", help="Instance id [default: a random 32-hex-digit id].")
@click.option("--input", "input_json", type=JSON_TEXT, default=None,
              help="Input: inline JSON (text that is not JSON is sent as a string), or @path/to/file.json.")
@hub_options
def start_new(target: Target, function_name: str, instance_id: str | None, input_json: str | None) -> None:
    """Start a new instance of an orchestrator function.

    The start is queued in the task hub (created if it does not exist); a host
    running on the hub executes it. Starting an id that is still Pending or
    Running is refused; a finished one is started again.

    \b
    Examples:
      funcpy durable start-new --function-name HelloCities
      funcpy durable start-new --function-name ProcessOrder --id order-42 --input '{"order": 42}'
      funcpy durable start-new --function-name ProcessOrder --input @order.json --task-hub-name ProdHub
    """

    async def work(manager):
        await target.warn_if_missing(manager, "start-new creates it, and only a host running on it runs this "
                                              "instance.")
        iid = await manager.start_json(function_name, input_json, instance_id=instance_id)
        return await manager.status(iid, show_input=True, show_output=False)

    status = target.run(work)
    target.output.result(
        f"Started '{status.name}' at {iso(status.created_time)}. Instance ID: '{status.instance_id}'.",
        status_json(status, show_input=True, show_output=False))


@click.command("get-runtime-status")
@id_option()
@bool_option("--show-input", "Include the instance's input.")
@bool_option("--show-output", "Include the instance's output (or failure details).")
@hub_options
def get_runtime_status(target: Target, instance_id: str, show_input: bool, show_output: bool) -> None:
    """Show the status of one instance: name, runtime status, times, input and output.

    \b
    Examples:
      funcpy durable get-runtime-status --id 0ab8c55a66644d68a3a8b220b12d209c
      funcpy durable get-runtime-status --id order-42 --show-input --show-output
      funcpy durable get-runtime-status --id order-42 --output json | jq -r .runtimeStatus
    """
    status = target.run(lambda manager: manager.status(instance_id, show_input=show_input, show_output=show_output))
    target.output.status(status, show_input=show_input, show_output=show_output)


@click.command("get-history")
@id_option()
@hub_options
def get_history(target: Target, instance_id: str) -> None:
    """Show the history events of an instance's current execution, in order.

    Event types are printed by name; times are ISO 8601 UTC.

    \b
    Examples:
      funcpy durable get-history --id order-42
      funcpy durable get-history --id order-42 --output json | jq '.[] | select(.EventType == "TaskFailed")'
    """
    events = target.run(lambda manager: manager.history(instance_id))
    target.output.history([event_json(e) for e in events])


@click.command("terminate")
@id_option()
@click.option("--reason", default=None, help="Why it is terminated (kept as the instance's output).")
@click.option("--timeout", type=click.FloatRange(min=0, max=MAX_WAIT_SECONDS), default=30.0, show_default=True, metavar="SECONDS",
              callback=lambda ctx, param, value: _finite_timeout(value),
              help="How long to wait for the instance to become Terminated; 0 sends the request without waiting.")
@hub_options
def terminate(target: Target, instance_id: str, reason: str | None, timeout: float) -> None:
    """Terminate a Pending, Running or Suspended instance, and wait until it is Terminated.

    The request is queued; a host running on the task hub carries it out.
    Exits with 1 if the instance is not Terminated within --timeout.

    \b
    Examples:
      funcpy durable terminate --id order-42 --reason "Found a bug"
      funcpy durable terminate --id order-42 --timeout 0      # queue it and return
    """
    out = target.output

    async def work(manager):
        await manager.terminate(instance_id, reason)
        if timeout <= 0:
            return None
        out.note(f"Sent a termination message to instance '{instance_id}'. "
                 f"Waiting up to {timeout:g} seconds for it to terminate...")
        try:
            return await manager.wait_for_completion(instance_id, timeout=timeout, retry_interval=_POLL_SECONDS)
        except WaitTimeout as e:
            raise CliError(
                f"Instance '{instance_id}' is still {e.status.runtime_status.value} after {timeout:g} s: the "
                f"termination is queued and takes effect when a host runs task hub '{target.hub_name}'. Check "
                "later with get-runtime-status, or wait longer with --timeout.") from None

    status = target.run(work)
    if status is None:
        out.result(f"Termination of '{instance_id}' requested; a host running task hub "
                   f"'{target.hub_name}' carries it out.", {"instanceId": instance_id, "request": "terminate", "reason": reason})
    elif status.runtime_status != RuntimeStatus.TERMINATED:
        raise CliError(f"Instance '{instance_id}' ended as {status.runtime_status.value} before the termination "
                       "took effect; nothing more to do.")
    else:
        out.result(f"Successfully terminated '{instance_id}'.", status_json(status, show_input=False,
                                                                         show_output=True))


def _finite_timeout(value: float) -> float:
    # FloatRange lets nan through (every comparison with nan is false): the wait would refuse it only after the
    # termination was sent.
    if not math.isfinite(value):
        raise click.BadParameter(f"{value!r} is not a number of seconds: give 0 to {MAX_WAIT_SECONDS:g}.")
    return value


@click.command("raise-event")
@id_option()
@click.option("--event-name", metavar="NAME", default=None,
              help="Name of the event the orchestrator waits for [default: Event_<32 hex digits>, as Core Tools].")
@click.option("--event-data", type=JSON_TEXT, default=None,
              help="Event data: inline JSON (text that is not JSON is sent as a string), or @path/to/file.json.")
@hub_options
def raise_event(target: Target, instance_id: str, event_name: str | None, event_data: str | None) -> None:
    """Send an event to a running instance (kept until the orchestrator waits for it).

    Without --event-name the event is named Event_<32 hex digits>, as Core
    Tools names it (DurableRaiseEvent: Event_{Guid:N}); the name is printed.

    \b
    Examples:
      funcpy durable raise-event --id order-42 --event-name Approval --event-data true
      funcpy durable raise-event --id order-42 --event-name Payment --event-data @payment.json
    """
    if event_name is None:
        event_name = f"Event_{uuid.uuid4().hex}"
    target.run(lambda manager: manager.raise_event(instance_id, event_name, data_json=event_data))
    target.output.result(f"Raised event '{event_name}' to instance '{instance_id}'.",
                         {"instanceId": instance_id, "eventName": event_name,
                          "eventData": None if event_data is None else json.loads(event_data)})


def _request_command(operation: str, reason_help: str, help: str) -> click.Command:
    """A command that sends one request with a reason to an instance (suspend, resume)."""

    @id_option()
    @click.option("--reason", default=None, help=reason_help)
    @hub_options
    def command(target: Target, instance_id: str, reason: str | None) -> None:
        target.run(lambda manager: getattr(manager, operation)(instance_id, reason))
        target.output.result(f"{operation.capitalize()} request sent to instance '{instance_id}'.",
                             {"instanceId": instance_id, "request": operation, "reason": reason})

    return click.command(operation, help=inspect.cleandoc(help))(command)


suspend = _request_command("suspend", "Why it is suspended.", """Suspend a running instance: it stops at its next step until resumed.

    \b
    Examples:
      funcpy durable suspend --id order-42 --reason "Waiting for the fix"
    """)

resume = _request_command("resume", "Why it is resumed.", """Resume a suspended instance.

    \b
    Examples:
      funcpy durable resume --id order-42 --reason "Fix deployed"
    """)


@click.command("rewind")
@id_option()
@click.option("--reason", default=None, help="Why it is rewound.")
@hub_options
def rewind(target: Target, instance_id: str, reason: str | None) -> None:
    """Rewind a Failed instance: its failed work runs again, earlier results are replayed.

    Only Failed instances can be rewound. The instance becomes Pending; a host
    running on the task hub replays it.

    \b
    Examples:
      funcpy durable rewind --id order-42 --reason "Payment service fixed"
    """

    async def work(manager):
        replayed = await manager.rewind(instance_id, reason)  # refused unless Failed: that is the status before
        after = await manager.status(instance_id, show_input=False, show_output=False)
        return after, replayed

    after, replayed = target.run(work)
    before = RuntimeStatus.FAILED.value
    target.output.result(
        f"Rewind message sent to instance '{instance_id}'.\n"
        f"Status before rewind: {before}\nStatus after rewind: {after.runtime_status.value}",
        {"instanceId": instance_id, "statusBefore": before,
         "statusAfter": after.runtime_status.value, "replayedInstanceIds": replayed})


COMMANDS = [start_new, get_runtime_status, get_history, terminate, raise_event, suspend, resume, rewind]
