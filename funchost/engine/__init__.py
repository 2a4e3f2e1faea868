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
# How long a stop that ran out of time waits for the work it cancels to end (a cancel lands at once).
CANCEL_SECONDS = 5.0

_NEW, _STARTING, _RUNNING, _STOPPING, _STOPPED = "new", "starting", "running", "stopping", "stopped"


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
        self._phase = _NEW
        self._stop_requested = False
        self._start_settled = asyncio.Event()
        self._stopping: asyncio.Task | None = None
        self._abandoned = False  # a stop ran out of time and cancelled the engine's work
        self._torn_down = False

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

    @property
    def running(self) -> bool:
        """Started and not (yet) told to stop."""
        return self._phase == _RUNNING

    async def start(self) -> None:
        """Open the hub, start reading work items, take partitions. An engine starts once.

        A stop that arrives meanwhile is not lost: it waits for this start, and if it gave up waiting, this
        start stops the engine itself once it is up, so it ends in a stopped engine, never one left running.
        """
        if self._phase != _NEW:
            raise RuntimeError("This engine was started or stopped before; an Engine starts once.")
        self._phase = _STARTING
        try:
            await self.hub.create_if_not_exists()
            self.activities.start()
            try:
                await self.leases.start()  # may refuse a hub another worker's blob leases hold
            except BaseException:
                await self._undo_start()
                raise
        except BaseException:
            self._phase = _STOPPED
            if self._stop_requested and self._tasks():
                # The undo was cut short too, and a stop already came (it may have given up waiting, so
                # none may follow): cancel what is left now, as that stop would.
                await self._cancel_all()
            if not self._tasks():  # else (the undo cut short too) the stop that follows cancels what is left
                self._tear_down()
            raise
        finally:
            self._start_settled.set()
        self._phase = _RUNNING
        if self._stop_requested:
            log.info("durable engine %s: a stop arrived while it started; stopping", self.worker_id)
            await self.stop()
            return
        log.info("durable engine started: worker %s, hub %s, partitions %s", self.worker_id, self.hub.name,
                 self.owned_partitions)

    async def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Stop reading, let running work finish (each stage waits a bounded time), hand the partitions over.

        Safe to call at any time and more than once; a stop during ``start`` waits for it (see ``start``).
        The whole stop is bounded: past ``timeout`` whatever still runs is cancelled, as a crash would end
        it (messages held reappear when their invisibility ends, leases expire: nothing is lost), so no
        engine work goes on over storage the caller closes next.
        """
        self._stop_requested = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._phase == _STARTING:
            settled = asyncio.ensure_future(self._start_settled.wait())
            try:
                done, _ = await asyncio.wait({settled}, timeout=timeout)
            finally:
                settled.cancel()
            if not done:
                log.error("The durable engine did not finish starting within %.0f s; it stops as soon as its "
                          "start ends.", timeout)
                return
        if self._phase in (_NEW, _STOPPED) and self._stopping is None:  # never ran, or its start failed
            self._phase = _STOPPED
            if not await self._cancel_all():  # a failed start's undo was cut short too: cancel what is left
                return
            self._tear_down()
            return
        if self._stopping is None:
            self._phase = _STOPPING
            self._stopping = asyncio.create_task(self._stop_in_order(), name=f"engine-stop {self.worker_id}")
        done, _ = await asyncio.wait({self._stopping}, timeout=max(0.0, deadline - loop.time()))
        # A stage that failed ends the ordered stop there: what the later stages would have stopped (the
        # work-item reader, the lease rounds) is cancelled as a crash would end it, never left running.
        failed = bool(done) and not self._stopping.cancelled() and self._stopping.exception() is not None
        if not done or self._abandoned or (failed and self._tasks()):
            if not done:
                log.error("The durable engine did not stop within %.0f s; cancelling its running work as a "
                          "crash would end it (held messages reappear when their invisibility ends, leases "
                          "expire).", timeout)
            self._abandoned = True
            if not await self._cancel_all():
                return  # something ignores its cancel: a later stop cancels again and then tears down
        self._phase = _STOPPED
        self._tear_down()
        if not self._stopping.cancelled() and self._stopping.exception() is not None:
            raise self._stopping.exception()

    async def _undo_start(self) -> None:
        """Stop what a start that failed half-way began: the readers of the partitions its first lease round
        took (their leases handed back, not left to expire) and the work-item reader. A failure here is
        logged: the start's own error is the one its caller gets."""
        try:
            # Leases handed back only if some were taken: a start failing on unreachable storage waits on no release.
            await self._stop_in_order(release_leases=bool(self.leases.owned))
        except Exception:
            log.exception("durable engine %s: stopping what its failed start began failed", self.worker_id)

    async def _stop_in_order(self, *, release_leases: bool = True) -> None:
        await self.orchestrations.stop()  # stop reading, let running episodes commit
        await self.activities.stop()
        if release_leases:
            await self.leases.stop()      # then hand the partitions over

    def _tasks(self) -> list[asyncio.Task]:
        """Every task the engine runs: its stop, readers, episodes, activities, renewals and lease rounds."""
        tasks = [*self.orchestrations.tasks(), *self.activities.tasks(), *self.leases.tasks()]
        if self._stopping is not None:
            tasks.append(self._stopping)
        return [t for t in tasks if not t.done()]

    async def _cancel_all(self) -> bool:
        """Cancel all the engine's work and wait (briefly) for it to end; False when something still runs.

        Cancelling is what a crash does to each stage, and each is built to survive a crash: an episode
        cut short commits nothing past its last durable write and its messages come back, an activity's
        work item reappears (a sync function's thread finishes, its result unused), leases expire.
        """
        tasks = self._tasks()
        for task in tasks:
            task.cancel()
        if not tasks:
            return True
        _, pending = await asyncio.wait(tasks, timeout=CANCEL_SECONDS)
        if pending:
            log.error("The durable engine's tasks %s did not end when cancelled; the engine is left as it is.",
                      sorted(t.get_name() for t in pending))
        return not pending

    def _tear_down(self) -> None:
        """Once, when nothing of the engine runs any more: no more wake-ups, and the own thread pool ends.
        (Never under running work: an activity still running would record 'cannot schedule new futures
        after shutdown' as its failure.)"""
        if self._torn_down:
            return
        self._torn_down = True
        self.router.close()
        if self._own_executor:
            self.executor.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> "Engine":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()
