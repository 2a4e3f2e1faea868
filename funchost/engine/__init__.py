"""The durable engine: runs an app's orchestrators and activities from a task hub.

    Engine
    ├── LeaseManager            which control queues (partitions) this worker reads
    ├── OrchestrationDispatcher one reader per owned partition, one session per instance
    ├── ActivityDispatcher      the shared work-item queue
    └── LocalRouter             wake-ups and local hand-over between the two dispatchers

Stopped in order: leases given up (no new partitions), readers stopped,
in-flight episodes and activities drained (or left to reappear), leases
released so another worker takes over at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from durable_mgmt.taskhub import TaskHub

from ..loader import find_ignoring_case
from .activities import ActivityDispatcher
from .functions import ActivityRunner, call_orchestrator, direct_runner
from .leases import LEASE_SECONDS, TICK_SECONDS, LeaseManager
from .orchestrations import OrchestrationDispatcher
from .router import LocalRouter

log = logging.getLogger("funchost.engine")

# The longest a stop waits in all: its stages wait up to 10 s each for running work, then release the leases.
STOP_SECONDS = 40.0


class Engine:
    """Runs orchestrations and activities of ``index`` (a funchost FunctionIndex) on ``hub``.

    ``activity_runner`` calls one activity with its decoded input (the host
    passes one that also writes output bindings); by default the function is
    called with its input only.
    """

    def __init__(self, hub: TaskHub, index: Any, *, worker_id: str | None = None,
                 activity_runner: ActivityRunner | None = None, executor: Executor | None = None,
                 lease_seconds: int = LEASE_SECONDS, lease_tick_seconds: float = TICK_SECONDS,
                 max_concurrent_activities: int = 32,
                 max_concurrent_orchestrations: int = 64, visibility_seconds: int = 30):
        self.hub = hub
        self.index = index
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.router = LocalRouter(hub)  # the dispatchers' wake-ups and local hand-over
        self.stats: dict[str, int] = {}
        self._own_executor = executor is None
        self.executor = executor or ThreadPoolExecutor(max_workers=max_concurrent_activities,
                                                       thread_name_prefix="activity")
        orchestrators = index.orchestrators
        self.orchestrations = OrchestrationDispatcher(hub, self._invoker(orchestrators), self.router,
                                                      max_concurrent=max_concurrent_orchestrations,
                                                      visibility_seconds=visibility_seconds, stats=self.stats)
        self.activities = ActivityDispatcher(hub, index.activities, activity_runner or direct_runner(self.executor),
                                             self.router, concurrency=max_concurrent_activities,
                                             visibility_seconds=visibility_seconds, stats=self.stats)
        self.leases = LeaseManager(hub, self.worker_id, self.orchestrations.acquire, self.orchestrations.release,
                                   lease_seconds=lease_seconds, tick_seconds=lease_tick_seconds)
        self._started = False

    @staticmethod
    def _invoker(orchestrators: dict[str, Any]):
        def invoke(name: str, context_json: str) -> str:
            info = find_ignoring_case(orchestrators, name)
            if info is None:
                known = ", ".join(sorted(orchestrators)) or "none"
                raise LookupError(f"The orchestrator function '{name}' does not exist in this app "
                                  f"(orchestrators: {known}).")
            return call_orchestrator(info.user_function, context_json)

        return invoke

    @property
    def owned_partitions(self) -> list[int]:
        return sorted(self.leases.owned)

    async def start(self) -> None:
        await self.hub.create_if_not_exists()
        self.activities.start()
        try:
            await self.leases.start()  # may refuse a hub another worker's blob leases hold
        except BaseException:
            await self.activities.stop()
            raise
        self._started = True
        log.info("durable engine started: worker %s, hub %s, partitions %s", self.worker_id, self.hub.name,
                 self.owned_partitions)

    async def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Stop reading, let running work finish (each stage waits a bounded time), hand the partitions over.

        The whole stop is bounded too: in CI a stop once never returned (the process idle, no request in
        flight; cause not yet found), and a host must not hang on shutdown. Past ``timeout`` the stages
        still running are abandoned, as a crash would abandon them: messages held reappear when their
        invisibility ends and leases expire, so nothing is lost (what the SIGKILL tests check).
        """
        if not self._started:
            return
        self._started = False
        stopping = asyncio.ensure_future(self._stop_in_order())
        done, _ = await asyncio.wait({stopping}, timeout=timeout)
        if not done:
            # Left as it is, as a crash would leave it: the stop goes on in the background while this process
            # lives, and nothing is torn down under running work (shutting the executor down made a running
            # activity record a failure: "cannot schedule new futures after shutdown").
            log.error("The durable engine did not stop within %.0f s; abandoning its running work (held "
                      "messages reappear when their invisibility ends, leases expire).", timeout)
            return
        stopping.result()
        self.router.close()
        if self._own_executor:
            self.executor.shutdown(wait=False, cancel_futures=True)

    async def _stop_in_order(self) -> None:
        await self.orchestrations.stop()  # stop reading, let running episodes commit
        await self.activities.stop()
        await self.leases.stop()          # then hand the partitions over

    async def __aenter__(self) -> "Engine":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()
