"""The ``{Hub}MgmtJobs`` table: bulk jobs and exports, checkpointed beside the task hub.

durable_mgmt's own table, not the provider's (``TaskHubNames.jobs_table``;
deleted with the hub). One partition per job, so a checkpoint is one
entity-group transaction: the outcomes of a batch of instances and the job
row's counters and cursor are written together or not at all.

    PartitionKey = job id
    RowKey "job"            the job: action, query text and the ``now`` its relative times mean,
                            state, counters, cursors, and the lease of the process running it
    RowKey "cancel"         present when a cancel was asked for (never contended with the runner)
    RowKey "claim"          ``ClaimedThrough``: the last member key a runner may have acted on; members
                            between the job's cursor and it without an outcome are in doubt on resume
    RowKey "s:<escaped id>" a page of the selection: the instances the query matched when the job's scan
                            reached them, in key order, from that first id on (``Ids0``, ``Ids1``...: one
                            JSON list split across properties, ``Last``: the escaped last id). Up to
                            SELECTION_ROW_IDS ids per row: one row per matching instance cost about
                            half as much as the operation itself.
    RowKey "i:<escaped id>" the outcome of one instance that did not end as the action usually does
                            (skipped, failed, or done another way) and why. An instance at or before
                            the job's cursor without one was done as the action usually ends
                            (jobs.actions.usual_reason: checkpoints do not write those).

Jobs created before selection pages (no ``layout`` in their params, LEGACY_LAYOUT) kept one
"i:" row per selected instance, pending until its outcome was written; they are still read,
shown and resumed that way.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator, Iterable

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TransactionOperation, UpdateMode

from ..errors import ConcurrencyConflict, JobBusy, JobNotFound
from ..jobs.models import BulkAction, InstanceOutcome, JobInfo, JobState, Outcome
from .entities import plain_entity
from .primitives import create_if_missing
from .names import escape_key, service_order
from .storage import map_storage_errors
from .timefmt import utcnow

JOB_ROW = "job"
CANCEL_ROW = "cancel"
CLAIM_ROW = "claim"
MEMBER_PREFIX = "i:"
MEMBER_END = "i;"  # ';' follows ':': the upper bound of every member key
SELECTION_PREFIX = "s:"
SELECTION_END = "s;"
BATCH = 100  # the most operations of one entity-group transaction

# params["layout"] of jobs that keep their selection in "s:" pages, acting on each page as it is recorded: the
# cursor is the member key acted through and params["scanned"] the scan's, until params["selected"].
STREAMED_LAYOUT = 3
SELECTION_LAYOUT = 2  # the same pages, acted on once all were recorded: the cursor was the scan's until then
LEGACY_LAYOUT = 1     # one pending "i:" row per selected instance (jobs written before selection pages)
SELECTION_ROW_IDS = 1000
# A string property holds at most 64 KiB of UTF-16: 16,000 characters fit even if every one needs two units.
PROPERTY_CHARS = 16_000
# An entity holds at most 1 MiB: of UTF-16 in the service, of the request's UTF-8 JSON (with \u escapes) in
# Azurite. A row's ids stay under this many bytes by either measure, leaving room for the keys.
ROW_BYTES = 900_000


# The form jobs.runner.new_job_id gives ids (UTC start time, then 6 hex digits). Anything else is refused
# before a storage call: '../x' or a quote in a key made the table service answer 400/500.
JOB_ID = re.compile(r"[0-9]{8}T[0-9]{6}-[0-9a-f]{6}")


def check_job_id(job_id: object) -> str:
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        raise JobNotFound(str(job_id), "here: job ids look like 20240501T120000-a1b2c3 (start time in UTC, "
                                       "a dash, six hex digits)")
    return job_id


def member_key(instance_id: str) -> str:
    """The key of an instance within a job, as cursors and claim marks hold it (properties: any length)."""
    return MEMBER_PREFIX + escape_key(instance_id)


# A key holds at most 1 KiB of UTF-16 (Azurite refuses longer ones too). An instance's own key can take all of
# it (the extension allows ids of 256 characters, and escaping doubles '^'), so "s:"/"i:" plus that key may not.
KEY_BYTES = 1024
# Where a key too long for a RowKey is cut: what follows is "~" and 16 hex digits of its hash (outcome rows).
GROUP_BYTES = KEY_BYTES - 2 * 17


def _cut(order: bytes, size: int) -> bytes:
    """The first ``size`` bytes of a key's UTF-16 (``service_order``), never ending inside a surrogate pair."""
    if len(order) <= size:
        return order
    if 0xD8 <= order[size - 2] <= 0xDB:  # the last unit kept would be a high surrogate: leave the pair out
        size -= 2
    return order[:size]


