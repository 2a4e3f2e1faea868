"""SafePartitionManager's blob leases (extension v2 hubs: ``taskhub.json``, no ``{Hub}Partitions``).

The provider keeps two lease blobs per control queue, ``intent/{queue}`` and
``ownership/{queue}``, each holding ``BlobPartitionLease`` JSON (PartitionId,
Owner, Token, Epoch) and a blob lease; a worker reads a queue only while it
holds its ownership lease, and holds ownership only while it holds (or is
finishing with) intent. Its balancer (``LeaseCollectionBalancer``) steals
intent leases with ``ChangeLease`` using the Token in the blob.

The host does not run that balancer. It refuses to start while another
worker holds any of these leases (a live .NET worker, or another funcpy),
saying who; otherwise it takes both leases of every partition as
``BlobPartitionLeaseManager.AcquireAsync`` does (new Guid lease id, Owner,
Epoch + 1, written under the lease), renews them, and when one is taken
(a .NET worker started later and stole the intent lease) it stops reading
that queue and releases the other lease (``ReleaseAsync``: Owner and Token
null), so the .NET worker can take ownership.
"""

from __future__ import annotations

from durable_mgmt.errors import ConcurrencyConflict
from durable_mgmt.taskhub import TaskHub
from durable_mgmt.taskhub.partitions import LeaseBlobs

from ..errors import HostStartError
from .lease_protocol import LeaseProtocol, PartitionCallback, log

# SafePartitionManager: the intent balancer uses settings.LeaseInterval (30 s by default), the ownership
# balancer a fixed 15 s lease.
INTENT_LEASE_SECONDS = 30
OWNERSHIP_LEASE_SECONDS = 15


class BlobLeaseProtocol(LeaseProtocol):
    def __init__(self, hub: TaskHub, worker_id: str, on_acquired: PartitionCallback, on_released: PartitionCallback,
                 *, lease_seconds: int):
        super().__init__(hub, worker_id, on_acquired, on_released, lease_seconds=lease_seconds)
        self.blobs = LeaseBlobs(hub)
        self.owned: dict[int, dict[str, str]] = {}  # partition -> {blob name: lease id}
        self._legacy = False

    async def prepare(self) -> None:
        states = await self.blobs.list()
        # A hub made with UseLegacyPartitionManagement (or by an older funcpy) has default/ lease blobs: hold
        # those too, so a worker of that kind cannot take a queue this host reads.
        self._legacy = any(s.blob_name.startswith("default/") for s in states)
        others = sorted({(s.owner or "an unnamed worker") for s in states if s.leased and s.owner != self.me})
        if others:
            raise HostStartError(
                f"Task hub {self.hub.name!r} uses the blob partition leases of Durable Functions extension v2 "
                f"(SafePartitionManager), and {', '.join(others)} holds some of them now. funcpy start does not "
                "share such a hub with a running worker: stop that worker (or wait about 30 seconds after it "
                "stopped), or give this app another hub name (host.json extensions.durableTask.hubName)."
            )

    def _leases_of(self, p: int) -> list[tuple[str, int]]:
        names = self.hub.names
        leases = [(names.intent_lease_blob(p), INTENT_LEASE_SECONDS),
                  (names.ownership_lease_blob(p), OWNERSHIP_LEASE_SECONDS)]
        if self._legacy:
            leases.append((f"default/{names.control_queue(p)}", INTENT_LEASE_SECONDS))
        return leases

    async def tick(self) -> None:
        for p in list(self.owned):
            try:
                for blob_name, lease_id in self.owned[p].items():
                    await self.blobs.renew(blob_name, lease_id)
            except ConcurrencyConflict:
                log.warning("partition %d: a lease was taken by another worker; handing the partition over", p)
                await self._give_up(p)
        for p in range(self.hub.names.partition_count):
            if p not in self.owned:
                await self._try_take(p)

    async def _try_take(self, p: int) -> None:
        queue = self.hub.names.control_queue(p)
        held: dict[str, str] = {}
        try:
            for blob_name, seconds in self._leases_of(p):
                held[blob_name] = await self.blobs.acquire(blob_name, queue, self.me, seconds)
        except ConcurrencyConflict:  # someone else holds it: leave the partition to them
            for blob_name, lease_id in held.items():
                await self.blobs.release(blob_name, queue, lease_id)
            return
        self.owned[p] = held
        log.info("worker %s owns partition %d", self.me, p)
        await self.on_acquired(p)

    async def _give_up(self, p: int) -> None:
        held = self.owned.pop(p, {})
        await self.on_released(p)
        for blob_name, lease_id in held.items():
            await self.blobs.release(blob_name, self.hub.names.control_queue(p), lease_id)

    async def forget_all(self) -> None:
        for p in list(self.owned):  # stop reading; the leases lapse unless a later round renews them
            self.owned.pop(p)
            await self.on_released(p)

    async def release_all(self) -> None:
        for p in sorted(self.owned):
            try:
                await self._give_up(p)
            except Exception as e:  # shutting down: the leases expire on their own
                log.error("releasing partition %d failed (%s): %s", p, type(e).__name__, e)
