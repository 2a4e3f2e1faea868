"""The dashboard on a 20,000-instance hub (issue 14's targets), beside the raw scan of the same run.

* the first list page (``GET /``, default filter: the last 24 hours, 50 rows): the time from the request
  to the whole response, target < 0.5 s;
* the overview's status counts (``GET /overview``), target < 2 s, beside a raw $select scan of the
  status column of the whole Instances table (azure-data-tables, no durable_mgmt code);
* the overview's histogram data (``GET /overview/histogram``), a scan of the summary columns.

Requests go over HTTP to the standalone server (``funcpy monitor``'s), in this process; each figure is the
median of a few rounds, alternating with the raw scan: the machine is shared. Only Instances rows are
seeded (the list and the counts read nothing else), created over the last 20 hours.
``BENCH_DASHBOARD_INSTANCES`` scales the hub down for a quick run.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import aiohttp

from durable_mgmt import InstanceManager
from durable_mgmt.dashboard import DashboardConfig, StandaloneServer
from durable_mgmt.taskhub import TaskHub
from durable_mgmt.taskhub.names import escape_key

from .common import Figure

TOTAL = int(os.environ.get("BENCH_DASHBOARD_INSTANCES", "20000"))
CONCURRENCY = 32
ROUNDS = 5
STATUSES = ("Completed", "Running", "Failed", "Terminated", "Pending")


async def seed(hub: TaskHub) -> None:
    instances = hub.instances.client
    now = datetime.now(timezone.utc)
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        iid = f"dash-{i:06d}"
        created = now - timedelta(hours=20) + timedelta(seconds=i * 72000 / TOTAL)
        row = {"PartitionKey": escape_key(iid), "RowKey": "", "Name": f"Orchestrator{i % 7}", "Version": "",
               "Input": '{"n":1}', "Output": '"done"', "RuntimeStatus": STATUSES[i % len(STATUSES)],
               "CreatedTime": created, "LastUpdatedTime": created + timedelta(seconds=3),
               "ExecutionId": uuid.uuid4().hex, "Generation": 0, "TaskHubName": hub.name,
               "CustomStatus": '"step 3"'}
        async with sem:
            await instances.create_entity(row)

    for start in range(0, TOTAL, 5000):
        await asyncio.gather(*(one(i) for i in range(start, min(TOTAL, start + 5000))))
        print(f"  ... seeded {min(TOTAL, start + 5000):,} of {TOTAL:,} instances", file=sys.stderr, flush=True)


async def raw_status_scan(hub: TaskHub, since: datetime | None = None) -> float:
    """Rows per second of a raw scan of the status column of every instance (created since ``since``:
    the dashboard's default filter, the last 24 hours, which matches them all)."""
    client = hub.instances.client
    select = ["PartitionKey", "RuntimeStatus"]
    t = time.perf_counter()
    n = 0
    rows = (client.query_entities("CreatedTime ge @since", parameters={"since": since}, select=select,
                                  results_per_page=1000) if since else
            client.list_entities(select=select, results_per_page=1000))
    async for _ in rows:
        n += 1
    assert n == TOTAL, n
    return n / (time.perf_counter() - t)


async def seconds(session: aiohttp.ClientSession, url: str, must_contain: str) -> float:
    t = time.perf_counter()
    async with session.get(url) as r:
        body = await r.text()
    elapsed = time.perf_counter() - t
    assert r.status == 200 and must_contain in body, (r.status, body[:300])
    return elapsed


async def run(env) -> list[Figure]:
    hub_name = "DashBench" + uuid.uuid4().hex[:6]
    async with TaskHub(env.account, hub_name) as hub:
        await hub.create_if_not_exists()
        t = time.perf_counter()
        await seed(hub)
        print(f"  seeded {TOTAL:,} instances in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
        manager = await InstanceManager.connect(env.account, hub_name)
        try:
            async with StandaloneServer(manager, DashboardConfig(), port=0) as server, \
                    aiohttp.ClientSession() as session:
                first_page, counts, hist, raw, raw_filtered = [], [], [], [], []
                for _ in range(ROUNDS):
                    raw.append(await raw_status_scan(hub))
                    raw_filtered.append(await raw_status_scan(hub, datetime.now(timezone.utc) - timedelta(days=1)))
                    first_page.append(await seconds(session, server.url, "dash-000049"))
                    counts.append(await seconds(session, server.url + "overview", f">{TOTAL}<"))
                    hist.append(await seconds(session, server.url + "overview/histogram", "labels"))
        finally:
            await manager.aclose()
        await hub.delete()
    raw_rate, filtered_rate = statistics.median(raw), statistics.median(raw_filtered)
    env.raw["dashboard: raw status scan (rows)"] = raw_rate
    env.raw["dashboard: raw status scan, last 24 h (rows)"] = filtered_rate
    count_s = statistics.median(counts)
    figures = env.figures()
    figures.extend([
        Figure(f"first list page ({TOTAL:,} instances, 50 rows)", 1000 * statistics.median(first_page), "ms",
               target="< 500 ms"),
        Figure("overview status counts", 1000 * count_s, "ms", target="< 2000 ms",
               note=f"= {TOTAL / count_s:,.0f} rows/s: {TOTAL / count_s / filtered_rate:.0%} of the raw scan with "
                    f"the same filter ({filtered_rate:,.0f}/s), {TOTAL / count_s / raw_rate:.0%} of an unfiltered "
                    f"one ({raw_rate:,.0f}/s)"),
        Figure("overview histogram data", 1000 * statistics.median(hist), "ms",
               note=f"= {TOTAL / statistics.median(hist):,.0f} rows/s (summary columns)"),
    ])
    return figures
