"""What a long scan or purge meets when storage changes under it (the 2,000-instance purge's flake, issue 13).

A purge pages through the Instances table while it deletes rows of it. Azurite answers a query continued
from a key whose row was deleted meanwhile as any other (``LokiTableMetadataStore.queryTableEntities``
compares keys, it does not look the key up); its only 404 to a query is a missing table (TableNotFound),
i.e. a task hub deleted under the scan, which must be named as such, not reported as a storage failure.
"""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime, timezone

import pytest

from durable_mgmt.errors import StorageUnavailable, TaskHubNotFound
from durable_mgmt.models import InstanceQuery, RuntimeStatus
from durable_mgmt.taskhub import TaskHubClient

from .test_cli_support import gather_limited, hostlike_instance


async def _seed(hub, n: int) -> list[str]:
    ids = [f"i-{i:03d}" for i in range(n)]
    await gather_limited([hostlike_instance(hub, iid, "Completed", events=1) for iid in ids])
    return ids


async def test_paging_goes_on_when_the_next_pages_first_row_was_deleted_meanwhile(hub):
    ids = await _seed(hub, 30)
    seen, deleted = [], set()
    pager = hub.instances.client.list_entities(select=["PartitionKey"], results_per_page=10).by_page()
    async for page in pager:
        seen += [e["PartitionKey"] async for e in page]
        token = pager.continuation_token
        if token:  # the row the next page would start at goes before that page is asked for
            nxt = base64.b64decode(token["PartitionKey"]).decode()
            await hub.instances.client.delete_entity(nxt, "")
            deleted.add(nxt)
    assert len(deleted) == 2 and seen == [i for i in ids if i not in deleted]


async def test_a_hub_deleted_under_a_scan_is_named_not_reported_as_a_storage_failure(hub):
    await _seed(hub, 12)
    pages = hub.instances.pages(InstanceQuery(page_size=5), columns=["PartitionKey"])
    rows, token = await anext(pages)
    assert len(rows) == 5 and token
    await hub.delete()
    with pytest.raises(TaskHubNotFound, match="was deleted while its instances were being read") as caught:
        await anext(pages)
    assert not isinstance(caught.value, StorageUnavailable) and caught.value.hub_name == hub.name


async def test_a_hub_deleted_under_a_query_language_scan_is_named_too(hub):
    # find, count, bulk selection and export read through taskhub.scan, not InstancesTable.pages: the same
    # 404 was reported as "Azure Storage failed while querying instances: HTTP 404". (scan_ids, the selection's
    # reader when storage evaluates the whole query, reads pages of 1,000 keys: it maps the 404 the same way.)
    from durable_mgmt.query import Query
    from durable_mgmt.taskhub.scan import scan

    await _seed(hub, 12)
    pages = scan(hub, Query.parse("status = 'Completed' AND input != 'nothing'"), page_size=5)
    assert len((await anext(pages)).items) == 5
    await hub.delete()
    with pytest.raises(TaskHubNotFound, match="was deleted while its instances were being read") as caught:
        async for _ in pages:  # the page after this one was already asked for (prefetch): the next one fails
            pass
    assert not isinstance(caught.value, StorageUnavailable) and caught.value.hub_name == hub.name


async def test_a_purge_whose_hub_is_deleted_under_it_says_so_and_how_far_it_got(hub):
    # More than one page of the Instances table (1,000 rows), so the purge reads on after the deletion. Rows
    # only (no history), the cheapest instances a purge takes; the hub goes once the first page is purged.
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    await gather_limited([hub.instances.upsert({
        "PartitionKey": f"p-{i:04d}", "RowKey": "", "Name": "N", "RuntimeStatus": "Completed", "CreatedTime": t0,
        "LastUpdatedTime": t0, "ExecutionId": f"e{i}"}) for i in range(1050)])
    calls = []

    async def delete_the_hub(progress) -> None:
        calls.append(progress)
        if progress.instances_deleted == 1000:
            await hub.delete()

    with pytest.raises(TaskHubNotFound, match="was deleted while it was being purged, after 1,000 instances"):
        await TaskHubClient(hub).purge(InstanceQuery(statuses=[RuntimeStatus.COMPLETED]), progress=delete_the_hub)
    assert calls[-1].instances_deleted == 1000


async def test_two_purges_racing_over_the_same_instances_count_each_one_once(hub):
    # The SDK's TableClient.delete_entity returns quietly on a 404 (azure-data-tables, _table_client_async):
    # without reading the status, both purges would count the rows the other one deleted first.
    n, events = 100, 1
    await gather_limited([hostlike_instance(hub, f"r-{i:03d}", "Completed", events=events) for i in range(n)])
    query = InstanceQuery(statuses=[RuntimeStatus.COMPLETED])
    first, second = await asyncio.gather(TaskHubClient(hub).purge(query), TaskHubClient(hub).purge(query))
    assert first.instances_deleted + second.instances_deleted == n
    assert first.rows_deleted + second.rows_deleted == n * (events + 1)  # each history row once too
    assert [r async for r in hub.instances.client.list_entities(select=["PartitionKey"])] == []


async def test_a_purge_by_id_prefix_ending_in_u_d7ff_purges_only_that_prefix(hub):
    # The service orders keys by UTF-16 code unit: after U+D7FF come the surrogates, i.e. every character
    # beyond U+FFFF, and only then U+E000. A prefix range ending at "...\uE000" took in "p-\U0001F600" too,
    # and the purge deleted an instance the prefix does not name.
    from durable_mgmt import InstanceManager
    from durable_mgmt.transports import StorageTransport

    ids = ["p-\ud7ff", "p-\ud7ffz", "p-\U0001F600", "p-\U00010000", "p-\ue000"]
    await gather_limited([hostlike_instance(hub, iid, "Completed", events=1) for iid in ids])
    manager = InstanceManager(StorageTransport(hub))
    listed = [s.instance_id async for s in manager.instances(InstanceQuery(instance_id_prefix="p-\ud7ff"))]
    assert sorted(listed) == ["p-\ud7ff", "p-\ud7ffz"]
    result = await manager.purge(query=InstanceQuery(instance_id_prefix="p-\ud7ff",
                                                     statuses=[RuntimeStatus.COMPLETED]))
    assert result.instances_deleted == 2
    left = {s.instance_id async for s in manager.instances(InstanceQuery(instance_id_prefix="p-"))}
    assert left == {"p-\U0001F600", "p-\U00010000", "p-\ue000"}
