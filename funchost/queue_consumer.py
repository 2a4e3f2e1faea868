"""The one way funchost consumes a storage queue: a receive loop, idle back-off, and held messages.

Used by the orchestration dispatcher (control queues), the activity dispatcher
(the work-item queue) and queue triggers; each supplies what differs (how to
receive, what to do with a message, how much room it has) and shares the rest:

* ``Poller``: the wait between polls, short while busy, doubling while idle
  up to a maximum, cut short by ``wake`` (a local send to that queue).
* ``receive_loop``: receive while there is room, hand each message over, back
  off when the queue is empty, log and retry when storage fails.
* ``HeldMessage``: keeps one received message invisible while it is worked on
  (renewed at half-time), then deletes it (done) or makes it visible again
  (abandoned), tolerating a message that is gone or was re-delivered.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Sequence

from durable_mgmt.errors import DurableError

log = logging.getLogger("funchost")

# (message id, pop receipt, seconds) -> the new pop receipt, or None when the message is gone or re-delivered.
Hide = Callable[[str, str, int], Awaitable["str | None"]]
# (message id, pop receipt) -> deletes the message (False or None when it was already gone).
Delete = Callable[[str, str], Awaitable[Any]]


class Poller:
    """Waits between polls of one queue: short when busy, backing off when idle, cut short by ``wake``."""

    def __init__(self, minimum: float = 0.05, maximum: float = 1.0):
        self.minimum = minimum
        self.maximum = max(minimum, maximum)
        self.delay = minimum
        self._event = asyncio.Event()

    def wake(self) -> None:
        self.delay = self.minimum
        self._event.set()

    def busy(self) -> None:
        self.delay = self.minimum

    async def idle(self) -> None:
        """Wait before the next poll after an empty one; returns early when woken.

        Not ``asyncio.wait_for``: on Python 3.11 it swallows a cancel that arrives while the awaited wake-up
        is already done (CPython gh-86296, fixed in 3.12). A reader woken by a local send in the same moment
        its stop cancels it then polled on forever, and the stop awaiting it never returned.
        """
        woken = asyncio.ensure_future(self._event.wait())
        try:
            await asyncio.wait({woken}, timeout=self.delay)
        finally:
            woken.cancel()
        if not self._event.is_set():
            self.delay = min(self.maximum, self.delay * 2)
        self._event.clear()


async def receive_loop(name: str, poller: Poller, receive: Callable[[int], Awaitable[Sequence[Any]]],
                       handle: Callable[[Any], Awaitable[None] | None], *, room: Callable[[], int],
                       wait_for_room: Callable[[], Awaitable[None]] | None = None,
                       retry_seconds: float | None = 1.0) -> None:
    """Receive from the queue called ``name`` until cancelled.

    ``room()`` says how many messages may be taken now; with none, the loop
    waits for ``wait_for_room()`` (default: the poller). ``handle`` gets each
    message (a failure there counts as a failed receive: unhandled messages
    reappear when their invisibility ends). A failure is logged, then
    retried after ``retry_seconds`` (None: after the idle back-off).
    """
    while True:
        free = room()
        if free <= 0:
            await (wait_for_room() if wait_for_room is not None else poller.idle())
            continue
        try:
            batch = await receive(free)
            for message in batch:
                handled = handle(message)
                if handled is not None:
                    await handled
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("Reading queue '%s' failed (%s); retrying.", name, e)
            if retry_seconds is not None:
                await asyncio.sleep(retry_seconds)
                continue
            batch = ()
        if batch:
            poller.busy()
        else:
            await poller.idle()


class HeldMessage:
    """One received message kept invisible while it is worked on; ends deleted or released."""

    def __init__(self, message_id: str, pop_receipt: str, visibility: float, hide: Hide, delete: Delete):
        self.message_id = message_id
        self.pop_receipt = pop_receipt
        self._visibility = visibility
        self._hide = hide
        self._delete = delete
        self._renewal = asyncio.create_task(self._renew())

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._visibility / 2)
            try:
                receipt = await self._hide(self.message_id, self.pop_receipt, int(self._visibility))
            except DurableError as e:
                log.warning("Could not keep message %s invisible: %s", self.message_id, e)
                continue
            if receipt is None:
                return  # gone or re-delivered: whoever has it now decides; duplicates are the reader's to drop
            self.pop_receipt = receipt

    async def stop(self) -> None:
        """Stop renewing (the message reappears when its current invisibility ends)."""
        self._renewal.cancel()
        await asyncio.gather(self._renewal, return_exceptions=True)

    async def complete(self) -> bool:
        """Done with it: delete the message. False when that failed (it will be delivered again)."""
        await self.stop()
        try:
            await self._delete(self.message_id, self.pop_receipt)
            return True
        except DurableError as e:
            log.error("Could not delete message %s after it was handled (it may be handled again): %s",
                      self.message_id, e)
            return False

    async def release(self, visible_in: float) -> None:
        """Give it back: visible again in ``visible_in`` seconds (0: now)."""
        await self.stop()
        try:
            await self._hide(self.message_id, self.pop_receipt, int(visible_in))
        except DurableError as e:
            log.warning("Could not release message %s (it reappears when its lease ends): %s", self.message_id, e)


__all__ = ["Poller", "receive_loop", "HeldMessage", "Hide", "Delete"]
