"""The activity dispatcher: work items in, TaskCompleted/TaskFailed back to the orchestration.

The work-item queue is shared by every worker of the hub. Each received
message runs its activity once (sync functions in the thread pool, async
ones on the loop); the result goes to the orchestration's control queue
before the work item is deleted, so a crash in between runs the activity
again (at least once, as in Durable Functions) and the orchestration drops
the duplicate result. Long activities keep their message hidden by
renewing its visibility.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import Any

from durable_mgmt.errors import DurableError
from durable_mgmt.taskhub import TaskHub
from durable_mgmt.taskhub.events import EventType, event
from durable_mgmt.taskhub.messages import MessageFormatError, TaskMessage

from ..loader import find_ignoring_case
from ..queue_consumer import HeldMessage, receive_loop
from .functions import ActivityRunner, decode_activity_input, encode_activity_output
from .router import LocalRouter

log = logging.getLogger("funchost.engine")


class ActivityDispatcher:
    def __init__(self, hub: TaskHub, activities: dict[str, Any], run: ActivityRunner, router: LocalRouter, *,
                 concurrency: int = 32, visibility_seconds: int = 30, stats: dict | None = None):
        self.hub = hub
        self.activities = activities
        self.run = run
        self.router = router
        self.concurrency = concurrency
        self.visibility = visibility_seconds
        self.free = concurrency
        self.running: set[asyncio.Task] = set()
        self.stats = stats if stats is not None else {}
        self._reader: asyncio.Task | None = None
        router.take_activities(self)

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read(), name="workitems")

    async def stop(self, drain_seconds: float = 10) -> None:
        if self._reader:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self.running:
            # Unfinished work items reappear when their visibility runs out: nothing is lost.
            await asyncio.wait(self.running, timeout=drain_seconds)
            leftover = list(self.running)
            for t in leftover:
                t.cancel()
            # Awaited, so that nothing of ours runs once the engine shuts its thread pool down.
            await asyncio.gather(*leftover, return_exceptions=True)

    def tasks(self) -> list[asyncio.Task]:
        """Everything this dispatcher runs: its reader and the running work items."""
        return [*([self._reader] if self._reader else []), *self.running]

    async def _read(self) -> None:
        name = self.hub.names.workitem_queue
        await receive_loop(name, self.router.watch(name),
                           lambda free: self.hub.receive(name, min(32, free), self.visibility),
                           lambda m: self._spawn(self._one(m)), room=lambda: self.free)

    def has_room(self) -> bool:
        return self.free > 0

    def take_local(self, msg: TaskMessage) -> None:
        """Run a work item this process just sent (hidden), without receiving it."""
        self._spawn(self._process(msg, msg.message_id, msg.pop_receipt))

    def _spawn(self, coro) -> None:
        self.free -= 1
        task = asyncio.create_task(coro)
        self.running.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self.running.discard(task)
        self.free += 1
        self.router.wake(self.hub.names.workitem_queue)

    async def _one(self, raw) -> None:
        try:
            msg = await self.hub.large.decode_message(raw.content)
        except (MessageFormatError, DurableError, ValueError) as e:
            log.error("dropping unreadable work item %s: %s", raw.id, e)
            await self._held(raw.id, raw.pop_receipt).complete()
            return
        await self._process(msg, raw.id, raw.pop_receipt)

    def _held(self, message_id: str, pop_receipt: str) -> HeldMessage:
        queue = self.hub.names.workitem_queue
        return HeldMessage(message_id, pop_receipt, self.visibility,
                           lambda mid, receipt, seconds: self.hub.hide_message(queue, mid, receipt, seconds),
                           lambda mid, receipt: self.hub.delete_message(queue, mid, receipt))

    async def _process(self, msg: TaskMessage, message_id: str, pop_receipt: str) -> None:
        held = self._held(message_id, pop_receipt)
        try:
            # From the ActivitySession: Sender is the orchestration, Episode the one that scheduled the task.
            response = TaskMessage(await self._execute(msg), msg.instance_id, msg.execution_id, episode=msg.episode,
                                   sender={"InstanceId": msg.instance_id, "ExecutionId": msg.execution_id or ""})
        finally:
            # Cancelled or failed to send: the work item reappears when its invisibility ends.
            await held.stop()
        # A crash before the delete below runs the activity again; the orchestration drops the duplicate.
        await self.router.send_result(response)
        await held.complete()
        self.stats["activities"] = self.stats.get("activities", 0) + 1

    async def _execute(self, msg: TaskMessage):
        scheduled = msg.event
        name = scheduled.name or ""
        info = find_ignoring_case(self.activities, name)
        if info is None:
            known = ", ".join(sorted(self.activities)) or "none"
            return self._failed(scheduled.event_id, f"Activity function '{name}' does not exist in this app "
                                f"(activities: {known}).", "")
        try:
            value = decode_activity_input(scheduled.input)
            result = await self.run(info, value)
            return event(EventType.TaskCompleted, -1, TaskScheduledId=scheduled.event_id,
                         Result=encode_activity_output(result))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            details = "".join(traceback.format_exception(type(e), e, e.__traceback__))
            log.warning("activity %s failed for %r: %s: %s", name, msg.instance_id, type(e).__name__, e)
            return self._failed(scheduled.event_id, f"Activity function '{name}' failed: {type(e).__name__}: {e}",
                                details)

    @staticmethod
    def _failed(task_id: int, reason: str, details: str):
        return event(EventType.TaskFailed, -1, TaskScheduledId=task_id, Reason=reason, Details=details)

