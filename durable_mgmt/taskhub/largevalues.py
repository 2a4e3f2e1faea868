"""Values too large for a table property or a queue message, kept as gzip blobs.

As DurableTask.AzureStorage does it (``AzureTableTrackingStore.CompressLargeMessageAsync``,
``MessageManager``): a string property larger than 60 KiB as UTF-16 goes to
``{hub}-largemessages``; history rows then hold ``""`` plus a ``{Prop}BlobName``
column, Instances rows hold the blob's URL. Queue messages over 45 KB are
stored whole, and the queue carries a small wrapper naming the blob.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from typing import Any
from urllib.parse import quote, unquote, urlparse


from .messages import MAX_INLINE_MESSAGE_BYTES, MessageFormatError, TaskMessage, compressed_wrapper, decode_body
from .primitives import create_if_missing, delete_if_exists, list_or_none
from .storage import map_storage_errors

MAX_TABLE_PROPERTY_BYTES = 60 * 1024
VARIABLE_SIZE_PROPERTIES = ("Name", "Input", "Result", "Output", "Reason", "Details", "Correlation",
                            "FailureDetails", "Tags")
INSTANCE_URL_PROPERTIES = ("Input", "Output")
# What follows "{folder}/" in the names the provider's two blob writers make (see LargeValues.list_instance).
_MESSAGE_BLOB = re.compile(r"message-[0-9a-f]{32}-[A-Za-z]+\.json\.gz")
# (Before commit ced7c70c, "Add randomization to history blob names", the {random:X8} part was absent.)
_HISTORY_BLOB = re.compile(r"history-[^/]*-[A-Za-z]+\.json\.gz")


def exceeds_table_limit(value: Any) -> bool:
    # Azure Tables measure strings as UTF-16.
    return isinstance(value, str) and len(value.encode("utf-16-le")) > MAX_TABLE_PROPERTY_BYTES


def blob_property_name(prop: str) -> str:
    return prop + "BlobName"


class LargeValues:
    """Reads and writes the ``{hub}-largemessages`` container."""

    def __init__(self, container_client):
        self._container = container_client
        self._ensured = False

    @property
    def container_url(self) -> str:
        return self._container.url.rstrip("/")

    async def ensure_container(self) -> None:
        if self._ensured:
            return
        await create_if_missing(self._container.create_container,
                                f"creating container {self._container.container_name!r}")
        self._ensured = True

    async def upload(self, blob_name: str, text: str) -> None:
        await self.ensure_container()
        data = gzip.compress(text.encode("utf-8"))
        with map_storage_errors(f"uploading large value {blob_name!r}"):
            await self._container.upload_blob(blob_name, data, overwrite=True)

    async def download(self, blob_name: str) -> str:
        with map_storage_errors(f"downloading large value {blob_name!r}"):
            stream = await self._container.download_blob(blob_name)
            data = await stream.readall()
        return gzip.decompress(data).decode("utf-8")

    def url_of(self, blob_name: str) -> str:
        return f"{self.container_url}/{quote(blob_name, safe='/')}"

    def name_from_url(self, value: str) -> str | None:
        """The blob name if ``value`` is a URL into our container, else None."""
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            return None
        prefix = urlparse(self.container_url).path.rstrip("/") + "/"
        path = urlparse(value).path
        if not path.startswith(prefix):
            return None
        return unquote(path[len(prefix):])

    async def list_instance(self, instance_id: str, partition_key: str) -> list[str]:
        """The names of every large value of one instance now (a purge lists them before deciding to delete).

        The provider names message blobs after the raw instance id
        (``{id}/message-{activity}-{EventType}.json.gz``, MessageManager.GetNewLargeMessageBlobName) and the
        tracking store's blobs, history and Instances columns alike, after the escaped key
        (``{key}/history-{RowKey}-{EventType}-{random:X8}-{Prop}.json.gz``, AzureTableTrackingStore.GetBlobName),
        so both folders are listed: they differ for ids holding ``^ / \\ # ?`` or control characters. One
        instance's escaped key can be another's raw id (``a^b`` escapes to ``a^^b``), so each folder keeps
        only the names its writer makes: ``message-`` blobs under the raw id, ``history-`` blobs under the
        key, and never a deeper path. (The provider's own purge lists the raw id without a trailing slash
        and deletes whatever it finds: DeleteLargeMessageBlobs.)
        """
        raw = await self._list_folder(instance_id)
        keyed = raw if partition_key == instance_id else await self._list_folder(partition_key)
        return ([n for n in raw if _MESSAGE_BLOB.fullmatch(n, len(instance_id) + 1)]
                + [n for n in keyed if _HISTORY_BLOB.fullmatch(n, len(partition_key) + 1)])

    async def _list_folder(self, prefix: str) -> list[str]:
        blobs = await list_or_none(lambda: self._container.list_blobs(name_starts_with=prefix + "/"),
                                   f"listing large values of {prefix!r}")
        return [b.name for b in blobs or ()]

    async def delete_names(self, names: list[str]) -> int:
        """Delete these blobs (those already gone are skipped); returns how many were deleted."""
        count = 0
        for name in names:
            count += await delete_if_exists(lambda: self._container.delete_blob(name), f"deleting large value {name!r}")
        return count

    # --- table rows --------------------------------------------------------

    async def offload_row(self, row: dict[str, Any], *, instances_table: bool = False) -> list[str]:
        """Move oversized properties of ``row`` to blobs, in place; returns the blob names."""
        names = []
        for prop in VARIABLE_SIZE_PROPERTIES:
            value = row.get(prop)
            if not exceeds_table_limit(value):
                continue
            name = _history_blob_name(row, prop)
            await self.upload(name, value)
            if instances_table:
                row[prop] = self.url_of(name)
            else:
                row[blob_property_name(prop)] = name
                row[prop] = ""
            names.append(name)
        return names

    async def restore_row(self, row: dict[str, Any], *, instances_table: bool = False) -> dict[str, Any]:
        """Bring back properties that were offloaded to blobs, in place."""
        for prop in VARIABLE_SIZE_PROPERTIES:
            blob_name = row.get(blob_property_name(prop))
            if isinstance(blob_name, str) and blob_name:
                row[prop] = await self.download(blob_name)
                del row[blob_property_name(prop)]
        if instances_table:
            for prop in INSTANCE_URL_PROPERTIES:
                name = self.name_from_url(row.get(prop))
                if name:
                    text = await self.download(name)
                    if name.endswith(STARTED_MESSAGE_SUFFIX):
                        try:
                            text = started_input(text, name)
                        except MessageFormatError:
                            continue  # as the provider: unrecognized data leaves the URL in place
                    row[prop] = text
        return row

    # --- queue messages ----------------------------------------------------

    async def encode_message(self, message: TaskMessage) -> str:
        """The queue body of ``message``; a large one is stored whole in a blob first
        (MessageManager.SerializeMessageDataAsync: the blob holds the message as serialized before
        its CompressedBlobName was set, the queue a wrapper naming the blob)."""
        message.compressed_blob_name = None
        body = message.encode()
        if len(body.encode("utf-8")) <= MAX_INLINE_MESSAGE_BYTES:
            return body
        name = message.large_blob_name
        await self.upload(name, body)
        message.compressed_blob_name = name
        return compressed_wrapper(name)

    async def decode_message(self, body: str | bytes) -> TaskMessage:
        data = decode_body(body)
        blob_name = data.get("CompressedBlobName")
        if blob_name:
            # MessageManager.DeserializeQueueMessageAsync: any envelope naming a blob is replaced by the blob.
            data = json.loads(await self.download(blob_name))
        message = TaskMessage.from_json(data)
        if blob_name:
            message.compressed_blob_name = blob_name
        return message


# The blob of a start message too large for the queue; an Instances row's Input may hold its URL.
STARTED_MESSAGE_SUFFIX = "ExecutionStarted.json.gz"


def started_input(message_text: str, blob_name: str) -> str | None:
    """The orchestration input inside a stored ExecutionStarted message (AzureTableTrackingStore.ConvertFromAsync:
    an Input URL ending in ``ExecutionStarted.json.gz`` stands for that message's start-event Input)."""
    try:
        event = json.loads(message_text)["TaskMessage"]["Event"]
    except (ValueError, KeyError, TypeError) as e:
        raise MessageFormatError(f"large value {blob_name!r} is not an ExecutionStarted message") from e
    if not isinstance(event, dict) or event.get("EventType") != 0:
        raise MessageFormatError(f"large value {blob_name!r} is not an ExecutionStarted message")
    return event.get("Input")


def _history_blob_name(row: dict[str, Any], prop: str) -> str:
    event_type = row.get("EventType")
    if not isinstance(event_type, str):
        event_type = prop  # Instances rows have no EventType: "Input"/"Output", as the provider names them
    return f"{row['PartitionKey']}/history-{row.get('RowKey', '')}-{event_type}-{random.getrandbits(32):08X}-{prop}.json.gz"
