"""Wake-ups between the host's own dispatchers, and polling back-off.

The queues stay the source of truth; a wake-up only says "look now" so a
message this process sent to a queue it also reads is handled at once
instead of at the next poll.
"""

from __future__ import annotations

import asyncio


class Poller:
    """Waits between polls of one queue: short when busy, backing off when idle, cut short by ``wake``."""

    def __init__(self, minimum: float = 0.05, maximum: float = 1.0):
        self.minimum = minimum
        self.maximum = maximum
        self.delay = minimum
        self._event = asyncio.Event()

    def wake(self) -> None:
        self.delay = self.minimum
        self._event.set()

    def busy(self) -> None:
        self.delay = self.minimum

    async def idle(self) -> None:
        """Wait before the next poll after an empty one; returns early when woken."""
        try:
            await asyncio.wait_for(self._event.wait(), self.delay)
        except asyncio.TimeoutError:
            self.delay = min(self.maximum, self.delay * 2)
        self._event.clear()


class Wakeups:
    """Pollers by queue name, woken when anything in this process sends to their queue."""

    def __init__(self) -> None:
        self._pollers: dict[str, Poller] = {}
        self._registered: list[tuple[str, object]] = []

    def watch(self, queue_client, maximum: float = 1.0) -> Poller:
        """The poller of ``queue_client``; sends to that queue from this process wake it."""
        from durable_mgmt.taskhub import TaskHub

        name = queue_client.queue_name
        p = self._pollers.get(name)
        if p is None:
            p = self._pollers[name] = Poller(maximum=maximum)

            def wake(delay: float, name: str = name) -> None:
                self.wake_at(name, delay + 0.05) if delay else self.wake(name)

            TaskHub.add_local_reader(queue_client.url, wake)
            self._registered.append((queue_client.url, wake))
        return p

    def wake(self, queue_name: str) -> None:
        p = self._pollers.get(queue_name)
        if p is not None:
            p.wake()

    def wake_at(self, queue_name: str, delay_seconds: float) -> None:
        """Wake ``queue_name``'s reader when a delayed message becomes visible."""
        if queue_name in self._pollers:
            asyncio.get_running_loop().call_later(max(0.0, delay_seconds), self.wake, queue_name)

    def close(self) -> None:
        from durable_mgmt.taskhub import TaskHub

        for url, wake in self._registered:
            TaskHub.remove_local_reader(url, wake)
        self._registered.clear()
