"""TablePartitionManager's lease protocol over ``{Hub}Partitions`` (DurableTask.AzureStorage 2.x).

One round follows ``TableLeaseManager.ReadAndWriteTableAsync``: read every
row; claim a lease that is empty, expired, or released to us (NextOwner is
us, CurrentOwner null); renew our own; when another worker has set NextOwner
on one of ours, drain it (IsDraining, stop reading, finish what is in
flight) and then release it (CurrentOwner null); steal (set NextOwner) a
lease whose owner is shutting down; then balance: take leases (NextOwner)
from workers above the average until we have ours. Every write is a Replace
with the ETag read, so two workers never both win a row.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime, timedelta

from durable_mgmt.taskhub import TaskHub
from durable_mgmt.taskhub.partitions import LeaseBlobs, PartitionTable, TableLease
from durable_mgmt.taskhub.timefmt import utcnow

from ..errors import HostStartError
from .lease_protocol import LeaseProtocol, PartitionCallback, log

# TableLeaseManager.ClaimLease sets ExpiresAt one minute ahead; RenewLease uses LeaseInterval.
CLAIM_SECONDS = 60


class TableLeaseProtocol(LeaseProtocol):
    def __init__(self, hub: TaskHub, worker_id: str, on_acquired: PartitionCallback, on_released: PartitionCallback,
                 *, lease_seconds: int):
        super().__init__(hub, worker_id, on_acquired, on_released, lease_seconds=lease_seconds)
        self.table = PartitionTable(hub)
        self.owned: dict[int, str] = {}          # partition -> row key, while we read its queue
        self._drains: dict[str, asyncio.Task] = {}

    async def prepare(self) -> None:
        """The table protocol lets any number of workers share a hub, but only workers that use it: an extension
        v2 worker (SafePartitionManager) leases blobs and never reads the table, so while one holds a lease blob
        of this hub, taking table rows would read the queues it reads."""
        others = sorted({s.owner or "an unnamed worker" for s in await LeaseBlobs(self.hub).list() if s.leased})
        if others:
            raise HostStartError(
                f"Task hub {self.hub.name!r} has the {self.hub.names.partitions_table} table of the table partition "
                f"manager, but {', '.join(others)} holds blob partition leases of Durable Functions extension v2 "
                "(SafePartitionManager) on it now: that worker does not see table leases, so both would read the "
                "same control queues. Stop that worker (or wait about 30 seconds after it stopped), or give this "
                "app another hub name (host.json extensions.durableTask.hubName).")

    def _partition(self, lease: TableLease) -> int | None:
        return self.hub.names.partition_of_queue(lease.row_key)

    async def tick(self, *, shutting_down: bool = False) -> int:
        """One ReadAndWriteTableAsync round; returns how many leases we still own (or are taking)."""
        leases = await self.table.read()
        distribution: dict[str, list[TableLease]] = defaultdict(list)
        mine = 0
        self.busy = False
        now = utcnow()
        for lease in leases:
            p = self._partition(lease)
            if p is None:
                continue
            if p in self.owned and lease.current_owner != self.me:  # OrchestrationService.DropLostControlQueue
                log.warning("partition %d now belongs to %s: no longer reading it", p, lease.current_owner)
                await self._stop_reading(p)
            new, write = lease, False
            if not shutting_down:
                if self._available(lease, now):
                    new, write = self._claim(lease, now), True
                if new.current_owner != self.me:
                    if new.next_owner is None and not new.is_draining and new.current_owner:
                        distribution[new.current_owner].append(new)
                    elif new.next_owner is not None:
                        if new.next_owner == self.me:
                            mine += 1
                            self.busy = True
                        else:
                            distribution[new.next_owner].append(new)
                    elif new.is_draining:  # its owner is shutting down: take it over
                        new, write = new.changed(next_owner=self.me), True
                        self.busy = True
                else:
                    if new.next_owner is None:
                        mine += 1
                        new, write = self._renew(new, now), True
                    else:  # another worker asked for it: drain, then release
                        self.busy = True
                        new, write = await self._drain_step(p, new, now), True
            elif new.current_owner == self.me:
                self.busy = True
                mine += 1
                new, write = await self._drain_step(p, new, now), True
                if new.current_owner is None:
                    mine -= 1
            if write:
                new = await self.table.replace(new)  # ConcurrencyConflict: the caller re-reads at once
                if new.current_owner == self.me and not new.is_draining and p not in self.owned:
                    self.owned[p] = new.row_key
                    log.info("worker %s owns partition %d", self.me, p)
                    await self.on_acquired(p)
        if not shutting_down:
            await self._balance(distribution, len(leases), mine)
        return mine

    def _available(self, lease: TableLease, now: datetime) -> bool:
        """TableLeaseManager.TryClaimLease: empty, expired, or released to us."""
        empty = lease.current_owner is None and lease.next_owner is None
        expired = lease.expires_at is not None and now >= lease.expires_at
        released_to_me = lease.current_owner is None and lease.next_owner == self.me
        return empty or expired or released_to_me

    def _claim(self, lease: TableLease, now: datetime) -> TableLease:
        return lease.changed(current_owner=self.me, next_owner=None, owned_since=now, last_renewal=now,
                             expires_at=now + timedelta(seconds=CLAIM_SECONDS), is_draining=False)

    def _renew(self, lease: TableLease, now: datetime) -> TableLease:
        return lease.changed(last_renewal=now, expires_at=now + timedelta(seconds=self.lease_seconds))

    async def _drain_step(self, p: int, lease: TableLease, now: datetime) -> TableLease:
        """TableLeaseManager.CheckDrainTask: start draining (IsDraining, keep renewing); once done, release."""
        task = self._drains.get(lease.row_key)
        if task is None:
            self._drains[lease.row_key] = asyncio.create_task(self._stop_reading(p))
            return self._renew(lease, now).changed(is_draining=True)
        if task.done():
            del self._drains[lease.row_key]
            task.result()
            log.info("worker %s released partition %d to %s", self.me, p, lease.next_owner or "any worker")
            return lease.changed(is_draining=False, current_owner=None)
        return self._renew(lease, now)

    async def _stop_reading(self, p: int) -> None:
        if self.owned.pop(p, None) is not None:
            await self.on_released(p)

    async def _balance(self, distribution: dict[str, list[TableLease]], total: int, mine: int) -> None:
        """TableLeaseManager.BalanceLeasesAsync: steal from workers above the average until we have ours."""
        if not distribution:
            return
        average = total // (len(distribution) + 1)
        if average < mine:
            return
        for leases in list(distribution.values()):
            to_steal = average - mine
            if to_steal < 0:
                break
            excess = len(leases) - average
            if excess <= 0:
                continue
            if to_steal == 0 and excess > 1:
                to_steal = 1
            for lease in leases[:min(to_steal, excess)]:
                mine += 1
                await self.table.replace(lease.changed(next_owner=self.me))
                log.info("worker %s asked %s for partition %s", self.me, lease.current_owner, lease.row_key)
                self.busy = True

    async def forget_all(self) -> None:
        for p in list(self.owned):
            await self._stop_reading(p)

    async def release_all(self) -> None:
        """Shutdown (TryDrainAndReleaseAllPartitions): stop reading, then release every lease we hold."""
        await self.forget_all()
        for _ in range(30):
            try:
                if await self.tick(shutting_down=True) == 0:
                    return
            except Exception as e:  # shutting down: keep trying; unreleased leases expire anyway
                log.error("releasing partition leases failed (%s): %s", type(e).__name__, e)
            await asyncio.sleep(0.2)
        log.warning("worker %s could not release all its partition leases; they expire on their own", self.me)