def row_key(key: str) -> str:
    """A selection row's RowKey for its first member key: the key, cut to 1 KiB if longer. A cut keeps the
    service's order (a <= b gives cut(a) <= cut(b)); two rows' first keys agree once cut only if their first
    510 units after the prefix do, i.e. hundreds of 256-character ids nearly all '^' and alike."""
    order = service_order(key)
    return key if len(order) <= KEY_BYTES else _cut(order, KEY_BYTES).decode("utf-16-be", "surrogatepass")


def outcome_row_key(key: str) -> str:
    """An outcome row's RowKey for member key ``key``: the key, or if longer than 1 KiB its first GROUP_BYTES
    and a hash of the rest (ids of 256 '^' and of 255 '^' and 'x' would agree once cut). Rows so keyed are
    in key order by ``key_group`` only; within a group ``members`` readers match by member key."""
    order = service_order(key)
    if len(order) <= KEY_BYTES:
        return key
    digest = hashlib.sha256(order).hexdigest()[:16]
    return _cut(order, GROUP_BYTES).decode("utf-16-be", "surrogatepass") + "~" + digest


def key_group(key: str) -> bytes:
    """The order outcome rows are stored in (see ``outcome_row_key``): a member key's first GROUP_BYTES."""
    return _cut(service_order(key), GROUP_BYTES)


