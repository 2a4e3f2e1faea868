"""Task hub operations on a batch of instances at once, for bulk jobs.

A bulk job acts on its selection in batches of consecutive ids (key order).
Reading the current status of a whole batch is then one range query on the
Instances table instead of one read per instance, and a purge reads the
history keys of the batch with range queries too (``TaskHubClient``'s
purge does the same for filter-based purges). What is sent and deleted is
exactly what the single-instance operations send and delete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..models import PurgeResult, RuntimeStatus
from .events import EventType
from .message_template import MessageTemplate
from .names import escape_key, service_order, unescape_key
from .odata import Filter
from .operations import ListedInstance, TaskHubClient
from .storage import map_storage_errors


@dataclass(frozen=True)
class BatchStatus:
    """An instance's status as a batch read it, with what an ETag-checked purge of it needs."""

    status: RuntimeStatus
    listed: ListedInstance

    @classmethod
    def of(cls, row) -> "BatchStatus":
        """From an Instances row read with PartitionKey, RuntimeStatus and ExecutionId (and its ETag)."""
        return cls(RuntimeStatus.parse(row.get("RuntimeStatus") or "Pending"), ListedInstance.of(row))


async def statuses(hub, instance_ids: Iterable[str], *,
                   likely: Iterable[RuntimeStatus] | None = None) -> dict[str, BatchStatus | None]:
    """The current runtime status of each id (None: no such instance), read with one range query.

    ``likely``: the statuses the caller expects most ids to have (those a job's action applies to). The range
    is then read for those only, so the rows of other instances in the range are not sent and parsed (a
    job's members are often interleaved with instances it does not touch); ids it did not find are read
    again by their own range, whatever their status.
    """
    wanted = {escape_key(i): i for i in instance_ids}
    found: dict[str, BatchStatus | None] = {i: None for i in wanted.values()}
    statuses_wanted = [s.value for s in likely or ()]
    missing = await _read_statuses(hub, wanted, found, statuses_wanted)
    if statuses_wanted and missing:
        await _read_statuses(hub, {pk: wanted[pk] for pk in missing}, found, [])
    return found


async def _read_statuses(hub, wanted: dict[str, str], found: dict[str, BatchStatus | None],
                         only: list[str]) -> list[str]:
    """Read the rows of ``wanted`` (escaped key: id) in their key range, with one of ``only`` (any if empty),
    into ``found``; the keys not read."""
    if not wanted:
        return []
    keys = sorted(wanted, key=service_order)
    f = Filter().ge("PartitionKey", keys[0]).le("PartitionKey", keys[-1]).any_of("RuntimeStatus", only)
    seen: set[str] = set()
    with map_storage_errors("reading the statuses of a batch of instances"):
        async for e in hub.instances.client.query_entities(f.text, parameters=f.parameters, results_per_page=1000,
                                                           select=["PartitionKey", "RuntimeStatus", "ExecutionId"]):
            iid = wanted.get(e["PartitionKey"])
            if iid is not None:
                seen.add(e["PartitionKey"])
                found[iid] = BatchStatus.of(e)
    return [k for k in keys if k not in seen]


def terminate_message(reason: str | None) -> MessageTemplate:
    """The message ``TaskHubClient.terminate`` sends, encoded once for the many instances of a job: each is
    sent with ``TaskHub.send_rendered``, for an instance already known to be active."""
    return MessageTemplate(EventType.ExecutionTerminated, Input=reason)


class BatchPurger:
    """Purges finished instances a batch at a time (history keys read by range, then deleted)."""

    def __init__(self, hub):
        self._client = TaskHubClient(hub)
        self._with_blobs: bool | None = None

    async def history_keys(self, instance_ids: list[str]) -> dict[str, list]:
        pks = sorted((escape_key(i) for i in instance_ids), key=service_order)
        if not pks:
            return {}
        found = await self._client.history_keys(pks)
        return {unescape_key(pk): keys for pk, keys in found.items()}

    async def purge(self, batch_status: BatchStatus, history: list | None) -> PurgeResult:
        """Purge one instance of the batch, ETag-checked against the row the batch read: a run started
        since (a restart) is left whole, and the result then says nothing was deleted."""
        if self._with_blobs is None:
            self._with_blobs = await self._client.has_large_values()
        listed = batch_status.listed
        if history is None:
            history = (await self._client.history_keys([listed.pk]))[listed.pk]
        return await self._client.purge_listed(listed, history, blobs=self._with_blobs)
