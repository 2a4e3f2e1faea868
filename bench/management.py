"""`funcpy durable` at scale (issue 6's figures), each beside the raw Azurite rate of the same moment.

A hub is seeded with 20,000 instances of 10 history rows each (9 events and
the sentinel), half of them Completed. Then, on the full hub:

* ``get-instances --all --runtime-status completed`` beside a raw filtered
  scan (azure-data-tables ``query_entities``, same filter and columns);
* ``count`` beside a raw scan of the whole Instances table;
* ``purge-history`` of the 10,000 Completed instances beside raw batch
  deletes (each instance's history in one transaction with its keys known,
  then its row), measured just before and just after the purge, because
  Azurite slows down as its tables grow and the purge runs from the full
  size down to half of it.

The commands run in-process (the click group, stdout discarded), so the
figures measure the CLI and the task hub layer rather than interpreter
start-up, which is reported once on its own. Listing and count alternate
with their raw scan five times and report medians: the machine is shared. Memory: the peak RSS of a
``funcpy durable`` subprocess listing and counting, at 10,000 and at 20,000
instances; flat means the same peak at both sizes.

``BENCH_MGMT_INSTANCES`` scales the hub down for a quick run (default 20000).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

from azure.data.tables import TransactionOperation

from durable_mgmt.cli import durable
from durable_mgmt.taskhub import TaskHub, TaskHubClient
from durable_mgmt.taskhub.events import EventType, OrchestrationStatus, event, execution_started
from durable_mgmt.taskhub.history import SENTINEL_ROW_KEY, row_key
from durable_mgmt.taskhub.instances import SUMMARY_COLUMNS
from durable_mgmt.taskhub.names import escape_key

from .common import Figure, cli_hub, peak_rss_mb

TOTAL = int(os.environ.get("BENCH_MGMT_INSTANCES", "20000"))
EVENTS = 9                # + the sentinel = 10 history rows per instance
RAW_SAMPLE = TOTAL // 40  # instances deleted by raw calls before, and again after, the purge
CONCURRENCY = 32          # requests in flight, for seeding, raw deletes and the purge alike
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
# Statuses of the half that is not purged; the raw samples are Terminated ones.
OTHERS = ("Running", "Failed", "Terminated", "Pending")


def status_of(i: int) -> str:
    return "Completed" if i % 2 == 0 else OTHERS[(i // 2) % len(OTHERS)]


def instance_id(i: int) -> str:
    return f"inst-{i:06d}"


async def seed(hub: TaskHub, ids: range) -> None:
    """Write instances as the host leaves them: the row, and the history in one transaction each.

    Rows are the task hub layer's own (``HistoryEvent.to_row``), inserted with
    CREATE rather than the engine's UPSERT: Azurite finds an entity by a scan
    over every row with the same RowKey, once per insert but twice per upsert,
    and seeding is most of the run's time.
    """
    sem = asyncio.Semaphore(CONCURRENCY)
    history, instances = hub.history.client, hub.instances.client
    done = [0]

    async def one(i: int) -> None:
        iid, status = instance_id(i), status_of(i)
        pk = escape_key(iid)
        execution_id = uuid.uuid5(uuid.NAMESPACE_URL, iid).hex
        created = T0 + timedelta(seconds=i)
        events = [event(EventType.OrchestratorStarted, timestamp=created),
                  execution_started(iid, execution_id, "Bench", '{"n":1}', generation=0, timestamp=created)]
        for k in range(3):
            events += [event(EventType.TaskScheduled, k, created, Name="Step", Version="", Input='"x"'),
                       event(EventType.TaskCompleted, -1, created, TaskScheduledId=k, Result='"done"')]
        events.append(event(EventType.ExecutionCompleted, 7, created, OrchestrationStatus=OrchestrationStatus.Completed,
                            Result='"done"'))
        rows = [e.to_row(pk, row_key(n), execution_id) for n, e in enumerate(events[:EVENTS])]
        rows.append({"PartitionKey": pk, "RowKey": SENTINEL_ROW_KEY, "ExecutionId": execution_id,
                     "IsCheckpointComplete": True, "CheckpointCompletedTimestamp": created})
        row = {"PartitionKey": pk, "RowKey": "", "Name": "Bench", "Version": "", "Input": '{"n":1}',
               "Output": '"done"', "RuntimeStatus": status, "CreatedTime": created, "LastUpdatedTime": created,
               "ExecutionId": execution_id, "Generation": 0, "TaskHubName": hub.name, "CustomStatus": "null"}
        async with sem:
            await history.submit_transaction([(TransactionOperation.CREATE, r) for r in rows])
            await instances.create_entity(row)
        done[0] += 1
        if done[0] % (TOTAL // 10) == 0:
            print(f"  ... seeded {ids.start + done[0]:,} of {TOTAL:,} instances", file=sys.stderr, flush=True)

    await asyncio.gather(*(one(i) for i in ids))


# --- the CLI, in-process -------------------------------------------------------------------


class _Sink:
    """Stands in for stdout: counts what the command writes, keeps nothing."""

    def __init__(self) -> None:
        self.chars = 0

    def write(self, text: str) -> int:
        self.chars += len(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _invoke(args: list[str], env: dict[str, str]) -> float:
    sink = _Sink()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        t = time.perf_counter()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(_Sink()):  # progress lines too
            durable.main(args=args, prog_name="funcpy durable", standalone_mode=False)
        return time.perf_counter() - t
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


async def cli_seconds(args: list[str], env: dict[str, str]) -> float:
    """Wall time of ``funcpy durable <args>`` run in-process (its own event loop, in a thread)."""
    return await asyncio.to_thread(_invoke, args, env)


async def cli_rate(rows: int, args: list[str], env: dict[str, str]) -> float:
    return rows / await cli_seconds(args, env)


# --- raw Azurite, straight azure-data-tables calls ---------------------------------------------


async def raw_scan(table, text: str | None, params: dict, select: list[str]) -> float:
    t, n = time.perf_counter(), 0
    items = (table.query_entities(text, parameters=params, select=select, results_per_page=1000) if text
             else table.list_entities(select=select, results_per_page=1000))
    async for _ in items:
        n += 1
    return n / (time.perf_counter() - t)


async def raw_delete(history, instances, ids: list[int]) -> float:
    """Rows/s deleting each instance's history (one transaction, keys known) and then its row."""
    sem = asyncio.Semaphore(CONCURRENCY)
    keys = [row_key(k) for k in range(EVENTS)] + [SENTINEL_ROW_KEY]

    async def one(i: int) -> None:
        pk = escape_key(instance_id(i))
        async with sem:
            await history.submit_transaction([(TransactionOperation.DELETE, {"PartitionKey": pk, "RowKey": k})
                                              for k in keys])
            await instances.delete_entity(pk, "")

    t = time.perf_counter()
    await asyncio.gather(*(one(i) for i in ids))
    return len(ids) * (len(keys) + 1) / (time.perf_counter() - t)


