"""Bulk actions: one small interface, carried out as a throttled loop over ``InstanceManager`` calls.

The dashboard drives a bulk run a chunk at a time (each request acts on at
most ``CHUNK`` instances and the page asks for the next), so no server keeps
state between requests and every door (a Blueprint with many workers too)
behaves the same. ``BulkExecutor`` is the seam where issue 13's checkpointed
bulk jobs can take over.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol, Sequence

from ..errors import DurableError, InvalidInput
from ..manager import InstanceManager

CHUNK = 20
MIN_RATE, MAX_RATE = 0.5, 100.0
ACTIONS = {
    "terminate": "Terminate", "suspend": "Suspend", "resume": "Resume", "rewind": "Rewind",
    "restart": "Restart", "purge": "Purge",
}


@dataclass(frozen=True)
class ItemResult:
    instance_id: str
    ok: bool
    message: str


class BulkExecutor(Protocol):
    async def run(self, action: str, instance_ids: Sequence[str], *, reason: str | None,
                  rate: float) -> list[ItemResult]:
        """Apply ``action`` to each instance, at most ``rate`` starts per second; one result per id."""


def check_rate(value: str | float) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"Rate {value!r} is not a number: give actions per second, "
                           f"from {MIN_RATE} to {MAX_RATE:g}.") from None
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InvalidInput(f"Rate {rate:g} per second is out of range: give {MIN_RATE} to {MAX_RATE:g}.")
    return rate


def check_action(action: str) -> str:
    if action not in ACTIONS:
        raise InvalidInput(f"Unknown bulk action {action!r}; choose one of {', '.join(ACTIONS)}.")
    return action


class ThrottledLoop:
    """Calls spaced ``1/rate`` seconds apart, at most ``concurrency`` in flight; every failure reported."""

    def __init__(self, manager: InstanceManager, *, concurrency: int = 4):
        self.manager = manager
        self.concurrency = concurrency

    async def run(self, action: str, instance_ids: Sequence[str], *, reason: str | None,
                  rate: float) -> list[ItemResult]:
        check_action(action)
        gate = asyncio.Semaphore(self.concurrency)
        interval = 1.0 / check_rate(rate)
        started = time.monotonic()

        async def one(i: int, instance_id: str) -> ItemResult:
            await asyncio.sleep(max(0.0, started + i * interval - time.monotonic()))
            async with gate:
                try:
                    return ItemResult(instance_id, True, await self._apply(action, instance_id, reason))
                except DurableError as e:  # the library's own words: which instance, why
                    return ItemResult(instance_id, False, str(e))

        return list(await asyncio.gather(*(one(i, x) for i, x in enumerate(instance_ids))))

    async def _apply(self, action: str, instance_id: str, reason: str | None) -> str:
        m = self.manager
        if action == "terminate":
            await m.terminate(instance_id, reason)
            return "termination requested"
        if action == "suspend":
            await m.suspend(instance_id, reason)
            return "suspension requested"
        if action == "resume":
            await m.resume(instance_id, reason)
            return "resumption requested"
        if action == "rewind":
            await m.rewind(instance_id, reason)
            return "rewind requested"
        if action == "restart":
            return f"restarted as {await m.restart(instance_id)}"
        result = await m.purge_instance(instance_id)
        return f"purged ({result.instances_deleted} instance)"
