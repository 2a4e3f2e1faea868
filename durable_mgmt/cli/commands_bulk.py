"""Bulk operations by query, run as resumable jobs: ``bulk <action>``, ``export-history`` and ``jobs``.

Each bulk command counts what its query matches and asks first (``--yes``
skips the question), then creates a job in the hub's storage account and
runs it with progress on stderr. Ctrl-C stops after the batch in flight is
recorded (a second Ctrl-C stops at once; the instances in flight are checked
on resume); ``jobs resume ID`` goes on where it stopped.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
from typing import Any

import click

from ..jobs.models import MAX_RATE, MIN_RATE, BulkAction, BulkRequest, CountRequest, JobInfo, JobState, Outcome
from ..query import Query
from .commands_cleanup import confirm, yes_option
from .context import Target, hub_options
from .errors import EXIT_REFUSED, CliError
from .params import STRICT_JSON_TEXT
from .progress import ProgressReporter
from .query_support import parse_query, print_plan, run_with_manager

_QUERY_REQUIRED = click.option("--query", "-q", "query_text", required=True, metavar="QUERY",
                               help="Filter query selecting the instances (use \"\" for every instance; "
                                    "see docs/cli.md, 'Filter language').")


def _load_options(func):
    func = click.option("--batch-size", type=click.IntRange(1, 98), default=None,
                        help="Instances recorded per checkpoint [default: 98, or ~5 s of work at --rate].")(func)
    func = click.option("--concurrency", type=click.IntRange(1, 256), default=8, show_default=True,
                        help="Operations in flight at once.")(func)
    func = click.option("--rate", type=float, default=None, metavar="OPS", callback=_check_rate,
                        help=f"At most OPS operations per second, {MIN_RATE} to {MAX_RATE:g} "
                             "[default: no limit].")(func)
    return func


def _check_rate(ctx, param, value: float | None) -> float | None:
    # FloatRange lets nan through (every comparison with nan is false), and inf would make a job that never runs.
    if value is not None and not (math.isfinite(value) and MIN_RATE <= value <= MAX_RATE):
        raise click.BadParameter(f"{value!r} is not a rate: give operations per second from {MIN_RATE} "
                                 f"(one every {1 / MIN_RATE:.0f} s) to {MAX_RATE:g}.")
    return value


def _explain_option(func):
    return click.option("--explain", is_flag=True, help="Print the query plan and the number of matches; do nothing.")(func)


async def _run_job(target: Target, manager, job, *, total_hint: int | None = None) -> JobInfo:
    """Run ``job`` with progress; the first Ctrl-C stops after the batch in flight, a second at once."""
    out = target.output
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    presses = 0

    def on_sigint() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            out.note(f"Stopping job {job.id} after the batch in flight (Ctrl-C again to stop at once)...")
            job.stop()
        else:
            task.cancel()

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    action = job.info.action.value
    try:
        with ProgressReporter(out, f"{action} ({job.id})", total=total_hint or job.info.matched or None,
                              unit="instances") as progress:
            def report(info: JobInfo) -> None:
                if info.state is JobState.SELECTING:
                    progress.update(0, extra="selecting: nothing matched yet")
                else:
                    # Acting starts with the first recorded page; the scan may still be finding more.
                    found = "" if info.selection_complete else f"; {info.matched:,} matched so far, selecting"
                    # The total follows the matches recorded (a resumed job stopped mid-scan started from
                    # part of them): never fewer than those handled.
                    total = info.matched if info.selection_complete else max(total_hint or 0, info.matched)
                    progress.update(info.finished, extra=f"{info.done:,} done, {info.skipped:,} skipped, "
                                                          f"{info.failed:,} failed{found}", total=total or None)

            try:
                return await job.run(report, wait_for_lease=True)
            except asyncio.CancelledError:
                raise CliError(f"Job {job.id} stopped at once; resume it with 'funcpy durable jobs resume {job.id}' "
                               "(instances that were in flight are checked before acting again).") from None
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def _matched(info: JobInfo) -> str:
    """How many instances a job matched: "1,000+" while its scan had not finished (more may match)."""
    return f"{info.matched:,}" + ("" if info.selection_complete else "+")


def _report(target: Target, info: JobInfo) -> None:
    text = (f"Job {info.id} ({info.action.value}) {info.state.value}: {_matched(info)} matched, {info.done:,} done, "
            f"{info.skipped:,} skipped, {info.failed:,} failed.")
    if info.state is JobState.INTERRUPTED:
        if info.params.get("stopped"):  # why the run stopped (runner.BulkJob._finish)
            text += f"\nIt stopped: {info.params['stopped']}"
        text += f"\nResume it with: funcpy durable jobs resume {info.id}"
    if info.skipped or info.failed:
        text += f"\nSee why with: funcpy durable jobs show {info.id} --outcomes failed,skipped"
    target.output.result(text, info.to_json())
    if info.state is JobState.INTERRUPTED or info.failed:
        raise click.exceptions.Exit(EXIT_REFUSED)


def _start(target: Target, request: BulkRequest, *, assume_yes: bool, explain: bool) -> None:
    query: Query = request.query
    out = target.output

    async def work(manager) -> JobInfo | None:
        counted = await manager.count(CountRequest(query, "status"))
        by_status = ", ".join(f"{n:,} {s}" for s, n in counted.groups.items()) or "none"
        if explain:
            print_plan(target, query)
            out.note(f"{counted.total:,} instances match ({by_status}).")
            return None
        if counted.total == 0:
            out.result(f"No instances match {query.text!r}; nothing to do.", {"matched": 0})
            return None
        confirm(target, f"{request.action.value} {counted.total:,} instances of task hub '{target.hub_name}' "
                        f"({by_status}) matching {query.text!r}?", assume_yes=assume_yes, refusal="Nothing done")
        job = await manager.bulk(request)
        out.note(f"Job {job.id} created; if it stops, resume it with 'funcpy durable jobs resume {job.id}'.")
        return await _run_job(target, manager, job, total_hint=counted.total)

    info = run_with_manager(target, work)
    if info is not None:
        _report(target, info)


def _bulk_command(action: BulkAction, summary: str, examples: list[str], extra_options=(), *, reason: bool = True):
    def command(target: Target, query_text: str, assume_yes: bool, explain: bool, rate: float | None,
                concurrency: int, batch_size: int | None, **kwargs: Any) -> None:
        if "same_id" in kwargs:
            kwargs["new_instance_id"] = not kwargs.pop("same_id")
        text_data = kwargs.pop("event_data_text", None)
        if text_data is not None and kwargs.get("event_data") is not None:
            raise click.UsageError("Give --event-data or --event-data-text, not both.")
        if kwargs.get("event_data") is not None:
            kwargs["event_data"] = json.loads(kwargs["event_data"])  # STRICT_JSON_TEXT gives compact JSON text
        elif text_data is not None:
            kwargs["event_data"] = text_data  # sent as a JSON string, exactly as typed
        request = BulkRequest(action, parse_query(query_text), rate=rate, concurrency=concurrency,
                              batch_size=batch_size, **kwargs)
        _start(target, request, assume_yes=assume_yes, explain=explain)

    command.__doc__ = (summary + "\n\n    Counts the matches and asks first; runs as a job (see 'jobs').\n\n    \b\n"
                       "    Examples:\n" + "".join(f"      {e}\n" for e in examples))
    decorated = hub_options(command)
    decorated = _load_options(decorated)
    decorated = _explain_option(decorated)
    decorated = yes_option(decorated)
    for option in extra_options:
        decorated = option(decorated)
    if reason:
        decorated = click.option("--reason", default=None, help="Reason recorded with each instance.")(decorated)
    decorated = _QUERY_REQUIRED(decorated)
    return click.command(action.value)(decorated)


_recursive = click.option("--recursive", is_flag=True,
                          help="Also reach sub-orchestrations (found in their parents' history).")

bulk_terminate = _bulk_command(
    BulkAction.TERMINATE, "Terminate every Pending, Running or Suspended instance the query matches.",
    ["funcpy durable bulk terminate -q \"status = Running AND createdTime < -2h\" --rate 50",
     "funcpy durable bulk terminate -q \"name = 'ProcessOrder' AND status IN (Running, Pending)\" --recursive --yes"],
    [_recursive])
bulk_suspend = _bulk_command(
    BulkAction.SUSPEND, "Suspend every running instance the query matches.",
    ["funcpy durable bulk suspend -q \"name = 'Nightly' AND status = Running\" --yes"])
bulk_resume = _bulk_command(
    BulkAction.RESUME, "Resume every suspended instance the query matches.",
    ["funcpy durable bulk resume -q \"status = Suspended\" --rate 20"])
bulk_raise_event = _bulk_command(
    BulkAction.RAISE_EVENT, "Send an event to every instance the query matches (never sent twice to one instance).",
    ["funcpy durable bulk raise-event -q \"name = 'Approval' AND status = Running\" --event-name Approved "
     "--event-data '{\"by\": \"ops\"}'"],
    [click.option("--event-name", required=True, help="Name of the event the orchestrators wait for."),
     click.option("--event-data", type=STRICT_JSON_TEXT, default=None,
                  help="Event data: JSON, or @file.json (text that looks like JSON must be valid JSON)."),
     click.option("--event-data-text", default=None, metavar="TEXT",
                  help="Event data as a plain string, sent exactly as typed (not parsed as JSON).")],
    reason=False)
bulk_rewind = _bulk_command(
    BulkAction.REWIND, "Rewind every Failed instance the query matches.",
    ["funcpy durable bulk rewind -q \"status = Failed AND lastUpdatedTime > -1d\" --reason 'bug fixed'"])
bulk_restart = _bulk_command(
    BulkAction.RESTART, "Start each matching instance's orchestration again with the same input (never twice).",
    ["funcpy durable bulk restart -q \"status = Failed AND name = 'Import'\"",
     "funcpy durable bulk restart -q \"status = Terminated\" --same-id"],
    [click.option("--same-id", "same_id", is_flag=True, help="Reuse each instance id (it must have finished).")],
    reason=False)
bulk_purge = _bulk_command(
    BulkAction.PURGE, "Delete every finished instance the query matches, with its history and large values.",
    ["funcpy durable bulk purge -q \"status IN (Completed, Failed) AND createdTime < -30d\" --rate 200 --yes",
     "funcpy durable bulk purge -q \"instanceId STARTS_WITH 'test-'\" --recursive --terminate-first --wait 120"],
    [_recursive,
     click.option("--terminate-first", is_flag=True,
                  help="Terminate active instances first and wait until they are Terminated before purging."),
     click.option("--wait", "wait_seconds", type=click.FloatRange(min=0, min_open=True), default=60.0,
                  show_default=True, help="Seconds to wait for Terminated with --terminate-first.")])


@click.group("bulk")
def bulk() -> None:
    """Act on every instance a --query matches, as a resumable, throttled job.

    \b
    Examples:
      funcpy durable bulk terminate -q "status = Running AND createdTime < -2h" --rate 50
      funcpy durable bulk purge -q "status = Completed AND createdTime < -30d" --yes
      funcpy durable jobs list
    """


for _cmd in (bulk_terminate, bulk_suspend, bulk_resume, bulk_raise_event, bulk_rewind, bulk_restart, bulk_purge):
    bulk.add_command(_cmd)


@click.command("export-history")
@_QUERY_REQUIRED
@click.option("--path", "-p", "path", required=True, type=click.Path(dir_okay=False),
              help="JSONL file to write (one instance with its history per line).")
@click.option("--gzip", "use_gzip", is_flag=True, help="Compress the file with gzip.")
@yes_option
@_explain_option
@_load_options
@hub_options
def export_history(target: Target, query_text: str, path: str, use_gzip: bool, assume_yes: bool, explain: bool,
                   rate: float | None, concurrency: int, batch_size: int | None) -> None:
    """Write the histories of every instance the query matches to a JSONL file, as a resumable job.

    A stopped export resumes where it stopped ('jobs resume'), without
    writing any instance twice.

    \b
    Examples:
      funcpy durable export-history -q "status = Failed AND createdTime > -7d" --path failed.jsonl
      funcpy durable export-history -q "name = 'Import'" --path import.jsonl.gz --gzip --yes
    """
    request = BulkRequest(BulkAction.EXPORT_HISTORY, parse_query(query_text), path=path, gzip=use_gzip, rate=rate,
                          concurrency=concurrency, batch_size=batch_size)
    _start(target, request, assume_yes=True, explain=explain)  # it only reads: nothing to confirm


@click.group("jobs")
def jobs() -> None:
    """List, show, resume and cancel bulk jobs and exports (kept in the hub's {Hub}MgmtJobs table).

    \b
    Examples:
      funcpy durable jobs list
      funcpy durable jobs show 20240501T101500-3fa2c1 --outcomes failed,skipped
      funcpy durable jobs resume 20240501T101500-3fa2c1
      funcpy durable jobs cancel 20240501T101500-3fa2c1
    """


@jobs.command("list")
@hub_options
def jobs_list(target: Target) -> None:
    """Every job of the hub, newest first, with its state and counters.

    \b
    Examples:
      funcpy durable jobs list
      funcpy durable jobs list --output json | jq '.[] | select(.state == "Interrupted") | .id'
    """
    infos = run_with_manager(target, lambda m: m.jobs())
    out = target.output
    if out.is_json:
        out.json([i.to_json() for i in infos])
        return
    out.table(["Job", "Action", "State", "Matched", "Done", "Skipped", "Failed", "Query"],
              [(i.id, i.action.value, i.state.value, _matched(i), f"{i.done:,}", f"{i.skipped:,}",
                f"{i.failed:,}", i.query) for i in infos])


@jobs.command("show")
@click.argument("job_id")
@click.option("--outcomes", default="failed,skipped", show_default=True, metavar="LIST",
              help="Which instance outcomes to list: done, skipped, failed, pending, claimed, all or none.")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True, help="Most instances to list.")
@hub_options
def jobs_show(target: Target, job_id: str, outcomes: str, limit: int) -> None:
    """A job's state and counters, and what it did to some of its instances (and why).

    \b
    Examples:
      funcpy durable jobs show 20240501T101500-3fa2c1
      funcpy durable jobs show 20240501T101500-3fa2c1 --outcomes all --limit 1000 --output json
    """
    wanted = _outcomes(outcomes)

    async def work(m):
        job = await m.job(job_id)
        listed = []
        if wanted:
            async for o in job.outcomes(*wanted):
                if len(listed) >= limit:
                    break
                listed.append(o)
        return job.info, listed

    info, listed = run_with_manager(target, work)
    out = target.output
    if out.is_json:
        out.json({**info.to_json(), "instances": [o.to_json() for o in listed]})
        return
    out.console.print(f"Job {info.id}: {info.action.value} {info.state.value}\nQuery: {info.query} "
                      f"(relative times from {info.now:%Y-%m-%dT%H:%M:%SZ})\nMatched {_matched(info)}: "
                      f"{info.done:,} done, {info.skipped:,} skipped, {info.failed:,} failed", markup=False)
    if listed:
        out.table(["Instance", "Outcome", "Reason"], [(o.instance_id, o.outcome.value, o.reason) for o in listed])


def _outcomes(text: str) -> list[Outcome]:
    words = [w.strip().lower() for w in text.replace(" ", ",").split(",") if w.strip()]
    if words == ["none"]:
        return []
    if "all" in words:
        return list(Outcome)
    try:
        return [Outcome(w) for w in words]
    except ValueError:
        raise click.BadParameter(f"{text!r}: give a comma-separated list of "
                                 f"{', '.join(o.value for o in Outcome)}, or all, or none",
                                 param_hint="'--outcomes'") from None


@jobs.command("resume")
@click.argument("job_id")
@hub_options
def jobs_resume(target: Target, job_id: str) -> None:
    """Go on with a stopped job where it stopped (finished instances are not touched again).

    Instances the stopped process may have been acting on are checked
    before acting again; if that process died, this waits for its lease on
    the job (at most 20 s) to run out.

    \b
    Examples:
      funcpy durable jobs resume 20240501T101500-3fa2c1
    """

    async def work(m):
        job = await m.job(job_id)
        if job.info.state.is_final:
            return job.info
        return await _run_job(target, m, job)

    _report(target, run_with_manager(target, work))


@jobs.command("cancel")
@click.argument("job_id")
@hub_options
def jobs_cancel(target: Target, job_id: str) -> None:
    """Stop a job for good (a process running it stops at its next checkpoint).

    \b
    Examples:
      funcpy durable jobs cancel 20240501T101500-3fa2c1
    """
    info = run_with_manager(target, lambda m: m.cancel_job(job_id))
    target.output.result(f"Job {info.id}: cancel requested ({info.state.value}).", info.to_json())


COMMANDS = [bulk, export_history, jobs]