async def paired(rounds: int, raw, product) -> tuple[float, float]:
    """Median rates of ``raw()`` and ``product()`` run alternately, so both see the same machine load.

    The machine is shared (2 cores, other work running): single runs swing by
    +-20 %, alternating pairs and medians keep the ratio meaningful.
    """
    raws, products = [], []
    for _ in range(rounds):
        raws.append(await raw())
        products.append(await product())
    return statistics.median(raws), statistics.median(products)


# --- the run ---------------------------------------------------------------------------------------


async def run(env) -> list[Figure]:
    figures = env.figures()
    hub_name, cli_env, common = cli_hub(env, "Mgmt")
    listing = ["get-instances", "--all", "--runtime-status", "completed", *common]
    counting = ["count", *common]
    half = TOTAL // 2
    raw_ids = [i for i in range(TOTAL) if status_of(i) == "Terminated"][:2 * RAW_SAMPLE]

    async with TaskHub(env.account, hub_name) as hub:
        await hub.create_if_not_exists()
        try:
            t = time.perf_counter()
            await seed(hub, range(half))
            rss_list_half, _ = peak_rss_mb(listing, cli_env)
            rss_count_half, _ = peak_rss_mb(counting, cli_env)
            await seed(hub, range(half, TOTAL))
            seeded = time.perf_counter() - t
            figures.append(Figure(f"seed {TOTAL:,} instances x {EVENTS + 1} history rows", TOTAL / seeded,
                                  "instances/s", note=f"{seeded:.0f} s, {CONCURRENCY} in flight"))
            rss_list_full, list_wall = peak_rss_mb(listing, cli_env)
            rss_count_full, _ = peak_rss_mb(counting, cli_env)
            _, help_wall = peak_rss_mb(["--help"], cli_env)

            instances, history = hub.instances.client, hub.history.client
            completed = half
            key = f"mgmt: filtered scan, {TOTAL // 1000}k hub (rows)"
            env.raw[key], listed = await paired(
                5, lambda: raw_scan(instances, "RuntimeStatus eq @s", {"s": "Completed"}, SUMMARY_COLUMNS),
                lambda: cli_rate(completed, listing, cli_env))
            figures.append(Figure("get-instances --all --runtime-status completed", listed, "rows/s", raw=key,
                                  target=">= 80% of raw scan",
                                  note=f"{completed:,} of {TOTAL:,}; as a subprocess {list_wall:.1f} s "
                                       f"(start-up {help_wall:.1f} s)"))

            key = f"mgmt: key+status scan, {TOTAL // 1000}k hub (rows)"
            env.raw[key], counted = await paired(
                5, lambda: raw_scan(instances, None, {}, ["PartitionKey", "RuntimeStatus"]),
                lambda: cli_rate(TOTAL, counting, cli_env))
            figures.append(Figure("count (per runtime status)", counted, "rows/s", raw=key, target=">= 80% of raw scan"))

            figures.append(Figure(f"get-instances --all peak RSS, {half:,} -> {TOTAL:,} instances",
                                  rss_list_full - rss_list_half, "MB growth",
                                  note=f"{rss_list_half:.1f} MB -> {rss_list_full:.1f} MB; target: flat"))
            figures.append(Figure(f"count peak RSS, {half:,} -> {TOTAL:,} instances",
                                  rss_count_full - rss_count_half, "MB growth",
                                  note=f"{rss_count_half:.1f} MB -> {rss_count_full:.1f} MB; target: flat"))

            before = await raw_delete(history, instances, raw_ids[:RAW_SAMPLE])
            purge = ["purge-history", "--runtime-status", "completed", "--yes", *common]
            seconds = await cli_seconds(purge, cli_env)
            after = await raw_delete(history, instances, raw_ids[RAW_SAMPLE:])
            key = "mgmt: batch delete, history+row (rows)"
            env.raw[key] = (before + after) / 2
            purged_rows = completed * (EVENTS + 2)  # history rows + the Instances row
            figures.append(Figure(f"purge-history of {completed:,} instances", purged_rows / seconds, "rows/s",
                                  raw=key, target=">= 70% of raw batch delete",
                                  note=f"{completed / seconds:,.0f} instances/s, {seconds:.0f} s; raw before "
                                       f"{before:,.0f}/s, after {after:,.0f}/s"))

            client = TaskHubClient(hub)
            left = sum((await client.count()).values())
            expected = TOTAL - completed - 2 * RAW_SAMPLE
            if left != expected:
                raise RuntimeError(f"after the purge {left} instances are left, expected {expected}")
        finally:
            await hub.delete()
    return figures
