"""Running a bulk job: record the matches, and act on each one once as they are recorded, checkpointing as
it goes.

1. *Selecting*: the query (its relative times fixed by the job's ``now``) is
   scanned in PartitionKey order; the matches of each storage page are
   written to the job's partition as selection rows (many ids per row), then
   the job row's scan cursor (``params["scanned"]``) moves past them (a
   resumed selection first drops rows past it), and only then are they acted
   on: what is acted on is always recorded. Acting starts with the first
   page, while the scan goes on (a job over 100,000 instances does not wait
   for the whole scan; the state is Selecting until something matched, then
   Running, and ``params["selected"]`` says when the scan ended). An
   instance is judged by the query when the scan reaches it:
   one that stops matching after that (because of the action or anything
   else) stays in the job; one the scan has passed is not added later.
2. *Acting*: the recorded selection after the cursor is read in key order, ``chunk`` at a time.
   Before a chunk is acted on, the job's claim mark moves to its last key
   (one small row); the chunk is acted on (``concurrency`` in flight, at
   most ``rate`` starts per second), and its outcomes are written with the
   job's counters and cursor in one transaction; outcomes as the action
   usually ends ("terminate sent") are not written but implied by the
   cursor (a row write per instance cost as much as the operation). A
   resumed job reads only instances after the cursor, so a finished
   instance is never acted on again; those between the cursor and
   the claim mark are in doubt and checked first (``actions``). The run is
   a pipeline: the next chunk is read, claimed and its statuses read (with
   the cancel check) while two chunks are acted on, and each checkpoint is
   written while later chunks act, so storage round trips never stall the
   operations themselves.

Only one process runs a job at a time: it holds a lease on the job row
(``Owner``/``LeaseUntil``, renewed at each checkpoint; every write is
conditional on the row's ETag). The lease covers a whole chunk: it is
``LEASE_SECONDS`` plus the chunk's time at ``rate`` (a rated chunk holds at
most ``MAX_CHUNK_SECONDS`` of work), so a slow job never lets it lapse
mid-chunk. No operation starts once this process's own lease may have run
out: an operation about to start that close to its end first takes the lease
again (a write of the job row, conditional on its ETag, so it fails with
JobBusy if another process took the job meanwhile); only if that write
cannot land in time does the job stop, Interrupted (it can be resumed). A
store that stalls for seconds (a loaded machine; in-memory Azurite's
garbage collection) must not stop a job whose lease is still its own.
After a crash the lease runs out within that time and the job can be
resumed. A job that stops Interrupted says why: in ``params["stopped"]``
(``jobs show``, and the CLI's report of the run) and in a line logged on
``durable_mgmt.jobs``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, AsyncIterator, Awaitable, Callable

from ..errors import DurableError, JobBusy
from ..query import Query
from ..taskhub.jobs_table import (LEGACY_LAYOUT, MEMBER_PREFIX, SELECTION_LAYOUT, STREAMED_LAYOUT, JobsTable,
                                  key_group, lease_is_live, member_key)
from ..taskhub.names import service_order
from ..taskhub.scan import scan_ids, scan_statuses
from ..taskhub.timefmt import utcnow
from ..taskhub.bulk_ops import BatchPurger, terminate_message
from .actions import Context, Prepared, act_batch, batchable, prepare_batch, usual_reason
from .export import HistoryExport
from .models import MAX_BATCH_SIZE, BulkAction, BulkRequest, InstanceOutcome, JobInfo, JobState, Outcome

LEASE_SECONDS = 20.0
CANCEL_CHECK_SECONDS = 1.0  # how often a running job looks for a cancel request
MAX_CHUNK_SECONDS = 10.0  # at a rate, a chunk holds at most this much work (a longer one waits on its lease)
# Without a rate, the lease allows this long per instance of a chunk: a slow, loaded store must not make every
# chunk outlive its lease (the job would stop before acting, again and again), and a crashed run's lease still
# runs out within a few minutes for `jobs resume`.
UNRATED_SECONDS_PER_INSTANCE = 1.5
LEASE_MARGIN_SECONDS = 2.0  # no operation starts this close to the end of our own lease
LEASE_RENEWALS = 3  # writes of the job row tried in a row to take the lease again (see _renew_lease)
ACTING_CHUNKS = 2  # chunks acted on at once without a rate (see _process)
READ_AHEAD_CHUNKS = 5  # chunks whose statuses one read covers, without a rate (see _ChunkReader)

log = logging.getLogger("durable_mgmt.jobs")


class _LeaseRunningOut(Exception):
    """Our lease on the job may lapse before the next operation: stop acting (another may take over)."""


class _Halt:
    """A run's "start no more operations", with why. One per run, not per handle: a later run of the same
    handle must not lift it for operations an earlier run left behind."""

    def __init__(self) -> None:
        self.why = ""

    def stop(self, why: str) -> None:
        self.why = self.why or why


@dataclass(frozen=True)
class _Chunk:
    """Consecutive members of a job, claimed and ready to be acted on."""

    last_key: str
    members: list[InstanceOutcome]
    prepared: Prepared | None = None
    canceled: bool = False  # a cancel was asked for: nothing of this chunk is acted on


class _ChunkReader:
    """The job's members still to act on, a chunk at a time, each claimed and prepared before it is given
    out (``next()``, one call at a time). Members past the cursor up to the claim mark of an earlier run are
    given as CLAIMED: that run may have acted on them.

    Statuses (and a purge's history keys) are read for ``ahead`` chunks at once, one range query for
    several chunks: every query costs the store a pass over the table's rows in range (in-memory Azurite
    evaluates it over the whole table: at 20,000 instances, one took as long as two point reads),
    while claims stay a chunk at a time (what a crash leaves in doubt)."""

    def __init__(self, job: "BulkJob", ctx: Context, export: HistoryExport | None, claimed: str, *, ahead: int = 1):
        self._job, self._ctx, self._export, self.claimed = job, ctx, export, claimed
        self._claimed_order = service_order(claimed)
        self._ahead = ahead
        self._pages = job._pending_pages()
        self._buffer: list = []
        self._prepared: Prepared | None = None  # statuses read for these members and some not given out yet

    async def _fill(self, size: int) -> None:
        while len(self._buffer) < size:
            page = await anext(self._pages, None)
            if page is None:
                break
            self._buffer.extend(page)

    async def _take(self, size: int) -> list:
        await self._fill(size)
        chunk, self._buffer = self._buffer[:size], self._buffer[size:]
        return chunk

    def _as_member(self, key: str, member: InstanceOutcome) -> InstanceOutcome:
        if not self.claimed:  # nothing claimed by an earlier run: every member is as read
            return member
        if service_order(key) <= self._claimed_order:
            return InstanceOutcome(member.instance_id, Outcome.CLAIMED)
        return member

    async def _prepare(self, members: list[InstanceOutcome], size: int) -> Prepared:
        """What ``members`` need before acting: from the read made for earlier chunks when it covered them,
        else read now for them and the next ``ahead - 1`` chunks' worth of members (still buffered)."""
        fresh = [m.instance_id for m in members if m.outcome is Outcome.PENDING]
        if self._prepared is not None and self._prepared.statuses.keys() >= set(fresh):
            return self._prepared
        await self._fill((self._ahead - 1) * size)
        following = [self._as_member(key, m) for key, m in self._buffer[:(self._ahead - 1) * size]]
        prepared = await prepare_batch(self._ctx, members + following, known=self._job._scanned)
        # A failed read (statuses None: act one by one) is not kept for the following chunks.
        self._prepared = prepared if prepared.statuses is not None else None
        return prepared

    async def next(self) -> _Chunk | None:
        jobs, job_id = self._job._jobs, self._job.id
        size = self._job._chunk_size()
        keyed = await self._take(size)
        if not keyed:
            return None
        steps: list = [self._job._cancel_seen()]
        members = [self._as_member(key, m) for key, m in keyed]
        if self._export is None:
            if any(m.outcome is Outcome.PENDING for m in members):
                steps.append(jobs.claim_through(job_id, keyed[-1][0]))
            steps.append(self._prepare(members, size))
        # Each step ends before an error of one is raised: a claim landing after the caller moved the claim
        # mark back (the read failed) would leave this chunk in doubt.
        done = await asyncio.gather(*steps, return_exceptions=True)
        for result in done:
            if isinstance(result, BaseException):
                raise result
        return _Chunk(keyed[-1][0], members, done[-1] if self._export is None else None,
                      canceled=done[0])


