"""Task hub operations on a batch of instances at once, for bulk jobs.

A bulk job acts on its selection in batches of consecutive ids (key order).
Reading the current status of a whole batch is then one range query on the
Instances table instead of one read per instance, and a purge reads the
history keys of the batch with range queries too (``TaskHubClient``'s
purge does the same for filter-based purges). What is sent and deleted is
exactly what the single-instance operations send and delete.
"""

from __future__ import annotations

from typing import Iterable

from ..models import PurgeResult, RuntimeStatus
from .events import EventType, event
from .messages import TaskMessage
from .names import escape_key, unescape_key
from .odata import Filter
from .operations import TaskHubClient
from .storage import map_storage_errors


async def statuses(hub, instance_ids: Iterable[str]) -> dict[str, RuntimeStatus | None]:
    """The current runtime status of each id (None: no such instance), read with one range query."""
    wanted = {escape_key(i): i for i in instance_ids}
    found: dict[str, RuntimeStatus | None] = {i: None for i in wanted.values()}
    if not wanted:
        return found
    keys = sorted(wanted)
    f = Filter().ge("PartitionKey", keys[0]).le("PartitionKey", keys[-1])
    with map_storage_errors("reading the statuses of a batch of instances"):
        async for e in hub.instances.client.query_entities(f.text, parameters=f.parameters, results_per_page=1000,
                                                           select=["PartitionKey", "RuntimeStatus"]):
            iid = wanted.get(e["PartitionKey"])
            if iid is not None:
                found[iid] = RuntimeStatus.parse(e.get("RuntimeStatus") or "Pending")
    return found


async def send_terminate(hub, instance_id: str, reason: str | None) -> None:
    """The message ``TaskHubClient.terminate`` sends, for an instance already known to be active."""
    await hub.send_to_orchestration(TaskMessage(event(EventType.ExecutionTerminated, Input=reason), instance_id, None))


class BatchPurger:
    """Purges finished instances a batch at a time (history keys read by range, then deleted)."""

    def __init__(self, hub):
        self._client = TaskHubClient(hub)
        self._with_blobs: bool | None = None

    async def history_keys(self, instance_ids: list[str]) -> dict[str, list[str]]:
        pks = sorted(escape_key(i) for i in instance_ids)
        if not pks:
            return {}
        found = await self._client._history_keys(pks)
        return {unescape_key(pk): keys for pk, keys in found.items()}

    async def purge(self, instance_id: str, row_keys: list[str] | None) -> PurgeResult:
        if self._with_blobs is None:
            self._with_blobs = await self._client._has_large_values()
        return await self._client._purge_keys(escape_key(instance_id), row_keys, blobs=self._with_blobs)
