"""One task hub in one storage account: its clients, and its creation and deletion."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from ..errors import TaskHubNotFound
from .history import HistoryTable
from .instances import InstancesTable
from .largevalues import LargeValues
from .message_template import MessageTemplate
from .messages import (INFINITE_TIME_TO_LIVE, MAX_INLINE_MESSAGE_BYTES, TaskMessage, next_sequence_number, queue_body,
                       visibility_delay)
from .names import DEFAULT_PARTITION_COUNT, TaskHubNames
from .partitions import (PartitionLayout, PartitionManagement, TaskHubInfo, create_partition_store, discover_layout,
                         read_taskhub_info)
from .primitives import create_if_missing, delete_if_exists, get_or_none
from .storage import StorageAccount, map_storage_errors


log = logging.getLogger("durable_mgmt")

# Told of every message this handle sends: (queue name, seconds until it is visible).
SendObserver = Callable[[str, float], None]


class TaskHub:
    """Async handle on one task hub: clients for its tables, queues and containers.

    Use as ``async with TaskHub(account, "MyHub") as hub:``. The partition count
    used for routing is decided on open (``refresh_layout``): with
    ``partition_count_configured`` (the app's host.json sets ``partitionCount``)
    it is ``partition_count``, as the provider routes every message by its
    configured ``settings.PartitionCount`` (``GetControlQueueAsync``); otherwise
    it is discovered as ``GetControlQueuesAsync`` does: the rows of
    ``{Hub}Partitions``, else ``taskhub.json``, else ``partition_count``. Every
    writer routes through ``names``, so this is the one place the count is set.
    """

    def __init__(self, account: StorageAccount, hub_name: str, partition_count: int = DEFAULT_PARTITION_COUNT,
                 *, partition_count_configured: bool = False):
        self.account = account
        self.names = TaskHubNames(hub_name, partition_count)
        self._tables = self._queues = self._blobs = None
        self._queue_clients: dict[str, Any] = {}
        self.instances = self.history = self.large = None
        self._configured_count = partition_count
        self._count_configured = partition_count_configured
        # Set when the configured count differs from the one the hub shows (said once per handle, logged).
        self.partition_count_warning: str | None = None
        self.layout = PartitionLayout(PartitionManagement.NONE, partition_count, "configured partition count")
        self._opened = False
        self._ensured = False
        self._ensure_lock = asyncio.Lock()
        self._send_observers: list[SendObserver] = []

    @property
    def name(self) -> str:
        return self.names.hub

    async def __aenter__(self) -> "TaskHub":
        await self.open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def open(self) -> None:
        if self._opened:
            return
        self._tables = self.account.table_service()
        self._queues = self.account.queue_service()
        self._blobs = self.account.blob_service()
        self.large = LargeValues(self._blobs.get_container_client(self.names.large_messages_container))
        self.instances = InstancesTable(self, self._tables.get_table_client(self.names.instances_table))
        self.history = HistoryTable(self, self._tables.get_table_client(self.names.history_table))
        self._opened = True
        await self.refresh_layout()

    async def refresh_layout(self) -> PartitionLayout:
        """Read the hub's partition count and manager again (see the class docstring)."""
        self.layout = await discover_layout(self, self._configured_count)
        count = self.layout.partition_count
        if self._count_configured:
            if self.layout.management != PartitionManagement.NONE and count != self._configured_count:
                warning = (
                    f"Task hub {self.name!r} has {count} partitions ({self.layout.source}), but the configured "
                    f"partitionCount is {self._configured_count}: messages are routed by the configured count, as "
                    "the app's Durable Functions workers route them. Instances whose queue differs between the two "
                    "counts are only processed by workers configured the same way; make host.json's "
                    "partitionCount match the hub's, or remove it to use the hub's.")
                if warning != self.partition_count_warning:
                    log.warning("%s", warning)
                self.partition_count_warning = warning
            count = self._configured_count
        if count != self.names.partition_count:
            self.names = TaskHubNames(self.names.hub, count)
        return self.layout

    async def close(self) -> None:
        for client in (self._tables, self._queues, self._blobs):
            if client is not None:
                await client.close()
        self._opened = False

    # --- clients -----------------------------------------------------------

    def queue(self, name: str):
        client = self._queue_clients.get(name)
        if client is None:
            client = self._queue_clients[name] = self._queues.get_queue_client(name)
        return client

    def control_queue(self, partition: int):
        return self.queue(self.names.control_queue(partition))

    def control_queue_for(self, instance_id: str):
        return self.queue(self.names.control_queue_for(instance_id))

    @property
    def workitem_queue(self):
        return self.queue(self.names.workitem_queue)

    def container(self, name: str):
        return self._blobs.get_container_client(name)

    @property
    def table_service(self):
        return self._tables

    # --- messages ----------------------------------------------------------

    async def send_to_orchestration(self, message: TaskMessage, *, hidden_for: int | None = None) -> TaskMessage:
        """Put ``message`` on the control queue of its target instance (delayed if it is due later).

        ``hidden_for`` sends it invisible for that many seconds: the sender
        handles it itself and deletes it with the returned receipt; if the
        sender dies, the message reappears for whoever owns the queue then.
        Returns ``message`` with its queue name, id and pop receipt set.
        """
        return await self._send(self.control_queue_for(message.instance_id), message, hidden_for)

    async def send_to_activities(self, message: TaskMessage, *, hidden_for: int | None = None) -> TaskMessage:
        return await self._send(self.workitem_queue, message, hidden_for)

    async def send_rendered(self, template: MessageTemplate, instance_id: str) -> None:
        """Send ``template``'s message to ``instance_id``: what ``send_to_orchestration`` sends for the message
        it stands for, without encoding it afresh (a bulk job sends one message to many instances)."""
        text = template.render(instance_id, sequence_number=next_sequence_number())
        if len(text.encode("utf-8")) > MAX_INLINE_MESSAGE_BYTES:
            # Too large for the queue (a long reason): stored in a blob as any large message is.
            await self.send_to_orchestration(template.message(instance_id))
            return
        queue = self.control_queue_for(instance_id)
        await self._put(queue, text, 0, template.event_type.name)
        self._sent(queue.queue_name, 0)

    async def _send(self, queue, message: TaskMessage, hidden_for: int | None) -> TaskMessage:
        # Numbered at send time, per process, as TaskHubQueue.AddMessageAsync does.
        message.sequence_number = next_sequence_number()
        # Every queue message of the hub is encoded here (or by a template: send_rendered), as its own workers read it.
        text = await self.large.encode_message(message)
        delay = visibility_delay(message.event)
        if hidden_for:
            delay = max(delay, hidden_for)
        sent = await self._put(queue, text, delay, message.event.type.name)
        message.queue_name, message.message_id, message.pop_receipt = queue.queue_name, sent.id, sent.pop_receipt
        message.inserted_on = sent.inserted_on
        if not hidden_for:
            self._sent(queue.queue_name, delay)
        return message

    async def _put(self, queue, text: str, delay: int, what: str):
        body = queue_body(text, base64_encoded=self.layout.management == PartitionManagement.BLOB)
        with map_storage_errors(f"sending {what} to queue {queue.queue_name!r}"):
            return await queue.send_message(body, visibility_timeout=delay or None, time_to_live=INFINITE_TIME_TO_LIVE)

    def _sent(self, queue_name: str, delay: int) -> None:
        for observer in list(self._send_observers):
            observer(queue_name, delay)

    async def receive(self, queue_name: str, count: int, visibility_seconds: int) -> list[Any]:
        """Up to ``count`` messages of ``queue_name``, hidden for ``visibility_seconds`` (raw SDK messages)."""
        queue = self.queue(queue_name)
        with map_storage_errors(f"receiving from queue {queue_name!r}"):
            return [m async for m in queue.receive_messages(messages_per_page=count, max_messages=count,
                                                            visibility_timeout=visibility_seconds)]

    async def delete_message(self, queue_name: str, message_id: str, pop_receipt: str) -> bool:
        """Delete a received message; False if it was gone or re-delivered meanwhile (its receipt expired)."""
        return await delete_if_exists(lambda: self.queue(queue_name).delete_message(message_id, pop_receipt),
                                      f"deleting a message of queue {queue_name!r}")

    async def hide_message(self, queue_name: str, message_id: str, pop_receipt: str, seconds: int) -> str | None:
        """Keep a received message hidden for ``seconds`` more (0: show it again now); its new pop receipt,
        or None if it was gone or re-delivered meanwhile."""
        updated = await get_or_none(
            lambda: self.queue(queue_name).update_message(message_id, pop_receipt, visibility_timeout=seconds),
            f"updating a message of queue {queue_name!r}")
        return updated.pop_receipt if updated is not None else None

    def observe_sends(self, observer: SendObserver) -> Callable[[], None]:
        """Call ``observer(queue_name, delay_seconds)`` after every visible send through this handle;
        returns the function that stops it.

        The queue stays the source of truth; this only lets a reader owned by
        the same program (the local host's) look at once instead of at its
        next poll. Messages sent hidden (``hidden_for``) are handed over by
        the sender itself and are not reported.
        """
        self._send_observers.append(observer)

        def stop() -> None:
            if observer in self._send_observers:
                self._send_observers.remove(observer)

        return stop

    # --- lifecycle ---------------------------------------------------------

    async def read_info(self) -> TaskHubInfo | None:
        """``taskhub.json`` (extension v2 hubs and older funcpy hubs), or None."""
        return await read_taskhub_info(self)

    async def exists(self) -> bool:
        """True when the hub's Instances table exists (what every reader needs)."""
        with map_storage_errors(f"looking for table {self.names.instances_table!r}"):
            async for _ in self._tables.query_tables(f"TableName eq '{self.names.instances_table}'"):
                return True
        return False

    async def require(self) -> None:
        if not await self.exists():
            raise TaskHubNotFound(self.name)

    async def ensure_created(self) -> None:
        """Create the hub once per handle (the first start on a new hub creates it)."""
        if self._ensured:
            return
        async with self._ensure_lock:
            if not self._ensured:
                if not await self.exists():
                    await self.create_if_not_exists()
                self._ensured = True

    async def create_if_not_exists(self) -> bool:
        """Create every table, queue and container of the hub; True if anything was new.

        As ``AzureStorageOrchestrationService.GetTaskHubCreatorTask`` of the
        current provider: a new hub gets the ``{Hub}Partitions`` table with a
        row per control queue (TablePartitionManager, the DurableTask.AzureStorage
        2.x default) and the app lease container, no ``taskhub.json``. A hub an
        extension v2 worker made (``taskhub.json``) keeps its blob leases: adding
        a Partitions table to it would make two lease protocols on one hub.
        """
        layout = await self.refresh_layout()
        management = PartitionManagement.BLOB if layout.management == PartitionManagement.BLOB \
            else PartitionManagement.TABLE
        created = await asyncio.gather(
            self._create_table(self.names.instances_table),
            self._create_table(self.names.history_table),
            *(self._create_queue(q) for q in self.names.control_queues),
            self._create_queue(self.names.workitem_queue),
            # No large-message container: the provider (MessageManager.EnsureContainerAsync) and LargeValues
            # make it with the first large value, and readers take a missing one as empty.
        )
        await create_partition_store(self, management)
        if layout.management == PartitionManagement.NONE:
            await self.refresh_layout()
        return any(created)

    async def delete(self) -> None:
        """Delete every table, queue and container of the hub, as ``DeleteAsync`` does.

        Control queues by the discovered count and any other ``{hub}-control-NN``
        queue (a hub whose count changed keeps its old queues), the work-item
        queue, Instances and History (``DeleteTrackingStore``), the lease store of
        either partition manager (``{Hub}Partitions``; ``{hub}-leases`` with
        ``taskhub.json``, ``intent/``, ``ownership/``), the app lease container
        and the large-message container.
        """
        await self.refresh_layout()
        names = self.names
        queues = set(names.control_queues) | await self._listed_control_queues()
        await asyncio.gather(
            self._delete_table(names.instances_table),
            self._delete_table(names.history_table),
            self._delete_table(names.partitions_table),
            self._delete_table(names.jobs_table),  # durable_mgmt's bulk jobs (issue 13)
            *(self._delete_queue(q) for q in sorted(queues)),
            self._delete_queue(names.workitem_queue),
            self._delete_container(names.large_messages_container),
            self._delete_container(names.leases_container),
            self._delete_app_lease_container(),
        )

    async def _listed_control_queues(self) -> set[str]:
        prefix = f"{self.name.lower()}-control-"
        with map_storage_errors(f"listing queues starting with {prefix!r}"):
            return {q.name async for q in self._queues.list_queues(name_starts_with=prefix)
                    if self.names.partition_of_queue(q.name) is not None}

    async def _delete_app_lease_container(self) -> None:
        # AppLeaseManager.DeleteContainerAsync: a container another app holds the app lease on cannot be
        # deleted without its lease id (HTTP 412); the provider leaves it, and so do we.
        await delete_if_exists(self.container(self.names.app_lease_container).delete_container,
                               f"deleting container {self.names.app_lease_container!r}", leased_is_kept=True)

    async def _create_table(self, name: str) -> bool:
        return await create_if_missing(lambda: self._tables.create_table(name), f"creating table {name!r}")

    async def _create_queue(self, name: str) -> bool:
        return await create_if_missing(self.queue(name).create_queue, f"creating queue {name!r}")

    async def _delete_table(self, name: str) -> None:
        with map_storage_errors(f"deleting table {name!r}"):
            await self._tables.delete_table(name)  # no error when missing

    async def _delete_queue(self, name: str) -> None:
        await delete_if_exists(self.queue(name).delete_queue, f"deleting queue {name!r}")

    async def _delete_container(self, name: str) -> None:
        await delete_if_exists(self.container(name).delete_container, f"deleting container {name!r}")
