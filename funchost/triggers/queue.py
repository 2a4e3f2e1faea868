"""Queue triggers over Azure Storage queues, with the WebJobs SDK's delivery rules.

* Messages are fetched in batches of ``batchSize``; a new batch is fetched
  once no more than ``newBatchThreshold`` are still running.
* An empty queue is polled with exponential back-off up to
  ``maxPollingInterval``; any message resets it.
* While a function runs, its message stays invisible (10 minutes, renewed at
  half-time); success deletes it. Failure makes it visible again after
  ``visibilityTimeout``; after ``maxDequeueCount`` failed attempts it moves to
  ``{queue}-poison`` with its body exactly as received.
* Bodies are Base64 text unless host.json ``messageEncoding`` is ``none``; a
  body that is not valid Base64 goes straight to the poison queue.
* On stop: no new fetches; running functions get ``drain_timeout`` seconds,
  then are abandoned and their messages made visible again at once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from azure.functions.queue import QueueMessage  # the worker's: with dequeue count and times

from durable_mgmt.errors import DurableError, InvalidSetting
from durable_mgmt.settings import AppSettings
from durable_mgmt.taskhub.primitives import create_if_missing, list_or_none
from durable_mgmt.taskhub.storage import map_storage_errors

from ..config import QueueOptions
from ..connections import Connections, setting_name
from ..invoker import Invoker, log_crash
from ..loader import FunctionIndex, FunctionInfo
from ..queue_consumer import HeldMessage, Poller, receive_loop

log = logging.getLogger("funchost")

MIN_POLLING_INTERVAL = 0.1
_QUEUE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class QueueBinding:
    function: FunctionInfo
    queue_name: str
    connection: str

    @property
    def poison_queue_name(self) -> str:
        return f"{self.queue_name}-poison"


def build_queue_bindings(index: FunctionIndex, settings: AppSettings, problems: list[str]) -> list[QueueBinding]:
    """The queue-triggered functions' queues; bad names or connections go to ``problems``."""
    out = []
    for info in index.queues.values():
        where = f"{info.describe()}: queue trigger"
        try:
            name = settings.expand(str(info.trigger.get("queueName") or ""), f"{where} queueName")
            settings.connection_string(setting_name(info.trigger))
        except InvalidSetting as e:
            problems.append(str(e) if str(e).startswith(info.describe()) else f"{info.describe()}: {e}")
            continue
        if not _QUEUE_NAME.match(name) or len(name) > 63 - len("-poison"):
            shown = str(info.trigger.get("queueName") or "")  # the template: a setting's value is never shown
            problems.append(f"{where}: queue name {shown!r} is not valid: use 3-56 lower-case letters, digits and "
                            "single dashes, starting and ending with a letter or digit (room is kept for the "
                            "'-poison' suffix).")
            continue
        out.append(QueueBinding(info, name, setting_name(info.trigger)))
    return out


