"""Queries, bulk jobs and counts (issue 13), each beside the raw Azurite rate of the same moment.

A hub is seeded with ``BENCH_BULK_INSTANCES`` instances (default 20,000):
half Running (no history: terminate only queues a message), half Completed
with 2 history rows each (an event and the sentinel). Then:

* a pushed-down query (``InstanceManager.find("status = Completed")``)
  beside a raw filtered scan with the same filter and columns, alternated
  five times, medians (target: within 10%);
* memory: peak RSS of ``funcpy durable count --group-by name`` and
  ``get-instances -q ... --all --output jsonl`` subprocesses at half and at
  the full size (target: flat);
* a bulk terminate job of the Running half (selection included) beside the
  raw queue send rate measured at the start of the run, same concurrency
  (target: >= 80%);
* a bulk purge job of the Completed half beside raw batch deletes (history
  transaction, then the row, keys known), measured just before and after
  (target: >= 70%).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from azure.data.tables import TransactionOperation

from durable_mgmt import BulkRequest, InstanceManager
from durable_mgmt.taskhub import TaskHub
from durable_mgmt.taskhub.history import SENTINEL_ROW_KEY, row_key
from durable_mgmt.taskhub.names import escape_key
from durable_mgmt.taskhub.scan import BASE_COLUMNS
from durable_mgmt.transports import StorageTransport

from .common import Figure

TOTAL = int(os.environ.get("BENCH_BULK_INSTANCES", "20000"))
CONCURRENCY = 16          # the raw queue send rate is measured with 16 in flight
SEED_CONCURRENCY = 32
RAW_SAMPLE = max(50, TOTAL // 40)
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
FUNCPY = Path(sys.executable).parent / "funcpy"


def iid(i: int) -> str:
    return f"b-{i:06d}"


async def seed(hub: TaskHub, ids: range, *, extra: str = "") -> None:
    sem = asyncio.Semaphore(SEED_CONCURRENCY)
    instances, history = hub.instances.client, hub.history.client

    async def one(i: int) -> None:
        pk = escape_key(iid(i) + extra)
        running = i % 2 == 0
        created = T0 + timedelta(seconds=i)
        row = {"PartitionKey": pk, "RowKey": "", "Name": f"Orch{i % 7}", "Version": "", "Input": '{"n":1}',
               "Output": "null" if running else '"done"', "RuntimeStatus": "Running" if running else "Completed",
               "CreatedTime": created, "LastUpdatedTime": created, "ExecutionId": "e", "Generation": 0,
               "TaskHubName": hub.name, "CustomStatus": '"step %d"' % (i % 5)}
        async with sem:
            if not running:
                await history.submit_transaction([
                    (TransactionOperation.CREATE, {"PartitionKey": pk, "RowKey": row_key(0), "EventType":
                                                   "ExecutionCompleted", "ExecutionId": "e", "Result": '"done"'}),
                    (TransactionOperation.CREATE, {"PartitionKey": pk, "RowKey": SENTINEL_ROW_KEY,
                                                   "ExecutionId": "e", "IsCheckpointComplete": True})])
            await instances.create_entity(row)

    await asyncio.gather(*(one(i) for i in ids))


def peak_rss_mb(args: list[str], env: dict[str, str]) -> float:
    proc = subprocess.Popen([str(FUNCPY), "durable", *args], env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"funcpy durable {' '.join(args)} failed: {proc.stderr.read().decode()[-2000:]}")
    proc.stderr.close()
    return usage.ru_maxrss / 1024


async def raw_scan(table) -> float:
    t, n = time.perf_counter(), 0
    async for _ in table.query_entities("RuntimeStatus eq @s", parameters={"s": "Completed"},
                                        select=list(BASE_COLUMNS), results_per_page=1000):
        n += 1
    return n / (time.perf_counter() - t)


async def find_rate(manager: InstanceManager) -> float:
    t, n = time.perf_counter(), 0
    async for _ in manager.find("status = Completed", fields=()):
        n += 1
    return n / (time.perf_counter() - t)


async def raw_send(hub: TaskHub, n: int = 500) -> float:
    """Messages/s sending terminate-sized messages to a control queue, CONCURRENCY in flight."""
    queue = hub.control_queue(0)
    body = '{"$type":"DurableTask.AzureStorage.MessageData","TaskMessage":{"Event":{"EventType":5}},"x":"' + "x" * 300 + '"}'
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(_):
        async with sem:
            await queue.send_message(body)

    t = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    rate = n / (time.perf_counter() - t)
    await queue.clear_messages()
    return rate


async def raw_delete(hub: TaskHub, ids: list[str]) -> float:
    """Rows/s deleting each instance's history (one transaction, keys known), then its row."""
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(instance_id: str) -> None:
        pk = escape_key(instance_id)
        async with sem:
            await hub.history.client.submit_transaction([
                (TransactionOperation.DELETE, {"PartitionKey": pk, "RowKey": k}) for k in (row_key(0), SENTINEL_ROW_KEY)])
            await hub.instances.client.delete_entity(pk, "")

    t = time.perf_counter()
    await asyncio.gather(*(one(i) for i in ids))
    return len(ids) * 3 / (time.perf_counter() - t)


