"""The engine's LocalRouter: sends from this process wake the reader of the queue they go to, at once or when
a delayed message becomes visible, through the engine's own hub handle and any other handle it observes."""

from __future__ import annotations

import asyncio
import time

from durable_mgmt.taskhub import TaskHub
from durable_mgmt.taskhub.events import EventType, event
from durable_mgmt.taskhub.messages import TaskMessage
from funchost.engine.router import LocalRouter


async def _woken_within(poller, seconds: float) -> float | None:
    """Seconds until ``poller`` is woken (its idle wait ends early), or None if it is not within ``seconds``."""
    poller.delay = seconds
    started = time.monotonic()
    await poller.idle()
    elapsed = time.monotonic() - started
    return elapsed if elapsed < seconds * 0.9 else None


async def test_sends_through_the_engines_hub_and_observed_handles_wake_the_reader(account, hub):
    router = LocalRouter(hub)
    queue = hub.control_queue_for("router-1").queue_name
    poller = router.watch(queue, maximum=5.0)
    async with TaskHub(account, hub.name) as other:
        waiting = asyncio.create_task(_woken_within(poller, 5.0))
        await asyncio.sleep(0.05)
        await hub.send_to_orchestration(TaskMessage(event(EventType.EventRaised, Name="e"), "router-1", None))
        assert await waiting is not None

        # Another handle of the same hub: not heard until the router observes it.
        waiting = asyncio.create_task(_woken_within(poller, 1.0))
        await asyncio.sleep(0.05)
        await other.send_to_orchestration(TaskMessage(event(EventType.EventRaised, Name="e"), "router-1", None))
        assert await waiting is None

        router.observe(other)
        waiting = asyncio.create_task(_woken_within(poller, 5.0))
        await asyncio.sleep(0.05)
        await other.send_to_orchestration(TaskMessage(event(EventType.EventRaised, Name="e"), "router-1", None))
        assert await waiting is not None

        router.close()  # no more wake-ups from either handle
        waiting = asyncio.create_task(_woken_within(poller, 1.0))
        await asyncio.sleep(0.05)
        await other.send_to_orchestration(TaskMessage(event(EventType.EventRaised, Name="e"), "router-1", None))
        assert await waiting is None