class JobsTable:
    def __init__(self, hub):
        self._hub = hub
        self._table = hub.table_service.get_table_client(hub.names.jobs_table)
        self._ensured = False

    async def ensure(self) -> None:
        if self._ensured:
            return
        await create_if_missing(self._table.create_table, f"creating table {self._hub.names.jobs_table!r}")
        self._ensured = True

    # --- job rows ------------------------------------------------------------

    async def create(self, info: JobInfo) -> str:
        await self.ensure()
        with map_storage_errors(f"creating job {info.id!r}"):
            meta = await self._table.create_entity(_job_row(info))
        return meta["etag"]

    async def get(self, job_id: str) -> tuple[JobInfo, str, dict[str, Any]]:
        """The job, its row's ETag, and its lease (``Owner``, ``LeaseUntil``). JobNotFound if none."""
        check_job_id(job_id)
        with map_storage_errors(f"reading job {job_id!r}"):
            try:
                entity = await self._table.get_entity(job_id, JOB_ROW)
            except ResourceNotFoundError:
                raise JobNotFound(job_id) from None
        row = plain_entity(entity)
        return _job_info(row), row["etag"], {"Owner": row.get("Owner") or "", "LeaseUntil": row.get("LeaseUntil")}

    async def list(self) -> list[JobInfo]:
        with map_storage_errors("listing jobs"):
            try:
                rows = [plain_entity(e) async for e in self._table.query_entities("RowKey eq @rk", parameters={"rk": JOB_ROW})]
            except ResourceNotFoundError:
                return []
        return sorted((_job_info(r) for r in rows), key=lambda j: j.created, reverse=True)

    async def update(self, info: JobInfo, etag: str, *, owner: str | None = None,
                     lease_seconds: float | None = None) -> str:
        """Write the job row if it still has ``etag`` (JobBusy otherwise); returns the new ETag."""
        row = _job_row(info, owner=owner, lease_seconds=lease_seconds)
        try:
            with map_storage_errors(f"updating job {info.id!r}"):
                meta = await self._table.update_entity(row, mode=UpdateMode.MERGE, etag=etag,
                                                       match_condition=MatchConditions.IfNotModified)
        except ConcurrencyConflict as e:
            raise JobBusy(f"Job {info.id!r} was changed by another process (it may be running it).") from e
        return meta["etag"]

    async def commit(self, info: JobInfo, etag: str, outcomes: Iterable[InstanceOutcome], *, owner: str,
                     lease_seconds: float) -> str:
        """Record ``outcomes`` (at most 99) and the job row in one transaction; the new ETag.

        JobBusy if the job row changed since ``etag`` (another process took the job over).
        """
        ops: list[Any] = []
        for o in outcomes:
            # A merge: a legacy job's member row keeps what selection wrote; only what changed is sent (the
            # SDK's batch encoding costs CPU per property).
            member = {"PartitionKey": info.id, "RowKey": outcome_row_key(member_key(o.instance_id)),
                      "InstanceId": o.instance_id,
                      "Outcome": o.outcome.value}
            if o.reason:
                member["Reason"] = o.reason[:2000]
            ops.append((TransactionOperation.UPSERT, member, {"mode": UpdateMode.MERGE}))
        if len(ops) >= BATCH:
            raise ValueError("a checkpoint holds at most 99 instances")
        row = _job_row(info, owner=owner, lease_seconds=lease_seconds)
        conditional = {"mode": UpdateMode.MERGE, "etag": etag, "match_condition": MatchConditions.IfNotModified}
        try:
            with map_storage_errors(f"checkpointing job {info.id!r}"):
                if not ops:
                    # Usually nothing but the job row (outcomes as usual are implied by its cursor): a plain
                    # update costs a fifth of the CPU of a one-entity transaction in the SDK.
                    return (await self._table.update_entity(row, **conditional))["etag"]
                ops.append((TransactionOperation.UPDATE, row, conditional))
                results = await self._table.submit_transaction(ops)
        except ConcurrencyConflict as e:
            raise JobBusy(f"Job {info.id!r} was taken over by another process; this one stops.") from e
        return results[-1]["etag"]

    async def add_selection(self, job_id: str, instance_ids: list[str]) -> None:
        """Record matching instances (consecutive in key order, after every one recorded before) as selection
        rows, written together. A selection resumed from an older cursor first drops the rows past it
        (``drop_selection_after``), so no instance is recorded twice."""
        rows = selection_rows(job_id, instance_ids)
        with map_storage_errors(f"recording the instances of job {job_id!r}"):
            await _all(self._table.upsert_entity(row, mode=UpdateMode.REPLACE) for row in rows)

    async def selection(self, job_id: str, *, after: str = "") -> AsyncIterator[list[tuple[str, str]]]:
        """The selected instances after member key ``after``, in key order: pages of (member key, id)."""
        params: dict[str, Any] = {"pk": job_id, "lo": SELECTION_PREFIX, "hi": SELECTION_END}
        text = "PartitionKey eq @pk and RowKey gt @lo and RowKey lt @hi"
        if after:
            # Only rows holding an id past ``after``: the one it falls in, and those after it.
            params["after"] = after[len(MEMBER_PREFIX):]
            text += " and Last gt @after"
        with map_storage_errors(f"reading the instances of job {job_id!r}"):
            # A row holds up to SELECTION_ROW_IDS ids (usually a few kilobytes): a few dozen rows per response.
            pager = self._table.query_entities(text, parameters=params, results_per_page=32).by_page()
            # Only ids past the last one given (in the service's order, not Python's: they differ beyond U+FFFF):
            # the row ``after`` falls in starts before it, and a runner that went on writing after its lease
            # ran out (another took the job over) can leave a row overlapping the next one; an id read twice
            # would be acted on twice.
            last = service_order(after) if after else b""
            async for page in pager:
                async for row in page:
                    keyed = []
                    for i in _row_ids(row):
                        key = member_key(i)
                        order = service_order(key)
                        if order > last:
                            keyed.append((key, i))
                            last = order
                    if keyed:
                        yield keyed

    async def drop_selection_after(self, job_id: str, last_key: str) -> None:
        """Delete the selection rows past scan key ``last_key`` ("" for all): rows written by a selection
        that stopped before its cursor recorded them."""
        await self._delete_rows(job_id, SELECTION_PREFIX + last_key if last_key else SELECTION_PREFIX, SELECTION_END)

    async def drop_members(self, job_id: str) -> None:
        """Delete every "i:" row of a job (a legacy selection restarted as selection pages)."""
        await self._delete_rows(job_id, MEMBER_PREFIX, MEMBER_END)

    async def _delete_rows(self, job_id: str, lo: str, hi: str) -> None:
        with map_storage_errors(f"cleaning up job {job_id!r}"):
            keys = [e["RowKey"] async for e in self._table.query_entities(
                "PartitionKey eq @pk and RowKey gt @lo and RowKey lt @hi", select=["RowKey"],
                parameters={"pk": job_id, "lo": lo, "hi": hi})]
            await _all(self._table.submit_transaction(
                [(TransactionOperation.DELETE, {"PartitionKey": job_id, "RowKey": k}) for k in keys[i:i + BATCH]])
                for i in range(0, len(keys), BATCH))

    async def claim_through(self, job_id: str, key: str) -> None:
        """Record that instances up to member key ``key`` may be acted on from now: those after the job's
        cursor and up to ``key`` that have no outcome yet are *in doubt* if the job stops. One small row,
        not the job row, so it can be written while the previous checkpoint is in flight."""
        with map_storage_errors(f"recording the progress of job {job_id!r}"):
            await self._table.upsert_entity({"PartitionKey": job_id, "RowKey": CLAIM_ROW, "ClaimedThrough": key})

    async def claimed_through(self, job_id: str) -> str:
        with map_storage_errors(f"reading job {job_id!r}"):
            try:
                return (await self._table.get_entity(job_id, CLAIM_ROW))["ClaimedThrough"] or ""
            except ResourceNotFoundError:
                return ""

    async def members(self, job_id: str, outcomes: Iterable[Outcome] | None = None, *, after: str = "",
                      page_size: int = 1000) -> AsyncIterator[list[tuple[str, InstanceOutcome]]]:
        """The job's instances in key order after member key ``after``, with those outcomes, a page at a time."""
        params: dict[str, Any] = {"pk": job_id, "lo": after or MEMBER_PREFIX, "hi": MEMBER_END}
        text = "PartitionKey eq @pk and RowKey gt @lo and RowKey lt @hi"
        wanted = list(outcomes or [])
        if wanted:
            ors = []
            for i, o in enumerate(wanted):
                params[f"o{i}"] = o.value
                ors.append(f"Outcome eq @o{i}")
            text += " and ( " + " or ".join(ors) + " )"
        with map_storage_errors(f"reading the instances of job {job_id!r}"):
            pager = self._table.query_entities(text, parameters=params, results_per_page=page_size,
                                               select=["RowKey", "InstanceId", "Outcome", "Reason"]).by_page()
            async for page in pager:
                rows = [e async for e in page]
                if rows:
                    # The key from the id, not the RowKey: a RowKey may be cut short (``row_key``).
                    yield [(member_key(r["InstanceId"]), InstanceOutcome(r["InstanceId"], Outcome(r["Outcome"]),
                                                                          r.get("Reason") or ""))
                           for r in rows]

    # --- cancel --------------------------------------------------------------

    async def request_cancel(self, job_id: str) -> None:
        await self.get(job_id)
        with map_storage_errors(f"canceling job {job_id!r}"):
            await self._table.upsert_entity({"PartitionKey": job_id, "RowKey": CANCEL_ROW, "At": utcnow()})

    async def cancel_requested(self, job_id: str) -> bool:
        with map_storage_errors(f"reading job {job_id!r}"):
            try:
                await self._table.get_entity(job_id, CANCEL_ROW, select=["RowKey"])
                return True
            except ResourceNotFoundError:
                return False


