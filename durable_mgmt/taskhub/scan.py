"""Streaming the Instances rows a filter query matches, in PartitionKey order.

Storage evaluates the pushed-down half of the query; the client-side half is
applied here, page by page, so memory holds at most two storage pages (the
next one is fetched while the caller works on the current one). Only the
columns the caller and the client-side filter need are selected: counting by
status reads two columns, not the whole row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator, Iterable

from ..models import InstanceStatus
from ..query import Field, Query
from .instances import MAX_PAGE, deleted_while_reading, plain_pages, status_from_row
from .query_odata import COLUMNS, instances_query_filter, render
from .names import unescape_key
from .storage import ResourceNotFoundError, map_storage_errors

# Columns every status needs to be built (cheap, short values).
BASE_COLUMNS = ("PartitionKey", "Name", "RuntimeStatus", "CreatedTime", "LastUpdatedTime")


@dataclass(frozen=True)
class ScanPage:
    """The matches of one storage page; ``scanned`` rows were read, the last with key ``last_key``."""

    items: tuple[InstanceStatus, ...]
    scanned: int
    last_key: str | None


def columns_for(query: Query, fields: Iterable[Field] = ()) -> list[str]:
    cols = list(BASE_COLUMNS)
    wanted = set(fields) | query.fields("client")
    for field in (f for f in Field if f in wanted):  # in a fixed order: plans print the same every time
        col = COLUMNS[field]
        if col not in cols:
            cols.append(col)
    return cols


def explain_odata(query: Query) -> str:
    return render(instances_query_filter(query.pushed))


async def scan(hub, query: Query, *, fields: Iterable[Field] = (), after_key: str | None = None,
               page_size: int = MAX_PAGE) -> AsyncIterator[ScanPage]:
    """Every instance matching ``query`` with at least ``fields`` filled in, one page at a time.

    ``after_key`` resumes after that PartitionKey (the escaped id of the last
    instance handled).
    """
    await hub.require()
    f = instances_query_filter(query.pushed, after_key=after_key)
    select = columns_for(query, fields)
    restore = "Input" in select or "Output" in select
    want_input = "Input" in select
    with map_storage_errors("querying instances"):
        pager = hub.instances.client.query_entities(f.text, parameters=f.parameters, select=select,
                                                    results_per_page=min(page_size, MAX_PAGE)).by_page()
        try:
            async for rows, _ in plain_pages(pager):
                items = []
                for row in rows:
                    if restore:
                        await hub.large.restore_row(row, instances_table=True)
                    status = status_from_row(row, show_input=want_input)
                    if query.matches_client_side(status):
                        items.append(status)
                yield ScanPage(tuple(items), len(rows), rows[-1]["PartitionKey"] if rows else None)
        except ResourceNotFoundError as e:
            raise deleted_while_reading(hub.name) from e


async def scan_ids(hub, query: Query, *, after_key: str | None = None) -> AsyncIterator[tuple[list[str], str | None]]:
    """The ids of the instances ``query`` matches, a storage page at a time with the page's last scanned key
    (as ``ScanPage.last_key``): all a bulk job's selection needs. When storage evaluates the whole query,
    only the key column is read (building a status per row cost as much as the rest of the selection)."""
    if query.client is not None:
        async for page in scan(hub, query, after_key=after_key):
            yield [s.instance_id for s in page.items], page.last_key
        return
    await hub.require()
    f = instances_query_filter(query.pushed, after_key=after_key)
    with map_storage_errors("querying instances"):
        pager = hub.instances.client.query_entities(f.text, parameters=f.parameters, select=["PartitionKey"],
                                                    results_per_page=MAX_PAGE).by_page()
        try:
            async for rows, _ in plain_pages(pager):
                yield [unescape_key(r["PartitionKey"]) for r in rows], rows[-1]["PartitionKey"] if rows else None
        except ResourceNotFoundError as e:
            raise deleted_while_reading(hub.name) from e
