"""The orchestration dispatcher: control-queue messages in, committed episodes out.

Each owned partition has a reader that receives batches of messages and
hands them to per-instance sessions. A session runs one episode at a time
(messages that arrive meanwhile wait for the next), keeps the instance's
history in memory while this worker owns it, and commits in the provider's
order: send messages, append history (with the sentinel's ETag), merge the
Instances row, delete the consumed messages. A crash between any two steps
is repaired by replaying the messages, which were not yet deleted:
duplicates are dropped by the episode logic, an Instances row left behind
is brought in line with history when the instance is next loaded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from durable_mgmt.errors import ConcurrencyConflict, DurableError
from durable_mgmt.models import RuntimeStatus
from durable_mgmt.taskhub import TaskHub
from durable_mgmt.taskhub.events import EventType
from durable_mgmt.taskhub.history import History
from durable_mgmt.taskhub.instance_row import InstanceRow, runtime_status_of
from durable_mgmt.taskhub.messages import MessageFormatError, TaskMessage, order_messages
from durable_mgmt.taskhub.timefmt import utcnow

from .episode import EpisodeResult, InstanceState, run_episode
from ..queue_consumer import receive_loop
from .router import LocalRouter

log = logging.getLogger("funchost.engine")

RECEIVE_BATCH = 32
DEFER_SECONDS = 1
MAX_DEFERRALS = 100  # an out-of-order response that never finds its schedule is dropped after this
MAX_WAIT_FOR_START = 60  # seconds between looks for a message waiting for its instance to start
MAX_CACHED_INSTANCES = 2000


@dataclass
class _Session:
    instance_id: str
    partition: int
    state: InstanceState | None = None
    inbox: list[TaskMessage] = field(default_factory=list)
    in_flight: list[TaskMessage] = field(default_factory=list)
    busy: bool = False


class OrchestrationDispatcher:
    def __init__(self, hub: TaskHub, invoke: Callable[[str, str], str], router: LocalRouter, *,
                 max_concurrent: int = 64, visibility_seconds: int = 30, stats: dict | None = None):
        """``visibility_seconds``: how long a received message stays hidden. Held messages are
        renewed while we work on them; after a crash they reappear this soon."""
        self.hub = hub
        self.visibility = visibility_seconds
        self.invoke = invoke
        self.router = router
        self.sessions: OrderedDict[str, _Session] = OrderedDict()
        self.readers: dict[int, asyncio.Task] = {}
        self.episode_slots = asyncio.Semaphore(max_concurrent)
        self.running: set[asyncio.Task] = set()
        self.stats = stats if stats is not None else {}
        self._owned: set[int] = set()
        self._renewer: asyncio.Task | None = None
        router.take_orchestrations(self)

    # --- partitions ------------------------------------------------------

    async def acquire(self, partition: int) -> None:
        if partition in self.readers:
            return
        if self._renewer is None:
            self._renewer = asyncio.create_task(self._renew_held(), name="control-renewals")
        self._owned.add(partition)
        self.readers[partition] = asyncio.create_task(self._read(partition), name=f"control-{partition:02d}")

    async def release(self, partition: int) -> None:
        self._owned.discard(partition)
        task = self.readers.pop(partition, None)
        if task:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for iid in [i for i, s in self.sessions.items() if s.partition == partition and not s.busy]:
            self.sessions.pop(iid, None)

    def owns(self, instance_id: str) -> bool:
        return self.hub.names.partition_of(instance_id) in self._owned

    async def stop(self, drain_seconds: float = 10) -> None:
        for p in list(self.readers):
            await self.release(p)
        if self.running:
            await asyncio.wait(self.running, timeout=drain_seconds)
        # Episodes still running are cut short as a crash would: their messages were not deleted, so they
        # come back and the episode is replayed (what it already committed is recognised as done).
        leftover = [*self.running, *([self._renewer] if self._renewer else [])]
        for task in leftover:
            task.cancel()
        await asyncio.gather(*leftover, return_exceptions=True)

    def tasks(self) -> list[asyncio.Task]:
        """Everything this dispatcher runs: readers, episodes and message deletes, the renewals."""
        return [*self.readers.values(), *self.running, *([self._renewer] if self._renewer else [])]

    async def _renew_held(self) -> None:
        """Keep messages we still hold (waiting in an inbox or in a running episode) hidden."""
        while True:
            await asyncio.sleep(self.visibility / 3)
            now = time.monotonic()
            for s in list(self.sessions.values()):
                for m in s.inbox + s.in_flight:
                    if now - (m.received_at or now) > self.visibility / 3:
                        await self._extend(m, now)

    async def _extend(self, m: TaskMessage, now: float) -> None:
        try:
            receipt = await self.hub.hide_message(m.queue_name, m.message_id, m.pop_receipt, self.visibility)
        except DurableError as e:
            log.debug("could not extend message %s: %s", m.message_id, e)
            return
        if receipt:
            m.pop_receipt, m.received_at = receipt, now

    async def _read(self, partition: int) -> None:
        name = self.hub.names.control_queue(partition)

        async def handle(m) -> None:
            try:
                msg = await self.hub.large.decode_message(m.content)
            except (MessageFormatError, DurableError, ValueError) as e:
                log.error("dropping unreadable message %s on %s: %s", m.id, name, e)
                await self.hub.delete_message(name, m.id, m.pop_receipt)
                return
            msg.queue_name, msg.message_id, msg.pop_receipt = name, m.id, m.pop_receipt
            msg.dequeue_count, msg.inserted_on = m.dequeue_count or 0, m.inserted_on
            msg.received_at = time.monotonic()
            self._deliver(msg, partition)

        # Sessions take any number of messages: the room is one batch.
        await receive_loop(name, self.router.watch(name),
                           lambda count: self.hub.receive(name, count, self.visibility), handle,
                           room=lambda: RECEIVE_BATCH)

    def deliver_local(self, msg: TaskMessage) -> bool:
        """Take a message this process just sent (hidden) to a queue it owns, without receiving it."""
        partition = self.hub.names.partition_of(msg.instance_id)
        if partition not in self._owned:  # checked again: the partition may have been released during the send
            return False
        msg.received_at = time.monotonic()
        self._deliver(msg, partition)
        return True

    # --- sessions --------------------------------------------------------

    def _deliver(self, msg: TaskMessage, partition: int) -> None:
        session = self.sessions.get(msg.instance_id)
        if session is None:
            session = self.sessions[msg.instance_id] = _Session(msg.instance_id, partition)
        self.sessions.move_to_end(msg.instance_id)
        if any(m.message_id == msg.message_id for m in session.inbox):
            return
        session.inbox.append(msg)
        if not session.busy:
            session.busy = True
            task = asyncio.create_task(self._drain(session), name=f"instance {msg.instance_id}")
            self.running.add(task)
            task.add_done_callback(self.running.discard)
        self._evict()

    def _evict(self) -> None:
        while len(self.sessions) > MAX_CACHED_INSTANCES:
            iid, s = next(iter(self.sessions.items()))
            if s.busy or s.inbox:
                self.sessions.move_to_end(iid)
                return
            self.sessions.pop(iid)

    async def _drain(self, session: _Session) -> None:
        try:
            while session.inbox:
                batch, session.inbox = order_messages(session.inbox), []
                session.in_flight = batch
                async with self.episode_slots:
                    try:
                        await self._episode(session, batch)
                    except asyncio.CancelledError:
                        raise
                    except Exception as e:
                        # Leave the messages to reappear; forget the cached state, it may be stale.
                        log.exception("episode of %r failed, will retry: %s", session.instance_id, e)
                        session.state = None
                        await self._abandon(batch, DEFER_SECONDS)
        finally:
            session.in_flight = []
            session.busy = False
            if session.state is not None and session.state.is_terminal and not session.inbox:
                self.sessions.pop(session.instance_id, None)

    async def _episode(self, session: _Session, batch: list[TaskMessage]) -> None:
        iid = session.instance_id
        starts = any(m.event.type == EventType.ExecutionStarted for m in batch)
        # Reload on a cache miss, a start, or a rewind (which rewrites rows without touching the ETag).
        reload = session.state is None or starts or any(m.event.type == EventType.GenericEvent for m in batch)
        if reload:
            session.state = await self._load(iid)
        state = session.state
        row = None
        if reload or state.started is None or state.is_terminal:
            row = await self.hub.instances.read(iid, with_input=False, with_output=False)
            if row is not None and state.started is not None:
                await self._repair_row(state, row)
        result = run_episode(state, batch, self.invoke, now=utcnow(),
                             row_execution_id=row.execution_id if row else None,
                             row_status=row.runtime_status if row else None)
        for line in result.log:
            log.info(line)
        await self._commit(session, result)

    async def _repair_row(self, state: InstanceState, row: InstanceRow) -> None:
        """Finish a commit a crash interrupted: history is final, the Instances row was not updated."""
        status = state.status
        if status is None or not state.is_terminal or row.runtime_status == runtime_status_of(status):
            return
        if row.execution_id not in (None, state.execution_id):
            return
        done = next((e for e in reversed(state.events) if e.type == EventType.ExecutionCompleted), None)
        log.info("repairing the Instances row of %r: %s", state.instance_id, status.name)
        await self._write_row(InstanceRow(
            state.instance_id, runtime_status=runtime_status_of(status), output=done.result if done else None,
            last_updated_time=utcnow(), completed_time=utcnow(), execution_id=state.execution_id))

    async def _load(self, instance_id: str) -> InstanceState:
        history = await self.hub.history.read(instance_id)
        return InstanceState(instance_id, history.execution_id, history.events, history.etag)

    # --- commit ----------------------------------------------------------

    async def _commit(self, session: _Session, result: EpisodeResult) -> None:
        state = session.state
        iid = session.instance_id
        _stamp_sender(iid, result, [] if result.reset_history else state.events)
        sends = [self.router.send_activity(m) for m in result.to_activities]
        sends += [self._send_orchestration(m) for m in result.to_orchestrations]
        if sends:
            await asyncio.gather(*sends)
        if result.has_commit:
            base = [] if result.reset_history else state.events
            history = History(iid, state.execution_id, list(base), state.etag)
            try:
                await self.hub.history.append(history, result.new_events, result.execution_id)
            except ConcurrencyConflict:
                # Another worker wrote (or purged) this history first: ours is stale. Let the messages come back.
                log.warning("history of %r changed under us; abandoning the episode", iid)
                session.state = None
                await self._abandon(result.consumed, DEFER_SECONDS)
                return
            session.state = InstanceState(iid, result.execution_id, history.events, history.etag)
            self.stats["episodes"] = self.stats.get("episodes", 0) + 1
            # The provider's order: the row follows the history, the deletes follow the row. If the row
            # write fails, the messages stay and the episode is replayed, which repairs the row.
            await self._write_row(result.row, replace=result.reset_history)
        elif result.terminate_unstarted is not None:
            now = utcnow()
            await self._write_row(InstanceRow(iid, runtime_status=RuntimeStatus.TERMINATED,
                                              output=result.terminate_unstarted, last_updated_time=now,
                                              completed_time=now))
        if result.consumed:
            # Off the critical path: the episode is durable now, so the session may take its next batch while
            # the deletes fly. A delete that never lands only means a re-delivery, which is dropped as a duplicate.
            task = asyncio.create_task(self._delete_messages(result.consumed))
            self.running.add(task)
            task.add_done_callback(self.running.discard)
        if result.deferred:
            await self._abandon(result.deferred, DEFER_SECONDS, count=True)
        for m in result.awaiting_start:
            # Waiting for a start that may be scheduled far ahead: back off instead of polling every second.
            await self._abandon([m], min(MAX_WAIT_FOR_START, max(DEFER_SECONDS, m.dequeue_count)))

    async def _write_row(self, row: InstanceRow, *, replace: bool = False) -> None:
        """Merge ``row`` into the Instances row; a new execution replaces it (no stale Output)."""
        await self.hub.instances.upsert(dataclasses.replace(row, task_hub_name=self.hub.name), replace=replace)

    async def _send_orchestration(self, m: TaskMessage) -> None:
        await self.hub.send_to_orchestration(m)

    async def _delete_messages(self, messages: list[TaskMessage]) -> None:
        await asyncio.gather(*(self._delete_message(m) for m in messages))

    async def _delete_message(self, m: TaskMessage) -> None:
        try:
            # False when it is gone or was re-delivered (receipt expired): the next delivery is deduplicated.
            await self.hub.delete_message(m.queue_name, m.message_id, m.pop_receipt)
        except DurableError as e:
            log.debug("could not delete message %s: %s", m.message_id, e)

    async def _abandon(self, messages: list[TaskMessage], seconds: int, *, count: bool = False) -> None:
        for m in messages:
            if count and m.dequeue_count > MAX_DEFERRALS:
                log.warning("dropping %s for %r: it never matched its instance's history", m.event.type.name,
                            m.instance_id)
                await self._delete_message(m)
                continue
            try:
                await self.hub.hide_message(m.queue_name, m.message_id, m.pop_receipt, int(seconds))
            except DurableError as e:
                log.debug("could not put message %s back: %s", m.message_id, e)
            self.router.wake_at(m.queue_name, seconds + 0.05)


def _stamp_sender(instance_id: str, result: EpisodeResult, base: list) -> None:
    """Mark what an episode sends as the provider does (TaskHubQueue.AddMessageAsync with the session):
    Sender is the orchestration instance, Episode its OrchestratorStarted count (Utils.GetEpisodeNumber).
    Messages passed on unchanged (early timers and starts) keep their original sender."""
    episode = sum(1 for e in [*base, *result.new_events] if e.type == EventType.OrchestratorStarted)
    sender = {"InstanceId": instance_id, "ExecutionId": result.execution_id or ""}
    for m in [*result.to_activities, *result.to_orchestrations]:
        if m.sender is None:
            m.sender = sender
            m.episode = episode