def selection_rows(job_id: str, instance_ids: list[str]) -> list[dict[str, Any]]:
    """Selection rows holding ``instance_ids`` (in key order): up to SELECTION_ROW_IDS per row, fewer when
    long ids would not fit one entity."""
    rows: list[dict[str, Any]] = []
    pending = [instance_ids[i:i + SELECTION_ROW_IDS] for i in range(0, len(instance_ids), SELECTION_ROW_IDS)]
    while pending:
        ids = pending.pop(0)
        text = json.dumps(ids, ensure_ascii=False, separators=(",", ":"))
        if _size(text) > ROW_BYTES and len(ids) > 1:
            half = len(ids) // 2
            pending[:0] = [ids[:half], ids[half:]]  # a key is at most 1 KiB: a single id always fits
            continue
        row: dict[str, Any] = {"PartitionKey": job_id, "RowKey": row_key(SELECTION_PREFIX + escape_key(ids[0])),
                               "Last": escape_key(ids[-1]), "Count": len(ids)}
        for n, start in enumerate(range(0, len(text), PROPERTY_CHARS)):
            row[f"Ids{n}"] = text[start:start + PROPERTY_CHARS]
        rows.append(row)
    return rows


def _size(text: str) -> int:
    """Bytes ``text`` takes in an entity, by the larger of the service's and the emulator's measure."""
    return max(len(text.encode("utf-16-le", "surrogatepass")), len(json.dumps(text)))


