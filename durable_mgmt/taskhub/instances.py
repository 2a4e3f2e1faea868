"""The ``{Hub}Instances`` table: one row per orchestration instance.

Columns as ``OrchestrationInstanceStatus`` in DurableTask.AzureStorage:
PartitionKey = escaped instance id, RowKey = "".
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from typing import Any, AsyncIterator

from azure.core import MatchConditions
from azure.data.tables import UpdateMode

from ..errors import InvalidFilter, TaskHubNotFound
from ..models import InstanceQuery
from .entities import HubTable, plain_entity
from .instance_row import InstanceRow
from .names import escape_key, unescape_key
from .odata import instances_filter
from .primitives import delete_if_exists, get_or_none
from .storage import ResourceNotFoundError, map_storage_errors

MAX_PAGE = 1000
SUMMARY_COLUMNS = ["PartitionKey", "RowKey", "Name", "Version", "RuntimeStatus", "CreatedTime", "LastUpdatedTime",
                   "CompletedTime", "ExecutionId", "ScheduledStartTime", "Generation", "CustomStatus", "Tags",
                   "TaskHubName"]



async def plain_pages(pager, *, prefetch: bool = True, plain: bool = True,
                      ) -> AsyncIterator[tuple[list[dict[str, Any]], Any]]:
    """The pages of an SDK ``by_page()`` pager as plain rows, each with the service's token of the next
    page (None after the last). With ``prefetch``, the next page is requested while the caller handles
    this one, so storage and this process work at the same time (two pages in memory at most).
    ``plain=False`` gives the SDK's entities as they are, for a caller that converts each row once
    itself (``status_from_entity``) rather than copying it into a plain dict first."""
    pages = pager.__aiter__()

    async def fetch() -> list[dict[str, Any]] | None:
        try:
            page = await pages.__anext__()
        except StopAsyncIteration:
            return None
        if plain:
            return [plain_entity(e) async for e in page]
        return [e async for e in page]

    pending = asyncio.ensure_future(fetch())
    try:
        while (rows := await pending) is not None:
            token = pager.continuation_token  # read now: fetching the next page replaces it
            pending = asyncio.ensure_future(fetch()) if prefetch and token else None
            if pending is not None:
                # Let the new task run up to its first wait, so its request is sent now: a task only runs
                # when this one awaits, and a caller converting the page synchronously never does, so the
                # request would otherwise leave only once the caller came back for the next page.
                await asyncio.sleep(0)
            yield rows, token
            if not token:
                break
            if pending is None:
                pending = asyncio.ensure_future(fetch())
    finally:
        if pending is not None and not pending.done():
            pending.cancel()


def deleted_while_reading(hub_name: str) -> TaskHubNotFound:
    """What a query of the Instances table answering 404 means: only a missing table does (TableNotFound; a
    continuation key whose row was deleted meanwhile is fine), so the hub was deleted under a long scan or
    purge. Said so, rather than reported as a storage failure."""
    return TaskHubNotFound(hub_name, (
        f"Task hub {hub_name!r} was deleted while its instances were being read (its Instances table is gone): "
        "nothing is left to list or purge. If that was not meant, check who deleted it (delete-task-hub, a "
        "test's clean-up)."))


class InstancesTable(HubTable):
    async def get(self, instance_id: str, *, with_input: bool = True, with_output: bool = True) -> dict[str, Any] | None:
        """The row of ``instance_id`` (large values brought back), or None."""
        select = _columns(with_input, with_output)
        entity = await get_or_none(lambda: self._table.get_entity(escape_key(instance_id), "", select=select),
                                   f"reading instance {instance_id!r}")
        if entity is None:
            return None
        row = plain_entity(entity)
        await self._hub.large.restore_row(row, instances_table=True)
        return row

    async def read(self, instance_id: str, *, with_input: bool = True, with_output: bool = True
                   ) -> InstanceRow | None:
        """The typed row of ``instance_id`` (large values brought back), or None."""
        entity = await self.get(instance_id, with_input=with_input, with_output=with_output)
        return None if entity is None else InstanceRow.from_entity(entity)

    async def upsert(self, row: "dict[str, Any] | InstanceRow", *, replace: bool = False) -> str:
        """Insert or merge (or replace) ``row``; large values go to blobs first. Returns the new ETag."""
        row = _entity(row)
        await self._hub.large.offload_row(row, instances_table=True)
        mode = UpdateMode.REPLACE if replace else UpdateMode.MERGE
        with map_storage_errors(f"writing instance {unescape_key(row['PartitionKey'])!r}"):
            meta = await self._table.upsert_entity(row, mode=mode)
        return meta.get("etag")

    async def insert(self, row: "dict[str, Any] | InstanceRow") -> str:
        """Insert ``row``; ConcurrencyConflict if it already exists."""
        row = _entity(row)
        await self._hub.large.offload_row(row, instances_table=True)
        with map_storage_errors(f"creating instance {unescape_key(row['PartitionKey'])!r}"):
            meta = await self._table.create_entity(row)
        return meta.get("etag")

    async def replace(self, row: "dict[str, Any] | InstanceRow", etag: str) -> str:
        """Replace ``row`` if it still has ``etag``; ConcurrencyConflict otherwise."""
        row = _entity(row)
        await self._hub.large.offload_row(row, instances_table=True)
        with map_storage_errors(f"updating instance {unescape_key(row['PartitionKey'])!r}"):
            meta = await self._table.update_entity(row, mode=UpdateMode.REPLACE, etag=etag,
                                                   match_condition=MatchConditions.IfNotModified)
        return meta.get("etag")

    async def merge(self, row: "dict[str, Any] | InstanceRow", etag: str | None = None) -> str:
        """Merge ``row`` into an existing row (optionally only if it still has ``etag``)."""
        row = _entity(row)
        await self._hub.large.offload_row(row, instances_table=True)
        kwargs = {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag else {}
        with map_storage_errors(f"updating instance {unescape_key(row['PartitionKey'])!r}"):
            meta = await self._table.update_entity(row, mode=UpdateMode.MERGE, **kwargs)
        return meta.get("etag")

    async def delete(self, instance_id: str) -> bool:
        return await delete_if_exists(lambda: self._table.delete_entity(escape_key(instance_id), ""),
                                      f"deleting instance {instance_id!r}")

    async def pages(self, query: InstanceQuery, *, columns: list[str] | None = None, prefetch: bool = False,
                    plain: bool = True) -> AsyncIterator[tuple[list[dict[str, Any]], str | None]]:
        """Rows matching ``query``, one storage page at a time, each with the token of the next.

        Pages hold at most ``query.page_size`` rows and may hold fewer (the
        service decides). ``columns`` overrides the selected columns: counting
        and purging read only what they need, which makes each page several
        times cheaper to fetch. With ``prefetch``, the request for the next
        page is in flight while the caller handles the current one, so the
        storage service and this process work at the same time (two pages in
        memory at most); use it when the caller reads to the end. ``plain=False`` gives the SDK's
        entities (times already aware UTC, Int64/binary values still wrapped) to a caller that converts
        each row itself; rows whose offloaded values are brought back are always plain.
        """
        f = instances_filter(created_from=query.created_from, created_to=query.created_to,
                             statuses=[s.value for s in query.statuses],
                             instance_id_prefix=query.instance_id_prefix, name=query.name)
        select = columns or _columns(query.show_input, query.show_output)
        # Offloaded values live only in Input/Output; without them there is nothing to bring back.
        restore = any(c in select for c in ("Input", "Output"))
        token = decode_continuation_token(query.continuation_token)
        per_page = min(query.page_size, MAX_PAGE)
        with map_storage_errors("querying instances"):
            if f.text:
                items = self._table.query_entities(f.text, parameters=f.parameters, select=select,
                                                   results_per_page=per_page)
            else:
                items = self._table.list_entities(select=select, results_per_page=per_page)
            try:
                pages = plain_pages(items.by_page(token), prefetch=prefetch, plain=plain or restore)
                async for rows, next_token in pages:
                    if restore:
                        for row in rows:
                            await self._hub.large.restore_row(row, instances_table=True)
                    yield rows, encode_continuation_token(next_token)
            except ResourceNotFoundError as e:
                raise deleted_while_reading(self._hub.name) from e

    async def query(self, query: InstanceQuery) -> tuple[list[dict[str, Any]], str | None]:
        """One page of rows for ``query``: at most ``page_size``, with the next token."""
        async for rows, token in self.pages(query):
            return rows, token
        return [], None


def _entity(row: "dict[str, Any] | InstanceRow") -> dict[str, Any]:
    # A copy: large values are moved out of it before it is written.
    return row.to_entity() if isinstance(row, InstanceRow) else dict(row)


def _columns(with_input: bool, with_output: bool) -> list[str]:
    cols = list(SUMMARY_COLUMNS)
    if with_input:
        cols.append("Input")
    if with_output:
        cols.append("Output")
    return cols


def encode_continuation_token(token: Any) -> str | None:
    """The SDK's continuation (a dict of next keys) as an opaque URL-safe string."""
    if not token:
        return None
    return base64.urlsafe_b64encode(json.dumps(token, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_continuation_token(token: str | None) -> Any:
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as e:
        raise InvalidFilter(
            f"Invalid continuation token {token[:40]!r}: pass back exactly the x-ms-continuation-token "
            "value (or --continuation-token) returned by the previous page."
        ) from e
    # The SDK sends the two values as x-ms-continuation-Next* headers: anything but the short printable
    # text the service hands out would fail there (or smuggle header bytes), so refuse it here.
    if (not isinstance(data, dict) or not data.get("PartitionKey") or not set(data) <= {"PartitionKey", "RowKey"}
            or not all(v is None or (isinstance(v, str) and _TOKEN_VALUE.fullmatch(v)) for v in data.values())):
        raise InvalidFilter(f"Invalid continuation token {token[:40]!r}: it does not come from a previous page; "
                            "pass back exactly the value the previous page returned.")
    return data


_TOKEN_VALUE = re.compile(r"[\x21-\x7e]{1,1024}")
