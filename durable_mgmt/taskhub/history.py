"""The ``{Hub}History`` table: the event history of each instance's current execution.

Rows: PartitionKey = escaped instance id, RowKey = the event's position in the
execution as 16 upper-case hex digits, plus one ``sentinel`` row whose ETag
guards the whole history (optimistic concurrency, as AzureTableTrackingStore).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from azure.core import MatchConditions
from azure.data.tables import TransactionOperation, UpdateMode

from ..errors import ConcurrencyConflict
from .entities import HubTable, plain_entity
from .events import HistoryEvent
from .names import escape_key
from .storage import HttpResponseError, map_storage_errors, status_of
from .timefmt import utcnow

SENTINEL_ROW_KEY = "sentinel"
MAX_EVENTS_PER_BATCH = 99  # + the sentinel = 100 operations, the entity-group transaction limit
MAX_BATCH_BYTES = 3 * 1024 * 1024


def row_key(sequence_number: int) -> str:
    return f"{sequence_number:016X}"


@dataclass
class History:
    """The current execution's events, as loaded, with what is needed to append to them."""

    instance_id: str
    execution_id: str | None = None
    events: list[HistoryEvent] = field(default_factory=list)
    etag: str | None = None  # of the sentinel row; None when no history was ever written

    def __len__(self) -> int:
        return len(self.events)


class HistoryTable(HubTable):
    async def read(self, instance_id: str, *, execution_id: str | None = None) -> History:
        """Load the history of the current (or given) execution of ``instance_id``."""
        rows = await self.rows(instance_id)
        sentinel = next((r for r in rows if r["RowKey"] == SENTINEL_ROW_KEY), None)
        current = execution_id or (sentinel or {}).get("ExecutionId") or (rows[0].get("ExecutionId") if rows else None)
        events = []
        for row in rows:
            if row["RowKey"] == SENTINEL_ROW_KEY:
                continue
            if row.get("ExecutionId") != current:
                # ContinueAsNew overwrites rows from 0; what is beyond belongs to an older execution.
                break
            await self._hub.large.restore_row(row)
            events.append(HistoryEvent.from_row(row))
        return History(instance_id, current, events, sentinel.get("etag") if sentinel else None)

    async def rows(self, instance_id: str, *, select: list[str] | None = None) -> list[dict[str, Any]]:
        """Every row of the instance's partition, in RowKey order (sentinel last)."""
        with map_storage_errors(f"reading the history of {instance_id!r}"):
            items = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": escape_key(instance_id)},
                                               select=select, results_per_page=1000)
            return [plain_entity(e) async for e in items]

    async def append(self, history: History, new_events: Sequence[HistoryEvent], execution_id: str) -> str:
        """Write ``new_events`` after the ``len(history)`` events already stored, with the sentinel.

        The first batch inserts the sentinel (no history yet) or merges it on
        the ETag read with the history; ConcurrencyConflict (409/412) means
        another worker wrote first and this work must be abandoned. Rows are
        upserted, so a retried episode rewrites the same RowKeys. Returns the
        sentinel's new ETag, which is also stored in ``history.etag``.
        """
        pk = escape_key(history.instance_id)
        start = len(history.events)
        batch: list[tuple] = []
        size = 0
        etag = history.etag
        for i, ev in enumerate(new_events):
            row = ev.to_row(pk, row_key(start + i), execution_id)
            await self._hub.large.offload_row(row)
            batch.append((TransactionOperation.UPSERT, row, {"mode": UpdateMode.REPLACE}))
            size += _estimate_bytes(row)
            last = i == len(new_events) - 1
            if len(batch) == MAX_EVENTS_PER_BATCH or size > MAX_BATCH_BYTES or last:
                etag = await self._commit(history.instance_id, pk, execution_id, batch, etag, final=last)
                batch, size = [], 0
        if not new_events:
            etag = await self._commit(history.instance_id, pk, execution_id, [], etag, final=True)
        history.etag = etag
        history.execution_id = execution_id
        history.events.extend(new_events)
        return etag

    async def _commit(self, instance_id: str, pk: str, execution_id: str, batch: list, etag: str | None,
                      *, final: bool) -> str:
        sentinel: dict[str, Any] = {"PartitionKey": pk, "RowKey": SENTINEL_ROW_KEY, "ExecutionId": execution_id,
                                    "IsCheckpointComplete": final}
        if final:
            sentinel["CheckpointCompletedTimestamp"] = utcnow()
        if etag is None:
            ops = batch + [(TransactionOperation.CREATE, sentinel)]
        else:
            ops = batch + [(TransactionOperation.UPDATE, sentinel,
                            {"mode": UpdateMode.MERGE, "etag": etag, "match_condition": MatchConditions.IfNotModified})]
        with map_storage_errors(f"appending to the history of {instance_id!r}"):
            try:
                results = await self._table.submit_transaction(ops)
            except HttpResponseError as e:
                if status_of(e) == 404:
                    # The sentinel we hold an ETag for is gone: the history was purged meanwhile.
                    raise ConcurrencyConflict(f"The history of {instance_id!r} was deleted while it was being "
                                              "written; the work will be redone from what is stored.") from e
                raise
        return results[-1]["etag"]

    async def replace_row(self, row: dict[str, Any]) -> None:
        row = {k: v for k, v in row.items() if k != "etag"}
        with map_storage_errors(f"rewriting a history row of {row.get('PartitionKey')!r}"):
            await self._table.upsert_entity(row, mode=UpdateMode.REPLACE)


def _estimate_bytes(row: dict[str, Any]) -> int:
    # As the provider: assume 1 KB of fixed-size columns, plus the strings as UTF-16.
    return 1024 + sum(len(v) * 2 for v in row.values() if isinstance(v, str))