def _row_ids(row: dict[str, Any]) -> list[str]:
    parts = []
    while (part := row.get(f"Ids{len(parts)}")) is not None:
        parts.append(part)
    return json.loads("".join(parts))


async def _all(calls: Iterable[Any]) -> None:
    """Await every call together; the first error is raised once all have ended (none is left running)."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r


def _job_row(info: JobInfo, *, owner: str | None = None, lease_seconds: float | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "PartitionKey": info.id, "RowKey": JOB_ROW, "Action": info.action.value, "Query": info.query,
        "Now": info.now, "State": info.state.value, "Created": info.created, "Updated": utcnow(),
        "Params": json.dumps(info.params, separators=(",", ":")), "Matched": info.matched, "Done": info.done,
        "Skipped": info.skipped, "Failed": info.failed, "Cursor": info.cursor,
    }
    if owner is not None:
        row["Owner"] = owner
        row["LeaseUntil"] = utcnow() + timedelta(seconds=lease_seconds or 0)
    return row


def _dt(value: datetime) -> datetime:
    # The SDK's datetime subclass carries the service's text form; a plain datetime compares and prints cleanly.
    return datetime(value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond,
                    tzinfo=timezone.utc)


def _job_info(row: dict[str, Any]) -> JobInfo:
    return JobInfo(id=row["PartitionKey"], action=BulkAction(row["Action"]), query=row.get("Query") or "",
                   now=_dt(row["Now"]), state=JobState(row["State"]), created=_dt(row["Created"]),
                   updated=_dt(row.get("Updated") or row["Created"]), params=json.loads(row.get("Params") or "{}"),
                   matched=int(row.get("Matched") or 0), done=int(row.get("Done") or 0),
                   skipped=int(row.get("Skipped") or 0), failed=int(row.get("Failed") or 0),
                   cursor=row.get("Cursor") or "")


def lease_is_live(lease: dict[str, Any], owner: str) -> datetime | None:
    """When the lease held by someone else runs out, or None if nobody else holds it now."""
    until = lease.get("LeaseUntil")
    if lease.get("Owner") and lease["Owner"] != owner and until and until > utcnow():
        return until
    return None
