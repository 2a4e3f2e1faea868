"""What the lease protocols (``table_leases``, ``blob_leases``) share with ``leases.LeaseManager``, which runs
them: kept apart so the manager can import the protocols without an import cycle."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Awaitable, Callable

if TYPE_CHECKING:
    from durable_mgmt.taskhub import TaskHub

log = logging.getLogger("funchost.engine")

# Called with a partition number when this worker starts or stops reading its control queue.
PartitionCallback = Callable[[int], Awaitable[None]]



class LeaseProtocol:
    """One partition-lease protocol of a hub, as ``LeaseManager`` drives it.

    ``prepare()`` once (may refuse to start), ``tick()`` every round,
    ``release_all()`` on a clean stop, ``forget_all()`` when leases can no
    longer be proven; ``owned`` holds the partitions being read, ``busy``
    asks for the next round soon.
    """

    def __init__(self, hub: "TaskHub", worker_id: str, on_acquired: PartitionCallback,
                 on_released: PartitionCallback, *, lease_seconds: int):
        self.hub = hub
        self.me = worker_id
        self.on_acquired = on_acquired
        self.on_released = on_released
        self.lease_seconds = lease_seconds
        self.busy = False


__all__ = ["PartitionCallback", "LeaseProtocol", "log"]
