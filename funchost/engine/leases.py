"""Partition leases: which control queues this worker reads, agreed with every other worker on the hub.

The host takes part in the lease protocol the hub's own workers use, so a
real Durable Functions worker (.NET, DurableTask.AzureStorage) and ``funcpy
start`` never read the same control queue at once:

* a hub with a ``{Hub}Partitions`` table (extension v3, and every hub funcpy
  creates) uses ``TablePartitionManager``'s protocol: ``table_leases``;
* a hub with ``taskhub.json`` and no table (extension v2) uses
  ``SafePartitionManager``'s ``intent/`` and ``ownership/`` blob leases:
  ``blob_leases``. There the host refuses to start while another worker holds
  any of them (it does not balance partitions with a live v2 worker) and
  otherwise holds both leases of each partition it reads, as the provider
  does, giving a partition up when its lease is taken.

Errors: storage errors at start propagate (a wrong key stops ``funcpy start``
with the reason). In the background loop an ETag conflict re-reads at once,
as the provider does; any other error is logged as an error, and when no
round has succeeded for a whole lease interval the worker stops reading every
queue, since it can no longer prove it owns them.
"""

from __future__ import annotations

import asyncio
import time

from durable_mgmt.errors import ConcurrencyConflict, DurableError
from durable_mgmt.taskhub import TaskHub
from durable_mgmt.taskhub.partitions import PartitionManagement

from .blob_leases import BlobLeaseProtocol
from .lease_protocol import LeaseProtocol, PartitionCallback, log
from .table_leases import TableLeaseProtocol

# TablePartitionManager.PartitionManagerLoop: after this many consecutive failures stop retrying at once.
MAX_IMMEDIATE_RETRIES = 10
# AzureStorageOrchestrationServiceSettings defaults (1.x and 2.x alike): LeaseInterval 30 s is how long a
# renewed lease lasts (TableLeaseManager.RenewLease: ExpiresAt = now + LeaseInterval), LeaseAcquireInterval
# and LeaseRenewInterval 10 s how often a worker runs a round. Other workers judge our leases by these.
LEASE_SECONDS = 30
TICK_SECONDS = 10.0


class LeaseManager:
    """Runs the hub's lease protocol; calls ``on_acquired(p)`` / ``on_released(p)`` as partitions come and go."""

    def __init__(self, hub: TaskHub, worker_id: str, on_acquired: PartitionCallback, on_released: PartitionCallback,
                 *, lease_seconds: int = LEASE_SECONDS, tick_seconds: float = TICK_SECONDS):
        self.hub = hub
        self.worker_id = worker_id
        self.on_acquired = on_acquired
        self.on_released = on_released
        self.lease_seconds = lease_seconds
        self.tick_seconds = tick_seconds
        self.protocol: LeaseProtocol | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._last_success = time.monotonic()

    @property
    def owned(self) -> dict[int, object]:
        return self.protocol.owned if self.protocol else {}

    async def start(self) -> None:
        layout = await self.hub.refresh_layout()
        cls = BlobLeaseProtocol if layout.management == PartitionManagement.BLOB else TableLeaseProtocol
        self.protocol = cls(self.hub, self.worker_id, self.on_acquired, self.on_released,
                            lease_seconds=self.lease_seconds)
        await self.protocol.prepare()  # may refuse (HostStartError); storage errors propagate
        raced = False
        try:
            await self.tick()
        except ConcurrencyConflict:
            # Another worker wrote a lease row first (workers starting together): not a failed start. As the
            # provider's loop takes a 412 (TablePartitionManager.PartitionManagerLoop), the rounds re-read at once.
            raced = True
        self._task = asyncio.create_task(self._run(failures=1 if raced else 0), name="leases")

    async def tick(self) -> None:
        """One round of the protocol (read, claim, renew, balance)."""
        await self.protocol.tick()
        self._last_success = time.monotonic()

    async def stop(self) -> None:
        self._stopping = True
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.protocol is not None:
            await self.protocol.release_all()

    def tasks(self) -> list[asyncio.Task]:
        """The background lease rounds, while they run."""
        return [self._task] if self._task else []

    async def _run(self, *, failures: int = 0) -> None:
        while not self._stopping:
            wait = self.tick_seconds if failures == 0 or failures >= MAX_IMMEDIATE_RETRIES else 0
            if self.protocol.busy:  # draining or waiting for a partition: look again soon
                wait = min(wait, 1.0)
            await asyncio.sleep(wait)
            try:
                await self.tick()
                failures = 0
            except asyncio.CancelledError:
                raise
            except ConcurrencyConflict:
                failures += 1  # another worker wrote first: re-read at once
            except Exception as e:
                failures += 1
                log.error("partition lease round failed (%s): %s", type(e).__name__, e,
                          exc_info=not _expected(e))
                # Stop reading before our leases run out, so no other worker reads a queue while we still do.
                give_up_after = max(self.lease_seconds - self.tick_seconds, self.lease_seconds / 2)
                if time.monotonic() - self._last_success > give_up_after and self.owned:
                    log.error("no lease round succeeded for %.0fs: no longer reading partitions %s",
                              give_up_after, sorted(self.owned))
                    await self.protocol.forget_all()


def _expected(e: Exception) -> bool:
    return isinstance(e, DurableError)