ProgressCallback = Callable[[JobInfo], "Awaitable[None] | None"]

_PARAMS = ("reason", "event_name", "event_data", "recursive", "terminate_first", "wait_seconds",
           "new_instance_id", "rate", "concurrency", "batch_size", "path", "gzip")


def _selecting_state(matched: int) -> JobState:
    """A job's state while its scan goes on: Running once something was recorded (it is acted on meanwhile;
    ``matched`` still grows until ``params["selected"]``), Selecting until then."""
    return JobState.RUNNING if matched else JobState.SELECTING


def _with_acted(info: JobInfo, acted: dict[str, Any] | None) -> JobInfo:
    """``info`` with the counters, cursor and export offset a checkpoint brings it to (see BulkJob._write)."""
    if not acted:
        return info
    params = info.params if "offset" not in acted else {**info.params, "offset": acted["offset"]}
    return replace(info, done=acted["done"], skipped=acted["skipped"], failed=acted["failed"], cursor=acted["cursor"],
                   params=params)


async def _flatten(pages: AsyncIterator[list]) -> AsyncIterator[Any]:
    async for page in pages:
        for item in page:
            yield item


def new_job_id() -> str:
    return utcnow().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def request_params(request: BulkRequest) -> dict[str, Any]:
    return {name: getattr(request, name) for name in _PARAMS}


def request_of(info: JobInfo) -> BulkRequest:
    params = {k: v for k, v in info.params.items() if k in _PARAMS}
    return BulkRequest(info.action, Query.parse(info.query, now=info.now), **params)