async def run(env) -> list[Figure]:
    figures: list[Figure] = []
    hub_name = "Bulk" + uuid.uuid4().hex[:8]
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-{hub_name}"
    root.mkdir(parents=True, exist_ok=True)
    cli_env = {"AzureWebJobsStorage": env.account.connection_string}
    common = ["--task-hub-name", hub_name, "--script-root", str(root), "--output", "json"]
    counting = ["count", "-q", "createdTime > 2025-12-31", "--group-by", "name", *common]
    listing = ["get-instances", "-q", "status = Completed AND customStatus CONTAINS 'step'", "--all",
               *common[:-2], "--output", "jsonl"]
    half = TOTAL // 2

    async with TaskHub(env.account, hub_name) as hub:
        await hub.create_if_not_exists()
        manager = InstanceManager(StorageTransport(hub))
        try:
            t = time.perf_counter()
            await seed(hub, range(half))
            rss_count_half, rss_list_half = peak_rss_mb(counting, cli_env), peak_rss_mb(listing, cli_env)
            await seed(hub, range(half, TOTAL))
            seconds = time.perf_counter() - t
            figures.append(Figure(f"seed {TOTAL:,} instances", TOTAL / seconds, "instances/s", note=f"{seconds:.0f} s"))
            rss_count_full, rss_list_full = peak_rss_mb(counting, cli_env), peak_rss_mb(listing, cli_env)
            figures.append(Figure(f"count --group-by name peak RSS, {half:,} -> {TOTAL:,}",
                                  rss_count_full - rss_count_half, "MB growth",
                                  note=f"{rss_count_half:.1f} -> {rss_count_full:.1f} MB; target: flat"))
            figures.append(Figure(f"get-instances -q ... --output jsonl peak RSS, {half:,} -> {TOTAL:,}",
                                  rss_list_full - rss_list_half, "MB growth",
                                  note=f"{rss_list_half:.1f} -> {rss_list_full:.1f} MB; target: flat"))

            raws, finds = [], []
            for _ in range(5):
                raws.append(await raw_scan(hub.instances.client))
                finds.append(await find_rate(manager))
            key = f"bulk: filtered scan, {TOTAL // 1000}k hub (rows)"
            env.raw[key] = statistics.median(raws)
            figures.append(Figure("find('status = Completed'), pushed down", statistics.median(finds), "rows/s",
                                  raw=key, target=">= 90% of raw scan"))

            send_before = await raw_send(hub)
            t = time.perf_counter()
            marks = {}
            job = await manager.bulk(BulkRequest("terminate", "status = Running", concurrency=CONCURRENCY))
            info = await job.run(lambda i: marks.setdefault(i.state.value, time.perf_counter()))
            seconds = time.perf_counter() - t
            send_after = await raw_send(hub)
            assert info.done == half, info
            selecting = marks["Running"] - t
            key = "bulk: queue send, same moment"
            env.raw[key] = (send_before + send_after) / 2
            figures.append(Figure(f"bulk terminate of {half:,} (job, selection included)", half / seconds,
                                  "instances/s", raw=key, target=">= 80% of raw queue send",
                                  note=f"{seconds:.1f} s, of which selecting {selecting:.1f} s; raw send before "
                                       f"{send_before:,.0f}/s, after {send_after:,.0f}/s"))
            figures.append(Figure("  the same, acting only (after selection)", half / (seconds - selecting),
                                  "instances/s", raw=key))

            # Raw deletes on extra instances seeded for them, before and after the purge.
            await seed(hub, range(1, 4 * RAW_SAMPLE, 2), extra="r")
            extra = [iid(i) + "r" for i in range(1, 4 * RAW_SAMPLE, 2)]
            before = await raw_delete(hub, extra[:len(extra) // 2])
            t = time.perf_counter()
            job = await manager.bulk(BulkRequest("purge", "status = Completed AND NOT instanceId CONTAINS 'r'",
                                                 concurrency=CONCURRENCY))
            info = await job.run()
            seconds = time.perf_counter() - t
            after = await raw_delete(hub, extra[len(extra) // 2:])
            assert info.done == half, info
            key = "bulk: batch delete, history+row (rows)"
            env.raw[key] = (before + after) / 2
            figures.append(Figure(f"bulk purge of {half:,} (job, selection included)", half * 3 / seconds, "rows/s",
                                  raw=key, target=">= 70% of raw batch delete",
                                  note=f"{half / seconds:,.0f} instances/s, {seconds:.1f} s; raw before "
                                       f"{before:,.0f}/s, after {after:,.0f}/s"))
        finally:
            await hub.delete()
    return figures
