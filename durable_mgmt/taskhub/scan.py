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
from .instance_row import status_from_entity
from .instances import MAX_PAGE, plain_pages
from .query_odata import COLUMNS, instances_query_filter, render
from .storage import map_storage_errors

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
    matches = None if query.client is None else query.matches_client_side  # nothing left to check here
    with map_storage_errors("querying instances"):
        pager = hub.instances.client.query_entities(f.text, parameters=f.parameters, select=select,
                                                    results_per_page=min(page_size, MAX_PAGE)).by_page()
        # The SDK's entities are converted straight to statuses (no plain copy of each row first), except
        # where offloaded Input/Output values are brought back in place.
        async for rows, _ in plain_pages(pager, plain=restore):
            items = []
            for row in rows:
                if restore:
                    await hub.large.restore_row(row, instances_table=True)
                status = status_from_entity(row, show_input=want_input)
                if matches is None or matches(status):
                    items.append(status)
            yield ScanPage(tuple(items), len(rows), rows[-1]["PartitionKey"] if rows else None)