class _RateLimiter:
    """At most ``rate`` starts per second, spaced evenly (no bursts after a pause)."""

    def __init__(self, rate: float | None, *, last_start: datetime | None = None):
        self._interval = 1.0 / rate if rate else 0.0
        self._next = time.monotonic()
        if last_start is not None and self._interval:
            # A resumed job (e.g. the dashboard's next bounded step) keeps the pace of the run before it: its first
            # start waits one interval from that run's last checkpoint, not none.
            self._next += max(0.0, min(self._interval, self._interval - (utcnow() - last_start).total_seconds()))
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self._interval:
            return
        async with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(self._next, now) + self._interval
        if delay > 0:
            await asyncio.sleep(delay)


class BulkJob:
    """A handle on one job: ``await job.run(progress)`` runs (or resumes) it; ``stop()`` asks it to stop
    after the current checkpoint; ``cancel()`` stops it for good. Safe to use from an aiohttp handler:
    run it in a task and read ``info`` (or the progress callback) meanwhile."""

    def __init__(self, manager: Any, hub: Any, jobs: JobsTable, info: JobInfo):
        self._manager = manager
        self._hub = hub
        self._jobs = jobs
        self.info = info
        self._owner = uuid.uuid4().hex
        self._stop = False
        self._lease_deadline = 0.0  # time.monotonic() when our lease may have run out
        self._renewal: asyncio.Future | None = None  # a write taking the lease again (see _renew_lease)
        self._stopped_because = ""  # why this run stops Interrupted (params["stopped"], see _finish)
        self._request: tuple[tuple, BulkRequest] | None = None
        self._row_lock = asyncio.Lock()  # job row writes, one at a time (see _write)
        # Without a rate, the statuses the scan read for the members it gave out and not yet acted on (see _select).
        self._scanned: dict[str, Any] | None = None
        self._running = False  # run() is going on (in some task) with this handle
        # The ETag this handle's create_job wrote, until its first run: a run that takes the job with it
        # knows no run came before (no selection row, no claim to look for).
        self._created_etag: str | None = None
        self._cancel_asked = False  # cancel() was called on this handle while it ran, or a run saw a cancel request
        self._next_cancel_check = 0.0  # time.monotonic() when a run next reads the job's cancel request

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def request(self) -> BulkRequest:
        # Parsed again only when what it is made of changes: a run reads it at every chunk and checkpoint,
        # and parsing the query each time showed in profiles.
        info = self.info
        made_of = (info.action, info.query, info.now, [info.params.get(name) for name in _PARAMS])
        if self._request is None or self._request[0] != made_of:
            self._request = (made_of, request_of(info))
        return self._request[1]

    def stop(self) -> None:
        """Stop after the batch in flight is recorded (the job can be resumed)."""
        self._stop = True

    async def cancel(self) -> JobInfo:
        """Ask the job to stop for good: a running process stops at its next checkpoint; an idle job
        is marked Canceled now."""
        await self._jobs.request_cancel(self.id)
        if self._running:
            # This handle's own run (in another task) stops at its next chunk and records Canceled itself:
            # writing the row here would change its ETag under it, and it would stop as if taken over, with
            # the chunks it acted on unrecorded (in doubt).
            self._cancel_asked = True
            return await self.refresh()
        info, etag, lease = await self._jobs.get(self.id)
        if not info.state.is_final and not lease_is_live(lease, self._owner):
            with contextlib.suppress(JobBusy):
                await self._jobs.update(replace(info, state=JobState.CANCELED), etag, owner="", lease_seconds=0)
        self.info = (await self._jobs.get(self.id))[0]
        return self.info

    async def refresh(self) -> JobInfo:
        self.info = (await self._jobs.get(self.id))[0]
        return self.info

    @property
    def _layout(self) -> int:
        return self.info.params.get("layout", LEGACY_LAYOUT)

    def _marks(self) -> tuple[str, str | None]:
        """How far the job got: (the member key acted through, "" for none; the scan's cursor while it is still
        selecting, "" before its first page, None once the selection is complete)."""
        info = self.info
        if info.params.get("selected"):
            return info.cursor, None
        if self._layout == STREAMED_LAYOUT:
            return info.cursor, info.params.get("scanned", "")
        return "", info.cursor  # an earlier layout, still selecting: its cursor is the scan's; nothing acted on

    async def _pending_pages(self) -> AsyncIterator[list[tuple[str, InstanceOutcome]]]:
        """The members after the cursor (in key order, pages of (member key, outcome)), as pending: those
        recorded, then, while still selecting, each page of the rest of the scan as it is recorded."""
        if self._layout == LEGACY_LAYOUT:
            async for page in self._jobs.members(self.id, [Outcome.PENDING, Outcome.CLAIMED], after=self.info.cursor):
                yield page
            return
        acted, scanned = self._marks()
        if scanned != "":
            # Only ids up to the scan's cursor are the job's (rows past it were dropped when this run began).
            bound = None if scanned is None else service_order(MEMBER_PREFIX + scanned)
            async for page in self._jobs.selection(self.id, after=acted):
                keyed = [(key, InstanceOutcome(iid, Outcome.PENDING)) for key, iid in page
                         if bound is None or service_order(key) <= bound]
                if keyed:
                    yield keyed
                if len(keyed) < len(page):
                    break
        if scanned is not None:
            async for keyed in self._select(after=service_order(acted) if acted else b""):
                yield keyed

    async def outcomes(self, *only: Outcome) -> AsyncIterator[InstanceOutcome]:
        """What the job did to each instance (in key order), optionally only some outcomes."""
        info = await self.refresh()
        if self._layout != LEGACY_LAYOUT:
            async for outcome in self._selection_outcomes(set(only)):
                yield outcome
            return
        # A member still stored as pending at or before the cursor of a selected job was done with the
        # action's usual reason: checkpoints do not write those (see _process).
        implied = info.cursor if info.params.get("selected") else ""
        # Still selecting, its cursor was the scan's: rows past it are a page written before the cursor
        # recorded it (the resumed run drops them), not the job's.
        recorded = None if implied or info.params.get("selected") else service_order(MEMBER_PREFIX + info.cursor)
        usual = usual_reason(self.request) or ""
        wanted = set(only)
        stored = wanted | {Outcome.PENDING} if Outcome.DONE in wanted else wanted
        async for page in self._jobs.members(self.id, stored or None):
            for key, outcome in page:
                if recorded is not None and service_order(key) > recorded:
                    return
                if outcome.outcome is Outcome.PENDING and implied and service_order(key) <= service_order(implied):
                    outcome = InstanceOutcome(outcome.instance_id, Outcome.DONE, usual)
                if not wanted or outcome.outcome in wanted:
                    yield outcome

    async def _written_outcomes(self, only: set[Outcome] | None = None) -> AsyncIterator[tuple[str, InstanceOutcome]]:
        """The written outcomes ("i:" rows) as (member key, outcome) in the service's key order. Rows are stored
        in order by ``key_group`` (a key too long for a RowKey is cut and hashed): a group's rows, nearly
        always one, are put in key order here."""
        group: list[tuple[str, InstanceOutcome]] = []
        async for key, outcome in _flatten(self._jobs.members(self.id, only)):
            if group and key_group(key) != key_group(group[0][0]):
                for item in sorted(group, key=lambda kv: service_order(kv[0])):
                    yield item
                group = []
            group.append((key, outcome))
        for item in sorted(group, key=lambda kv: service_order(kv[0])):
            yield item

    async def _selection_outcomes(self, wanted: set[Outcome]) -> AsyncIterator[InstanceOutcome]:
        """Outcomes of a job with selection rows: the written outcomes merged, in key order, into the
        selection; an instance without one is done as usual up to the cursor, pending after it."""
        if wanted and wanted <= {Outcome.SKIPPED, Outcome.FAILED}:
            async for _, outcome in self._written_outcomes(wanted):  # only ever written: no selection needed
                yield outcome
            return
        acted, scanned = self._marks()
        implied = service_order(acted) if acted else None
        # Still selecting: rows past the scan's cursor are a stopped selection's, not the job's yet.
        recorded = None if scanned is None else service_order(MEMBER_PREFIX + scanned) if scanned else b""
        usual = InstanceOutcome("", Outcome.DONE, usual_reason(self.request) or "")
        written = self._written_outcomes()
        next_written = await anext(written, None)
        async for page in self._jobs.selection(self.id):
            for key, iid in page:
                order = service_order(key)
                if recorded is not None and order > recorded:
                    return
                # Both in key order; a written outcome always belongs to a selected instance.
                while next_written is not None and service_order(next_written[0]) < order:
                    next_written = await anext(written, None)
                if next_written is not None and next_written[0] == key:
                    outcome = next_written[1]
                elif implied is not None and order <= implied:
                    outcome = replace(usual, instance_id=iid)
                else:
                    outcome = InstanceOutcome(iid, Outcome.PENDING)
                if not wanted or outcome.outcome in wanted:
                    yield outcome

    async def progress(self) -> AsyncIterator[JobInfo]:
        """Run the job, yielding its state after each checkpoint (an alternative to a callback)."""
        queue: asyncio.Queue[JobInfo | None] = asyncio.Queue()
        task = asyncio.ensure_future(self.run(queue.put_nowait))
        task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (item := await queue.get()) is not None:
                yield item
            await task  # re-raise what stopped it
        finally:
            if not task.done():
                self.stop()
                await task

    # --- running -----------------------------------------------------------

    async def run(self, progress: ProgressCallback | None = None, *, wait_for_lease: bool = False) -> JobInfo:
        """Run or resume the job to its end (or until ``stop``/``cancel``); the job as it ends.

        Raises JobBusy when another process holds the job's lease (with
        ``wait_for_lease``, waits for a lease left by a dead process to run out).
        """
        if self._running:
            # Its lease is this handle's own, so the lease check would let a second run through to act twice.
            raise JobBusy(f"Job {self.id!r} is already running in this process (this handle's run has not ended); "
                          "wait for it, or stop it first.")
        self._running = True
        self._stop = False  # a stop asked of an earlier run (stop(), or leaving progress()) is not this one's
        self._stopped_because = ""  # nor is its reason
        try:
            self._progress = progress
            fresh = await self._acquire_created()
            info, etag = fresh or await self._acquire(wait_for_lease)
        except BaseException:
            self._running = False
            raise
        if info.state.is_final:
            self._running = False
            self.info = info
            return info
        self._etag = etag
        self.info = info
        try:
            if not (fresh or info.params.get("selected")):
                await self._resume_selection()  # (a job never run has nothing of an earlier run to clear)
            await self._finish(await self._process(fresh=bool(fresh)))
        except BaseException as e:
            # Only the project's own errors are quoted: their text is written to be shown (no secret in it).
            if isinstance(e, DurableError):
                self._stopped_because = f"{type(e).__name__}: {e}"
            elif isinstance(e, Exception):
                self._stopped_because = f"{type(e).__name__} (the error the run raised says more)"
            else:
                self._stopped_because = f"{type(e).__name__} (Ctrl-C a second time, or the task running it was canceled)"
            # Ctrl-C (a second time), a lost connection: say so in storage if it still answers.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._finish(JobState.INTERRUPTED))
            raise
        finally:
            self._running = False
        return self.info

    async def _cancel_seen(self) -> bool:
        """Whether the job was asked to stop for good: by ``cancel()`` on this handle, or from any process
        (the job's cancel request, read at most every CANCEL_CHECK_SECONDS). Once seen, it stays seen."""
        if not self._cancel_asked and time.monotonic() >= self._next_cancel_check:
            self._next_cancel_check = time.monotonic() + CANCEL_CHECK_SECONDS
            self._cancel_asked = await self._jobs.cancel_requested(self.id)
        return self._cancel_asked

    async def _acquire_created(self) -> tuple[JobInfo, str] | None:
        """Take a job this handle created and never ran, if its row is still as created (one write; the
        usual read first is not needed); None if it is not (another process ran or changed it meanwhile)."""
        etag, self._created_etag = self._created_etag, None
        if etag is None:
            return None
        try:
            return self.info, await self._take_lease(
                lambda seconds: self._jobs.update(self.info, etag, owner=self._owner, lease_seconds=seconds))
        except DurableError:
            return None  # changed (JobBusy), or gone or unreachable: the usual path reads the row and says which

    async def _acquire(self, wait: bool) -> tuple[JobInfo, str]:
        while True:
            info, etag, lease = await self._jobs.get(self.id)
            if info.state.is_final:
                return info, etag
            until = lease_is_live(lease, self._owner)
            if until is None:
                break
            if not wait:
                raise JobBusy(f"Job {self.id!r} is being run by another process (its lease runs until "
                              f"{until:%H:%M:%S} UTC). If that process died, resume after that time.")
            await asyncio.sleep(min(2.0, max(0.1, (until - utcnow()).total_seconds() + 0.2)))
        # Still selecting: Running if it has recorded matches (a job of this layout acts on them while the
        # scan goes on), Selecting if not; a legacy job selects again from nothing (_resume_selection).
        recorded = info.matched if info.params.get("layout", LEGACY_LAYOUT) != LEGACY_LAYOUT else 0
        state = JobState.RUNNING if info.params.get("selected") else _selecting_state(recorded)
        # Why an earlier run stopped no longer holds once this one runs (see _finish).
        info = replace(info, state=state, params={k: v for k, v in info.params.items() if k != "stopped"})
        return info, await self._take_lease(
            lambda seconds: self._jobs.update(info, etag, owner=self._owner, lease_seconds=seconds))

    async def _renew_lease(self, halt: "_Halt") -> None:
        """Take our lease on the job again before an operation starts this close to its end: a write of the
        job row as last recorded, conditional on its ETag. The operations of a chunk that reach this point
        together share one write. _LeaseRunningOut (never a DurableError: an action would take that for the
        instance's own failure) if the write fails (another process took the job: its ETag moved; storage
        unreachable) or none lands early enough to leave the margin (the store answers too slowly)."""
        for _ in range(LEASE_RENEWALS):
            if time.monotonic() <= self._lease_deadline - LEASE_MARGIN_SECONDS:
                return
            if self._renewal is None or self._renewal.done():
                self._renewal = asyncio.ensure_future(self._write(unless=halt))
            try:
                await asyncio.shield(self._renewal)
            except _LeaseRunningOut:
                raise
            except DurableError as e:  # its text is written to be shown (no secret in it); anything else is raised
                raise _LeaseRunningOut(f"its lease could not be taken again before an operation: {e}") from e
        if time.monotonic() > self._lease_deadline - LEASE_MARGIN_SECONDS:
            raise _LeaseRunningOut(
                f"its lease could not be kept: {LEASE_RENEWALS} writes of the job row in a row each took longer "
                f"than the lease leaves ({LEASE_MARGIN_SECONDS:g} s before its end), so no operation was started "
                "(the store answers too slowly; resume the job)")

    def _lease_seconds(self) -> float:
        """Seconds of lease to take: the chunk acted on while it holds, at the rate, or a generous allowance."""
        req = self.request
        seconds = LEASE_SECONDS + (req.wait_seconds if req.terminate_first else 0)
        return seconds + self._chunk_size() * (1 / req.rate if req.rate else UNRATED_SECONDS_PER_INSTANCE)

    async def _take_lease(self, write: Callable[[float], Awaitable[str]]) -> str:
        """``write(lease_seconds)``: a conditional write of the job row taking our lease; its new ETag. Our
        local deadline moves only once the write lands (a failed one, another process having taken the job,
        leaves it where it was), from the clock read before it: never later than the stored one."""
        seconds, started = self._lease_seconds(), time.monotonic()
        etag = await write(seconds)
        self._lease_deadline = started + seconds
        return etag

    async def _write(self, outcomes: list[InstanceOutcome] = (), *, acted: dict[str, Any] | None = None,
                     release: bool = False, unless: "_Halt | None" = None) -> JobInfo:
        """Write the job row as ``self.info`` is when this write's turn comes (with ``outcomes`` in the same
        transaction, and ``acted``: the counters and cursor they bring it to); the info written.

        The selection and the checkpoints both write the row, each change conditional on the ETag of the
        one before: one write at a time, and each carries both sides' latest state (an older snapshot
        written last would move a cursor back). The acting side of ``self.info`` (counters, cursor, an
        export's offset) moves only once its checkpoint is written: a write of the scan's, or the run's
        Interrupted, that carried the cursor of a checkpoint not written yet (queued, or failed) would
        imply its skipped and failed instances "done as usual" with no outcome row. A write is never cut
        short by a cancel: one that landed unseen would leave the next with a stale ETag, and the job
        could not record its end. ``unless``: a lease renewal's, not written once its run has stopped acting
        (it would take back a job the run released)."""
        async def write() -> JobInfo:
            async with self._row_lock:
                if unless is not None and unless.why:
                    raise _LeaseRunningOut(unless.why)
                info = _with_acted(self.info, acted)
                if release:
                    self._etag = await self._jobs.commit(info, self._etag, outcomes, owner="", lease_seconds=0.0)
                    self._lease_deadline = 0.0
                else:
                    self._etag = await self._take_lease(lambda seconds: self._jobs.commit(
                        info, self._etag, outcomes, owner=self._owner, lease_seconds=seconds))
                # The scan may have moved on meanwhile: its side stays, the acting side is what was written.
                self.info = _with_acted(self.info, acted)
                return info

        task = asyncio.ensure_future(write())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # seen by the caller, or by the next write
        return await asyncio.shield(task)

    async def _commit_and_notify(self, outcomes: list[InstanceOutcome], acted: dict[str, Any]) -> None:
        await self._notify(await self._write(outcomes, acted=acted))

    async def _notify(self, info: JobInfo | None = None) -> None:
        if self._progress is not None:
            maybe = self._progress(info or self.info)
            if asyncio.iscoroutine(maybe):
                await maybe

    async def _resume_selection(self) -> None:
        """Before a run of a job still selecting: its marks in this version's layout, and no row the job's
        scan cursor does not cover."""
        params = self.info.params
        if self._layout == LEGACY_LAYOUT:
            # Selected by an earlier version, one row per instance, and not finished: nothing was acted on
            # yet, so the selection starts again as selection rows.
            await self._jobs.drop_members(self.id)
            self.info = replace(self.info, cursor="", matched=0,
                                params={**params, "layout": STREAMED_LAYOUT, "scanned": ""})
        elif self._layout == SELECTION_LAYOUT:
            # Its cursor is the scan's (that layout acted only once the selection was complete).
            self.info = replace(self.info, cursor="",
                                params={**params, "layout": STREAMED_LAYOUT, "scanned": self.info.cursor})
        # Rows past the scan's cursor were written by a selection that stopped before the cursor recorded them.
        await self._jobs.drop_selection_after(self.id, self.info.params.get("scanned", ""))
        self.info = replace(self.info, state=_selecting_state(self.info.matched))

    async def _select(self, *, after: bytes) -> AsyncIterator[list[tuple[str, InstanceOutcome]]]:
        """The rest of the scan, a page of matches at a time, each recorded before it is given out: the
        page's selection rows (in flight together), then the job row with the scan's cursor past them.
        ``after``: the order of the member key acted through (no id up to it is given out again).

        With ``_scanned`` (a job acting without a rate on statuses it reads by batch), the scan reads each
        match's status too and keeps those given out there: the batch acts on them instead of reading them
        again. They are at most a storage page old, as statuses read ahead for five batches are (a rated
        job reads each batch's just before it acts)."""
        async for ids, last_key in self._scan():
            if self._stop:
                return  # the job stops here; the run records it Interrupted (the selection is not complete)
            if ids:
                await self._jobs.add_selection(self.id, ids)
            matched = self.info.matched + len(ids)
            self.info = replace(self.info, matched=matched, state=_selecting_state(matched),
                                params={**self.info.params, "scanned": last_key or self.info.params.get("scanned", "")})
            await self._notify(await self._write())
            # Looked for here too: a scan can read many pages without a match (nothing to act on, so no chunk
            # to look for it), and a cancel must not wait for the first one.
            if await self._cancel_seen():
                return  # the run records it Canceled; this page's matches stay recorded, not acted on
            keyed = [(key, InstanceOutcome(iid, Outcome.PENDING)) for iid in ids
                     if service_order(key := member_key(iid)) > after]
            if keyed:
                yield keyed
        params = {k: v for k, v in self.info.params.items() if k != "scanned"}
        self.info = replace(self.info, state=JobState.RUNNING, params={**params, "selected": True})
        await self._notify(await self._write())

    async def _scan(self) -> AsyncIterator[tuple[list[str], str | None]]:
        """The query's matches after the scan's cursor, a storage page at a time (see ``_select``)."""
        query, after_key = self.request.query, self.info.params.get("scanned") or None
        if self._scanned is None:
            async for page in scan_ids(self._hub, query, after_key=after_key):
                yield page
            return
        async for statuses, last_key in scan_statuses(self._hub, query, after_key=after_key,
                                                      execution_ids=self.request.action is BulkAction.PURGE):
            self._scanned.update(statuses)
            yield list(statuses), last_key

    def _chunk_size(self) -> int:
        req = self.request
        if req.rate is None:
            return req.batch_size or MAX_BATCH_SIZE
        # At a rate, at most MAX_CHUNK_SECONDS of work per checkpoint, so the lease covers a chunk (and a
        # stop is quick); by default about five seconds of it.
        most = max(1, min(MAX_BATCH_SIZE, int(req.rate * MAX_CHUNK_SECONDS)))
        if req.batch_size:
            return min(req.batch_size, most)
        return max(1, min(most, max(req.concurrency, int(req.rate * 5))))

    async def _process(self, *, fresh: bool = False) -> JobState:
        req = self.request
        ctx = Context(self._manager, self._hub, req, BatchPurger(self._hub),
                      terminate_message(req.reason) if req.action is BulkAction.TERMINATE else None)
        export = HistoryExport(self._manager, req, self.info) if req.action is BulkAction.EXPORT_HISTORY else None
        limiter = _RateLimiter(req.rate, last_start=self.info.updated if self.info.finished else None)
        sem = asyncio.Semaphore(req.concurrency)
        # Chunks acted on at once: two without a rate, so the operations of the next chunk fill the slots the
        # tail of the current one frees (no idle gap at each checkpoint); one with a rate (the rate bounds the
        # work anyway, and a chunk's time at the rate is what its lease covers) or for an export (one file).
        window = 1 if (req.rate or export is not None) else ACTING_CHUNKS
        usual = usual_reason(req) if export is None else None

        halt = _Halt()

        async def limited(operation):
            async with sem:
                await limiter.wait()
                if halt.why:
                    raise _LeaseRunningOut(halt.why)
                if time.monotonic() > self._lease_deadline - LEASE_MARGIN_SECONDS:
                    try:
                        await self._renew_lease(halt)
                    except BaseException as e:
                        # No operation of any chunk starts after this one could not keep the lease.
                        halt.stop(str(e) if isinstance(e, _LeaseRunningOut) else f"{type(e).__name__} while taking "
                                  "the lease again")
                        raise
                return await operation()

        async def act(chunk: _Chunk) -> list[InstanceOutcome]:
            if export is not None:
                return await export.write(chunk.members)
            return await act_batch(ctx, chunk.members, chunk.prepared, limited)

        # A pipeline of three stages, so storage round trips never stall the operations themselves:
        # the next chunk is read, claimed and its statuses read (with the cancel check) while the current
        # ones are acted on; outcomes are recorded in key order, each checkpoint while later chunks act.
        # Statuses read ahead for several chunks without a rate only: at a rate, a read far ahead of the
        # operation would be stale by the time it acts.
        self._scanned = {} if window > 1 and batchable(req) else None
        chunks = _ChunkReader(self, ctx, export, "" if fresh else await self._jobs.claimed_through(self.id),
                              ahead=READ_AHEAD_CHUNKS if window > 1 else 1)
        acting: collections.deque[tuple[_Chunk, asyncio.Future]] = collections.deque()
        commit: asyncio.Future | None = None
        ahead: asyncio.Future | None = None
        end = JobState.COMPLETED
        recordable = True
        acted_through = ""  # the last member key given to an operation in this run
        # Where the checkpoints bring the job row (see _write: self.info moves as each one is written).
        acted: dict[str, Any] = {"done": self.info.done, "skipped": self.info.skipped, "failed": self.info.failed,
                                 "cursor": self.info.cursor}
        failure: Exception | None = None  # reading the next chunk failed: recorded what was acted on, then raised

        async def record_oldest() -> bool:
            """Record the oldest chunk acted on (after the checkpoint before it); False: stop here."""
            nonlocal commit, recordable
            chunk, task = acting.popleft()
            try:
                results = await task
            except _LeaseRunningOut as e:
                # What this chunk did is past the claim mark: a resumed run checks it first. Later chunks
                # are not recorded either (the cursor only moves forward over recorded instances), so none of
                # their operations starts from here on.
                halt.stop(str(e))
                self._stopped_because = str(e)
                recordable = False
                return False
            if commit is not None:
                await commit
            for outcome, counter in ((Outcome.DONE, "done"), (Outcome.SKIPPED, "skipped"), (Outcome.FAILED, "failed")):
                acted[counter] += sum(1 for r in results if r.outcome is outcome)
            acted["cursor"] = chunk.last_key
            if export is not None:
                acted["offset"] = export.offset
            # Outcomes as the action usually ends are implied by the cursor (``outcomes``); others are written.
            written = [r for r in results if not (r.outcome is Outcome.DONE and r.reason == usual)]
            commit = asyncio.ensure_future(self._commit_and_notify(written, dict(acted)))
            return True

        try:
            if export is not None:
                export.open()
            ahead = asyncio.ensure_future(chunks.next())
            while True:
                try:
                    chunk = await ahead
                except Exception as e:
                    # The scan or a read ahead failed (storage unreachable...): the chunks acting are still
                    # recorded below, or a resumed run would find them in doubt and send their requests again.
                    failure, ahead = e, None
                    break
                ahead = None
                if chunk is None:
                    break
                if chunk.canceled or self._stop:
                    end = JobState.CANCELED if chunk.canceled else JobState.INTERRUPTED
                    self._stopped_because = "asked to stop (Ctrl-C, or a dashboard step's time was up)"
                    if export is None:
                        # This chunk was claimed ahead but is not acted on: move the claim mark back, or a
                        # resumed run would treat it as in doubt (and wait to see each instance's state).
                        await self._jobs.claim_through(self.id, max(chunks.claimed, acted_through, key=service_order))
                    break
                acting.append((chunk, asyncio.ensure_future(act(chunk))))
                acted_through = chunk.last_key
                ahead = asyncio.ensure_future(chunks.next())
                while acting and (len(acting) >= window or acting[0][1].done()):
                    if not await record_oldest():
                        end = JobState.INTERRUPTED
                        break
                if end is not JobState.COMPLETED:
                    break
            # The chunks still acting are recorded in order, whatever stopped the loop.
            while acting and recordable:
                if not await record_oldest():
                    end = JobState.INTERRUPTED
            if commit is not None:
                await commit
                commit = None
            if failure is not None:
                if export is None:
                    # The chunk that failed may have been claimed: nothing of it was acted on.
                    with contextlib.suppress(Exception):
                        await self._jobs.claim_through(self.id, max(chunks.claimed, acted_through, key=service_order))
                raise failure
            if end is JobState.COMPLETED and not self.info.params.get("selected"):
                # Stopped while selecting, with nothing left to act on: canceled, or asked to stop.
                if self._cancel_asked:
                    end = JobState.CANCELED
                else:
                    self._stopped_because = "asked to stop while selecting (Ctrl-C, or a dashboard step's time was up)"
                    end = JobState.INTERRUPTED
        finally:
            # Nothing starts once the run stops acting: the operations a chunk still holds (queued behind its
            # concurrency, in a gather that one failure does not cancel) would otherwise go on after run()
            # returned, and one near the lease's end would take back the job the run releases.
            halt.stop(halt.why or "the run stopped acting")
            if ahead is not None:
                # Cancelled if still reading; awaited either way, so an error it ended with (the store gone
                # too) is not reported again as never retrieved.
                ahead.cancel()
                with contextlib.suppress(BaseException):
                    await ahead
            # Stopping on an error: operations already started finish, and what was recorded stays recorded.
            for _, task in acting:
                with contextlib.suppress(BaseException):
                    await asyncio.shield(task)
            if commit is not None:
                # The chunk already acted on must still be recorded.
                await asyncio.shield(commit)
            if export is not None:
                export.close()
        return end

    async def _finish(self, state: JobState) -> None:
        params = {k: v for k, v in self.info.params.items() if k != "stopped"}
        if state is JobState.INTERRUPTED:
            why = self._stopped_because or "stopped before its end"
            params["stopped"] = why
            # Info, not a warning: a stop asked for is routine, and the CLI shows why itself (a warning would
            # be printed besides, by logging's last-resort handler, where nothing is configured).
            log.info("Job %s stopped, Interrupted, at %s of %s%s: %s", self.id, f"{self.info.finished:,}",
                        f"{self.info.matched:,}", "" if self.info.selection_complete else "+", why)
        self.info = replace(self.info, state=state, params=params)
        await self._notify(await self._write(release=True))


async def create_job(manager: Any, hub: Any, request: BulkRequest) -> BulkJob:
    """Record a new job (Selecting; nothing acted on yet) and return its handle."""
    jobs = JobsTable(hub)
    query: Query = request.query
    now = utcnow()
    info = JobInfo(id=new_job_id(), action=request.action, query=query.text, now=query.now,
                   state=JobState.SELECTING, created=now, updated=now,
                   params={**request_params(request), "layout": STREAMED_LAYOUT, "scanned": ""})
    job = BulkJob(manager, hub, jobs, info)
    job._created_etag = await jobs.create(info)
    return job


__all__ = ["BulkJob", "create_job", "member_key", "LEASE_SECONDS"]