class QueueListener:
    """Polls one queue and runs its function for each message."""

    def __init__(self, binding: QueueBinding, invoker: Invoker, connections: Connections, options: QueueOptions):
        self.binding = binding
        self._invoker = invoker
        self._options = options
        service = connections.queue_service(binding.connection)
        self._queue = service.get_queue_client(binding.queue_name)
        self._poison = service.get_queue_client(binding.poison_queue_name)
        self._poll_task: asyncio.Task | None = None
        self._inflight: set[asyncio.Task] = set()
        self._as_text = binding.function.trigger_annotation in (str, "str")
        self._as_bytes = binding.function.trigger_annotation in (bytes, "bytes")

    async def start(self) -> None:
        # The WebJobs SDK waits for a missing queue; creating it is friendlier locally and harmless.
        await _create_queue(self._queue)
        self._poll_task = asyncio.create_task(self._poll(), name=f"queue:{self.binding.queue_name}")
        self._poll_task.add_done_callback(log_crash)

    async def stop(self, drain_timeout: float) -> None:
        if self._poll_task is not None:
            self._poll_task.cancel()
            await asyncio.gather(self._poll_task, return_exceptions=True)
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=drain_timeout)
        for task in list(self._inflight):
            task.cancel()  # abandons its message: see _process
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _poll(self) -> None:
        options = self._options
        poller = Poller(MIN_POLLING_INTERVAL, options.max_polling_interval.total_seconds())

        def room() -> int:
            # A new batch once no more than newBatchThreshold are still running.
            return options.batch_size if len(self._inflight) <= options.new_batch_threshold else 0

        async def wait_for_room() -> None:
            await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)

        def handle(message: Any) -> None:
            task = asyncio.create_task(self._process(message))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

        await receive_loop(self.binding.queue_name, poller, self._receive, handle, room=room,
                           wait_for_room=wait_for_room, retry_seconds=None)

    async def _receive(self, count: int) -> list[Any]:
        visibility = int(self._options.processing_visibility.total_seconds())
        messages = await list_or_none(
            lambda: self._queue.receive_messages(messages_per_page=count, max_messages=count,
                                                 visibility_timeout=visibility),
            f"receiving messages from queue {self.binding.queue_name!r}")
        if messages is None:
            await _create_queue(self._queue)  # deleted while we ran: recreate and carry on
            return []
        return messages

    async def _process(self, message: Any) -> None:
        name, max_count = self.binding.queue_name, self._options.max_dequeue_count
        if message.dequeue_count > max_count:
            # Already tried max times (a host died mid-run): do not run it again.
            await self._to_poison(message)
            return
        try:
            body = self._decode(message.content)
        except ValueError as e:
            log.error("Queue '%s': message %s %s; moving it to '%s'.", name, message.id, e,
                      self.binding.poison_queue_name)
            await self._to_poison(message)
            return
        try:
            value, data = self._trigger_value(message, body), _trigger_data(message, body)
        except Exception:  # e.g. a str parameter for a body that is not UTF-8: retrying cannot help
            log.exception("Queue '%s': message %s cannot be passed to %s; moving it to '%s'.", name, message.id,
                          self.binding.function.describe(), self.binding.poison_queue_name)
            await self._to_poison(message)
            return
        lease = HeldMessage(message.id, message.pop_receipt, self._options.processing_visibility.total_seconds(),
                            self._hide, self._delete)
        try:
            await self._invoker.invoke(self.binding.function, value,
                                       reason=f"New queue message detected on '{name}'.", trigger_data=data)
        except asyncio.CancelledError:
            await lease.release(visible_in=0)  # abandoned at shutdown: give it back now
            raise
        except Exception:
            await lease.stop()
            if message.dequeue_count >= max_count:
                log.warning("Queue '%s': message %s failed %d times (maxDequeueCount); moving it to '%s'.",
                            name, message.id, message.dequeue_count, self.binding.poison_queue_name)
                await self._to_poison(message, pop_receipt=lease.pop_receipt)
            else:
                await lease.release(visible_in=self._options.visibility_timeout.total_seconds())
            return
        await lease.complete()

    async def _hide(self, message_id: str, pop_receipt: str, seconds: int) -> str:
        with map_storage_errors(f"updating message {message_id} of queue {self.binding.queue_name!r}"):
            updated = await self._queue.update_message(message_id, pop_receipt, visibility_timeout=seconds)
        return updated.pop_receipt

    async def _delete(self, message_id: str, pop_receipt: str) -> None:
        with map_storage_errors(f"deleting message {message_id} of queue {self.binding.queue_name!r}"):
            await self._queue.delete_message(message_id, pop_receipt)

    def _decode(self, content: str | None) -> bytes:
        return decode_queue_message(content or "", self._options.message_encoding)

    def _trigger_value(self, message: Any, body: bytes) -> Any:
        if self._as_bytes:
            return body
        if self._as_text:
            return body.decode("utf-8")
        return QueueMessage(id=message.id, body=body, dequeue_count=message.dequeue_count,
                                 expiration_time=message.expires_on, insertion_time=message.inserted_on,
                                 time_next_visible=message.next_visible_on, pop_receipt=message.pop_receipt)

    async def _to_poison(self, message: Any, pop_receipt: str | None = None) -> None:
        await _create_queue(self._poison)
        try:
            with map_storage_errors(f"moving message {message.id} to {self.binding.poison_queue_name!r}"):
                await self._poison.send_message(message.content)  # the body exactly as received
                await self._queue.delete_message(message.id, pop_receipt or message.pop_receipt)
        except DurableError as e:
            log.error("Queue '%s': could not move message %s to the poison queue: %s",
                      self.binding.queue_name, message.id, e)


async def _create_queue(queue) -> None:
    await create_if_missing(queue.create_queue, f"creating queue {queue.queue_name!r}")


def decode_queue_message(text: str, encoding: str) -> bytes:
    """A message body as host.json ``extensions.queues.messageEncoding`` says; ValueError when not Base64."""
    if encoding == "none":
        return text.encode("utf-8")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not Base64 text, as host.json extensions.queues.messageEncoding ('base64', the "
                         "default) requires. Send Base64-encoded messages or set messageEncoding to 'none'")


def _trigger_data(message: Any, body: bytes) -> dict[str, Any]:
    text = body.decode("utf-8", errors="replace")
    data: dict[str, Any] = {"queueTrigger": text, "id": message.id, "dequeueCount": message.dequeue_count,
                            "insertionTime": message.inserted_on, "expirationTime": message.expires_on,
                            "nextVisibleTime": message.next_visible_on, "popReceipt": message.pop_receipt}
    try:
        value = json.loads(text)
    except ValueError:
        return data
    if isinstance(value, dict):
        data.update({k: v for k, v in value.items() if isinstance(v, (str, int, float, bool))})
    return data

