"""Bulk actions as ``InstanceManager.bulk`` jobs, advanced one bounded step per request.

The dashboard never runs a job in the background: a request creates the job
(it is stored in the hub's ``{Hub}MgmtJobs`` table before anything is acted
on), and each ``step`` request runs it for about ``STEP_SECONDS`` and stops it
at its next checkpoint; the page asks for the next step. So no server keeps
state between requests: a Blueprint on several workers behaves as
``funcpy monitor`` does, a worker that dies mid-step loses nothing (its lease
runs out and the next step, or ``funcpy durable jobs resume``, goes on where
the last checkpoint was), and closing the page leaves the job Interrupted,
resumable from the jobs page or the CLI.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Sequence

from ..errors import InvalidInput, JobBusy
from ..jobs.models import MAX_BATCH_SIZE, BulkAction, BulkRequest, JobInfo
from .filters import literal

STEP_SECONDS = 2.0  # a step stops at the first checkpoint after this (a chunk is sized to ~2 s at the rate)
CHUNK_SECONDS = 2.0
DEFAULT_CONCURRENCY = 4
MAX_SELECTED = 1000  # rows of one list page at most
ACTIONS = {
    "terminate": "Terminate", "suspend": "Suspend", "resume": "Resume", "rewind": "Rewind",
    "restart": "Restart", "purge": "Purge",
}
# A query's IN list is pushed down to storage up to the filter's comparison budget (query.plan).
PUSHED_IN_VALUES = 12


def check_action(action: str) -> str:
    if action not in ACTIONS:
        raise InvalidInput(f"Unknown bulk action {action!r}; choose one of {', '.join(ACTIONS)}.")
    return action


def selected_query(ids: Sequence[str]) -> str:
    """The query of selected rows: ``instanceId IN (...)``.

    Above the values storage evaluates in one filter, the ids' common prefix is added as
    ``STARTS_WITH`` (exact, and pushed down), so the scan stays near the selected rows.
    """
    if not ids:
        raise InvalidInput("No rows are selected: tick the instances to act on, or choose 'everything the "
                           "query matches'.")
    if len(ids) > MAX_SELECTED:
        raise InvalidInput(f"{len(ids)} rows are selected; at most {MAX_SELECTED} can be sent at once "
                           "(act on everything the query matches instead).")
    unique = list(dict.fromkeys(ids))
    listed = f"instanceId IN ({', '.join(literal(i) for i in unique)})"
    prefix = os.path.commonprefix(unique)
    if len(unique) > PUSHED_IN_VALUES and prefix:
        return f"instanceId STARTS_WITH {literal(prefix)} AND {listed}"
    return listed


def parse_rate(text: str) -> float | None:
    """Operations per second from the form; blank means no bound (``BulkRequest`` checks the range)."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(f"Rate {text!r} is not a number: give operations per second (e.g. 10), or leave it "
                           "blank for no bound.") from None


def parse_concurrency(text: str) -> int:
    text = text.strip() or str(DEFAULT_CONCURRENCY)
    if not (text.isascii() and text.isdigit()):
        raise InvalidInput(f"Concurrency {text!r} is not a whole number: give 1 to 256 operations in flight.")
    return int(text)


def build_request(action: str, query: str, *, reason: str, rate: str, concurrency: str) -> BulkRequest:
    """The job a confirmed bulk form asks for (every input checked before anything is stored)."""
    check_action(action)
    rate_value = parse_rate(rate)
    in_flight = parse_concurrency(concurrency)
    if rate_value is not None and rate_value > 0:
        # Chunks of about CHUNK_SECONDS at the rate: each step acts for about that long past STEP_SECONDS.
        chunk = max(1, min(MAX_BATCH_SIZE, int(rate_value * CHUNK_SECONDS)))
    else:
        # Unbounded: a few operations per slot in flight, so a step still answers within seconds.
        chunk = min(MAX_BATCH_SIZE, max(20, in_flight * 5))
    return BulkRequest(BulkAction.parse(action), query, reason=reason.strip() or None, rate=rate_value,
                       concurrency=in_flight, batch_size=chunk)


@dataclass(frozen=True)
class Step:
    """What one step left: the job as stored, and why it did not run (another process holds it)."""

    info: JobInfo
    busy: str = ""


async def step(job, seconds: float = STEP_SECONDS) -> Step:
    """Run ``job`` (a ``BulkJob``) for about ``seconds``, then stop it at its next checkpoint."""
    if job.info.action is BulkAction.EXPORT_HISTORY:
        raise InvalidInput(f"Job {job.id} is an export: it writes a file where it runs, so resume it with "
                           f"'funcpy durable jobs resume {job.id}' on the machine that should hold the file.")
    task = asyncio.ensure_future(job.run())
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
        if not done:
            job.stop()
        return Step(await task)
    except JobBusy as e:
        return Step(await job.refresh(), str(e))
    finally:
        if not task.done():  # the request was canceled (page closed): the job records Interrupted
            task.cancel()
