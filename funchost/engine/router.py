"""Hand-over inside one worker: wake-ups for its readers and the local fast paths between dispatchers.

The queues stay the source of truth. The router only shortens the way for
what this process itself sends:

* a visible send to a queue one of our readers polls wakes that reader at
  once (or when a delayed message becomes visible) instead of at its next
  poll; the hub reports sends through ``TaskHub.observe_sends``;
* work for a dispatcher of this worker is sent hidden and handed to it
  directly (``LocalTaker``); if this process dies, the message reappears for
  whoever owns its queue then.

The dispatchers never reference each other: each registers with the router
(``take_activities`` / ``take_orchestrations``) and sends through it.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from durable_mgmt.taskhub import TaskHub
from durable_mgmt.taskhub.messages import TaskMessage

from ..queue_consumer import Poller


class ActivityTaker(Protocol):
    visibility: int

    def has_room(self) -> bool: ...

    def take_local(self, msg: TaskMessage) -> None: ...


class OrchestrationTaker(Protocol):
    visibility: int

    def owns(self, instance_id: str) -> bool: ...

    def deliver_local(self, msg: TaskMessage) -> bool: ...


class LocalRouter:
    """One worker's pollers by queue name, and its dispatchers' local hand-over."""

    def __init__(self, hub: TaskHub) -> None:
        self.hub = hub
        self._pollers: dict[str, Poller] = {}
        self._activities: ActivityTaker | None = None
        self._orchestrations: OrchestrationTaker | None = None
        self._stops = [hub.observe_sends(self._sent)]

    # --- wake-ups ----------------------------------------------------------

    def watch(self, queue_name: str, maximum: float = 1.0) -> Poller:
        """The poller of ``queue_name``; sends to that queue from this process wake it."""
        p = self._pollers.get(queue_name)
        if p is None:
            p = self._pollers[queue_name] = Poller(maximum=maximum)
        return p

    def wake(self, queue_name: str) -> None:
        p = self._pollers.get(queue_name)
        if p is not None:
            p.wake()

    def wake_at(self, queue_name: str, delay_seconds: float) -> None:
        """Wake ``queue_name``'s reader when a delayed message becomes visible."""
        if queue_name in self._pollers:
            asyncio.get_running_loop().call_later(max(0.0, delay_seconds), self.wake, queue_name)

    def _sent(self, queue_name: str, delay: float) -> None:
        if delay:
            self.wake_at(queue_name, delay + 0.05)
        else:
            self.wake(queue_name)

    def observe(self, other: TaskHub) -> None:
        """Also wake our readers for sends through ``other``, another handle of the same hub in this
        process (a client that keeps its own connections, as the benchmarks do)."""
        self._stops.append(other.observe_sends(self._sent))

    def close(self) -> None:
        stops, self._stops = self._stops, []
        for stop in stops:
            stop()

    # --- local hand-over ---------------------------------------------------

    def take_activities(self, taker: ActivityTaker) -> None:
        self._activities = taker

    def take_orchestrations(self, taker: OrchestrationTaker) -> None:
        self._orchestrations = taker

    async def send_activity(self, m: TaskMessage) -> None:
        """Schedule a work item; run here at once when our activity dispatcher has room."""
        local = self._activities
        if local is not None and local.has_room():
            local.take_local(await self.hub.send_to_activities(m, hidden_for=local.visibility))
        else:
            await self.hub.send_to_activities(m)

    async def send_result(self, m: TaskMessage) -> None:
        """Send an activity's result to its orchestration; straight to its session when we own it."""
        local = self._orchestrations
        if local is not None and local.owns(m.instance_id):
            local.deliver_local(await self.hub.send_to_orchestration(m, hidden_for=local.visibility))
        else:
            await self.hub.send_to_orchestration(m)


__all__ = ["LocalRouter", "ActivityTaker", "OrchestrationTaker"]
