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
    RowKey "i:<escaped id>" one instance the query matched when the job was created: its outcome
                            (pending, claimed, done, skipped, failed) and why; one still pending at or
                            before the cursor of a selected job was done as the action usually ends
                            (jobs.actions.usual_reason: checkpoints do not write those)
"""

from __future__ import annotations

import asyncio
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
from .names import escape_key
from .storage import map_storage_errors
from .timefmt import utcnow

JOB_ROW = "job"
CANCEL_ROW = "cancel"
CLAIM_ROW = "claim"
MEMBER_PREFIX = "i:"
MEMBER_END = "i;"  # ';' follows ':': the upper bound of every member key
BATCH = 100  # the most operations of one entity-group transaction


# The form jobs.runner.new_job_id gives ids (UTC start time, then 6 hex digits). Anything else is refused
# before a storage call: '../x' or a quote in a key made the table service answer 400/500.
JOB_ID = re.compile(r"[0-9]{8}T[0-9]{6}-[0-9a-f]{6}")


def check_job_id(job_id: object) -> str:
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        raise JobNotFound(str(job_id), "here: job ids look like 20240501T120000-a1b2c3 (start time in UTC, "
                                       "a dash, six hex digits)")
    return job_id


def member_key(instance_id: str) -> str:
    return MEMBER_PREFIX + escape_key(instance_id)


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
            # A merge: InstanceId was written at selection; only what changed is sent (the SDK's batch
            # encoding costs CPU per property).
            member = {"PartitionKey": info.id, "RowKey": member_key(o.instance_id), "Outcome": o.outcome.value}
            if o.reason:
                member["Reason"] = o.reason[:2000]
            if o.outcome is Outcome.PENDING:
                member["InstanceId"] = o.instance_id
            ops.append((TransactionOperation.UPSERT, member, {"mode": UpdateMode.MERGE}))
        if len(ops) >= BATCH:
            raise ValueError("a checkpoint holds at most 99 instances")
        ops.append((TransactionOperation.UPDATE, _job_row(info, owner=owner, lease_seconds=lease_seconds),
                    {"mode": UpdateMode.MERGE, "etag": etag, "match_condition": MatchConditions.IfNotModified}))
        try:
            with map_storage_errors(f"checkpointing job {info.id!r}"):
                results = await self._table.submit_transaction(ops)
        except ConcurrencyConflict as e:
            raise JobBusy(f"Job {info.id!r} was taken over by another process; this one stops.") from e
        return results[-1]["etag"]

    async def add_members(self, job_id: str, instance_ids: list[str]) -> None:
        """Record instances as selected (pending), 100 per transaction, the transactions in flight together.
        Idempotent (a merge), so a selection resumed from an older cursor may write them again."""
        async def write(ids: list[str]) -> None:
            ops = [(TransactionOperation.UPSERT, {"PartitionKey": job_id, "RowKey": member_key(i), "InstanceId": i,
                                                  "Outcome": Outcome.PENDING.value}, {"mode": UpdateMode.MERGE})
                   for i in ids]
            with map_storage_errors(f"recording the instances of job {job_id!r}"):
                await self._table.submit_transaction(ops)

        await asyncio.gather(*(write(instance_ids[i:i + BATCH]) for i in range(0, len(instance_ids), BATCH)))

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
                    yield [(r["RowKey"], InstanceOutcome(r["InstanceId"], Outcome(r["Outcome"]), r.get("Reason") or ""))
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
