"""Partition leases: which host process reads which control queue.

As the Azure Storage provider does, each control queue has a lease blob
``{hub}-leases/default/{hub}-control-NN``; the holder of its blob lease owns
the partition. Each worker also keeps a heartbeat blob ``workers/{id}`` so
the others know how many workers share the hub: each aims for an equal
share, gives up partitions above it and takes free ones below it. A dead
worker's leases expire (``lease_seconds``) and are taken over.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from datetime import datetime, timedelta, timezone
from typing import Awaitable, Callable

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob.aio import BlobLeaseClient

from durable_mgmt.taskhub import TaskHub

log = logging.getLogger("funchost.engine")

PartitionCallback = Callable[[int], Awaitable[None]]


class LeaseManager:
    def __init__(self, hub: TaskHub, worker_id: str, on_acquired: PartitionCallback, on_released: PartitionCallback,
                 *, lease_seconds: int = 15, tick_seconds: float = 3.0):
        self.hub = hub
        self.worker_id = worker_id
        self.on_acquired = on_acquired
        self.on_released = on_released
        self.lease_seconds = lease_seconds
        self.tick_seconds = tick_seconds
        self.container = hub.container(hub.names.leases_container)
        self.owned: dict[int, BlobLeaseClient] = {}
        self._lease_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"funcpy:{hub.name}:{worker_id}"))
        self._task: asyncio.Task | None = None
        self._stopping = False

    async def start(self) -> None:
        await self._ensure_blobs()
        await self.tick()
        self._task = asyncio.create_task(self._run(), name="leases")

    async def stop(self) -> None:
        self._stopping = True
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for p in sorted(self.owned):
            await self._release(p)
        try:
            await self.container.delete_blob(self._worker_blob)
        except (ResourceNotFoundError, HttpResponseError, OSError):
            pass

    @property
    def _worker_blob(self) -> str:
        return f"workers/{self.worker_id}"

    async def _ensure_blobs(self) -> None:
        for p in range(self.hub.names.partition_count):
            try:
                await self.container.upload_blob(self.hub.names.lease_blob(p), b"", overwrite=False)
            except (ResourceExistsError, HttpResponseError):
                pass

    async def _run(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.tick_seconds)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # storage hiccups must not stop lease keeping
                log.warning("lease maintenance failed: %s", e)

    async def tick(self) -> None:
        await self.container.upload_blob(self._worker_blob, self.worker_id.encode(), overwrite=True)
        for p in list(self.owned):
            try:
                await self.owned[p].renew()
            except HttpResponseError:
                log.warning("lost the lease of partition %d", p)
                self.owned.pop(p, None)
                await self.on_released(p)
        workers = await self._active_workers()
        target = math.ceil(self.hub.names.partition_count / max(1, len(workers)))
        for p in sorted(self.owned, reverse=True)[: max(0, len(self.owned) - target)]:
            await self._release(p)
        for p in range(self.hub.names.partition_count):
            if len(self.owned) >= target:
                break
            if p not in self.owned:
                await self._try_acquire(p)

    async def _active_workers(self) -> set[str]:
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=max(3 * self.tick_seconds, self.lease_seconds))
        workers = {self.worker_id}
        async for b in self.container.list_blobs(name_starts_with="workers/"):
            if b.last_modified and b.last_modified >= cutoff:
                workers.add(b.name[len("workers/"):])
        return workers

    async def _try_acquire(self, p: int) -> None:
        blob = self.container.get_blob_client(self.hub.names.lease_blob(p))
        lease = BlobLeaseClient(blob, lease_id=self._lease_id)
        try:
            await lease.acquire(lease_duration=self.lease_seconds)
        except HttpResponseError as e:
            if getattr(e, "status_code", None) == 409:
                return  # someone else holds it
            raise
        self.owned[p] = lease
        try:
            await blob.set_blob_metadata({"owner": self.worker_id}, lease=lease)
        except HttpResponseError:
            pass
        log.info("worker %s owns partition %d", self.worker_id, p)
        await self.on_acquired(p)

    async def _release(self, p: int) -> None:
        lease = self.owned.pop(p, None)
        await self.on_released(p)
        if lease is not None:
            try:
                await lease.release()
            except HttpResponseError:
                pass
