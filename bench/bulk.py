"""Queries, bulk jobs and counts (issue 13), each beside the raw Azurite rate of the same moment.

A hub is seeded with ``BENCH_BULK_INSTANCES`` instances (default 20,000):
half Running (no history: terminate only queues a message), half Completed
with 2 history rows each (an event and the sentinel). Then:

* memory: peak RSS of three ``funcpy durable`` subprocesses, at half and at
  the full size (10,000 -> 20,000 by default; target: flat): ``count
  --group-by name``, ``get-instances -q ... --all --output jsonl`` and a
  bulk job (``bulk suspend`` of the Running instances: with no host running,
  it only queues messages, so the rows stay as seeded);
* a pushed-down query (``InstanceManager.find("status = Completed")``)
  beside a raw filtered scan with the same filter and columns, in
  ``BENCH_FIND_ROUNDS`` (default 11) paired rounds, which of the two goes
  first alternating: the figure is the median of the paired ratios, with
  their spread (single pairs swung from 65% to 143% on a shared machine;
  target: within 10%);
* bulk terminate of the Running half, as five jobs of a fifth each (by
  creation time, pushed down to storage and checked exactly here; selection
  included, and from the first recorded page on), between raw queue sends of the very message a job
  sends (the product's own encoding of a terminate, with the provider's
  infinite time-to-live, the same concurrency; the smaller stand-in message
  of earlier runs is sent too, for comparison): each job is compared with
  the raw rate just before and just after it, since the load of a shared
  machine drifts within a run (target: >= 80%);
* bulk purge of the Completed half the same way, between raw batch deletes
  (history transaction, then the row, keys known; target: >= 70%).

``BENCH_BULK_INSTANCES=4000`` makes a quick run.

No queue message is deleted until the end, and the bench has an Azurite of
its own, stopped (not cleaned up) at the end. In-memory Azurite keeps each
message in an extent of its own, and its queue GC (every 60 s) deletes the
extents of deleted messages at a cost that grows with every extent it holds:
with 3,000 messages held, clearing 1,000 stalled every request ~40 s when
the GC ran (19 s of Azurite CPU). The memory phase's ``bulk suspend`` leaves
up to 15,000 messages (no host consumes them), and clearing the control
queue after each raw send made the 20,000-instance run's GC stall Azurite
for minutes at a time: its terminate rounds had not ended after 27 minutes.
Sending does not slow with the depth of the queues (1.4-2.7 ms of Azurite
CPU per send from 0 to 15,000 held), so the raw sends just add to them. A
real Storage account has no such GC; a host consuming the messages in
Azurite would meet it too, which is why the bench runs no host here.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.data.tables import TransactionOperation

from durable_mgmt import BulkRequest, InstanceManager
from durable_mgmt.taskhub import TaskHub
from durable_mgmt.taskhub.history import SENTINEL_ROW_KEY, row_key
from durable_mgmt.taskhub.events import EventType, event
from durable_mgmt.taskhub.messages import TaskMessage, queue_body
from durable_mgmt.taskhub.names import escape_key
from durable_mgmt.taskhub.partitions import PartitionManagement
from durable_mgmt.taskhub.scan import BASE_COLUMNS
from durable_mgmt.transports import StorageTransport

from funchost.azurite import Azurite

from .common import BenchEnv, Figure, cli_hub, peak_rss_mb

TOTAL = int(os.environ.get("BENCH_BULK_INSTANCES", "20000"))
CONCURRENCY = 16          # the raw queue send rate is measured with 16 in flight
SEED_CONCURRENCY = 32
RAW_SAMPLE = max(50, TOTAL // 100)  # instances deleted raw around each purge job
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
SEED_ATTEMPTS = 4         # a loaded Azurite can time out a request; creating again is harmless (409 = done)


def iid(i: int) -> str:
    return f"b-{i:06d}"


async def _again(make, what: str) -> None:
    """Run ``make()``, again after a timeout (what a loaded machine does to Azurite); 409 means done."""
    for attempt in range(SEED_ATTEMPTS):
        try:
            await make()
            return
        except HttpResponseError as e:
            if e.status_code == 409:
                return  # written by the attempt that timed out
            raise
        except (ServiceRequestError, ServiceResponseError) as e:
            if attempt == SEED_ATTEMPTS - 1:
                raise RuntimeError(f"seeding: {what} failed {SEED_ATTEMPTS} times ({e}); "
                                   "Azurite is overloaded: retry on a quieter machine") from e
            await asyncio.sleep(1 + attempt)


async def seed(hub: TaskHub, ids: range, *, extra: str = "", created_offset: timedelta = timedelta()) -> None:
    """Instance rows (one request each: every row is its own partition, so no transaction can hold two)
    and, for the Completed ones, their 2 history rows in one transaction; SEED_CONCURRENCY in flight."""
    sem = asyncio.Semaphore(SEED_CONCURRENCY)
    instances, history = hub.instances.client, hub.history.client
    done = [0]

    async def one(i: int) -> None:
        pk = escape_key(iid(i) + extra)
        running = i % 2 == 0
        created = T0 + timedelta(seconds=i) + created_offset
        row = {"PartitionKey": pk, "RowKey": "", "Name": f"Orch{i % 7}", "Version": "", "Input": '{"n":1}',
               "Output": "null" if running else '"done"', "RuntimeStatus": "Running" if running else "Completed",
               "CreatedTime": created, "LastUpdatedTime": created, "ExecutionId": "e", "Generation": 0,
               "TaskHubName": hub.name, "CustomStatus": '"step %d"' % (i % 5)}
        async with sem:
            if not running:
                await _again(lambda: history.submit_transaction([
                    (TransactionOperation.CREATE, {"PartitionKey": pk, "RowKey": row_key(0), "EventType":
                                                   "ExecutionCompleted", "ExecutionId": "e", "Result": '"done"'}),
                    (TransactionOperation.CREATE, {"PartitionKey": pk, "RowKey": SENTINEL_ROW_KEY,
                                                   "ExecutionId": "e", "IsCheckpointComplete": True})]),
                             f"the history of {pk}")
            await _again(lambda: instances.create_entity(row), f"the row of {pk}")
        done[0] += 1
        if done[0] % 5000 == 0:
            print(f"  ... seeded {done[0]:,} of {len(ids):,}", file=sys.stderr, flush=True)

    for start in range(0, len(ids), 5000):  # a few thousand coroutines at a time, not all of them at once
        await asyncio.gather(*(one(i) for i in ids[start:start + 5000]))


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


def terminate_body(hub: TaskHub) -> str:
    """The queue body the product sends to terminate one of the bench's instances, encoded by the product
    once: the raw send carries the same bytes, so it is like for like. (A 395-byte stand-in, what earlier
    runs sent, was sent at the same rate within 1% on the idle 20,000-instance run, 735 and 726/s; a single
    measurement on a loaded machine had put it a fifth faster.)"""
    return queue_body(TaskMessage(event(EventType.ExecutionTerminated, Input=None), iid(0), None).encode(),
                      base64_encoded=hub.layout.management == PartitionManagement.BLOB)


# What earlier runs sent raw (before 2026-11-30, later): a stand-in smaller than a terminate message.
STAND_IN_BODY = ('{"$type":"DurableTask.AzureStorage.MessageData","TaskMessage":{"Event":{"EventType":5}},"x":"'
                 + "x" * 300 + '"}')


async def raw_send(hub: TaskHub, body: str, n: int = 500) -> float:
    """Messages/s sending ``body`` to a control queue, CONCURRENCY in flight, each with the infinite
    time-to-live every send of the provider carries (DurableTask.AzureStorage ``Storage/Queue.cs``
    ``AddMessageAsync``: ``TimeSpan.FromSeconds(-1)``), as the product's terminate does. (With 16 in
    flight, a send without it ran at the same rate within noise: 990/s and 1,002/s, 2026-11-30.)
    """
    queue = hub.control_queue(0)
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(_):
        async with sem:
            await queue.send_message(body, time_to_live=-1)

    t = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    # Not cleared: a deletion makes in-memory Azurite's queue GC stall it later (see the docstring).
    return n / (time.perf_counter() - t)


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


ROUNDS = 5
# Paired rounds of the pushed-down query (each a raw scan and a find): a single pair swung from 65% to 143% on
# a shared machine, so the figure is the median of many pairs, with their spread.
FIND_ROUNDS = int(os.environ.get("BENCH_FIND_ROUNDS", "11"))


def _slice(r: int) -> str:
    """The instances created in the r-th of ROUNDS consecutive spans (the seed gives instance i the
    creation time T0 + i s). Storage evaluates it, as it does the status, widened by a millisecond each
    way; the rows it returns are checked exactly here (``query.plan``: Azurite compares times at
    millisecond precision), which reads only their key and CreatedTime. An id range would not be pushed
    down at all: ids are compared in this process (escaping does not keep their order), so each job would
    read every Running row of the hub to select a fifth of them."""
    lo, hi = (T0 + timedelta(seconds=k * TOTAL // ROUNDS) for k in (r, r + 1))
    return f"createdTime >= '{lo.isoformat()}' AND createdTime < '{hi.isoformat()}'"


def _measured(what: str) -> None:
    """A measurement as it is taken (stdout, beside the figures): a run stopped midway keeps it."""
    print(f"    {what}", flush=True)


async def _alternate(raw, act, what: str, unit: str, per_instance: int,
                     ) -> tuple[list[float], list[tuple[int, float, float]]]:
    """``act(r)`` for each round, with ``raw()`` before the first and after each: every round has the raw
    rate just before and just after it (the machine's load drifts within a run). Each is printed as measured."""
    raws, jobs = [await raw()], []
    _measured(f"raw {what} {raws[0]:,.0f} {unit}")
    for r in range(ROUNDS):
        done, seconds, acting = job = await act(r)
        jobs.append(job)
        raws.append(await raw())
        around = (raws[r] + raws[r + 1]) / 2
        rate = done * per_instance / acting
        _measured(f"job {r + 1}/{ROUNDS}: {done:,} instances in {seconds:.1f} s ({acting:.1f} s acting) = "
                  f"{rate:,.0f} {unit} acting, {rate / around:.0%} of the raw rate around it; "
                  f"raw {what} after it {raws[-1]:,.0f} {unit}")
    return raws, jobs


async def _timed_job(manager: InstanceManager, action: str, query: str) -> tuple[int, float, float]:
    """Instances done, seconds in all, and seconds from the first recorded page on (a job is Running from
    then: it acts on each page of its selection as it is recorded, while the scan goes on) of one bulk job."""
    marks: dict[str, float] = {}
    t = time.perf_counter()
    job = await manager.bulk(BulkRequest(action, query, concurrency=CONCURRENCY))
    info = await job.run(lambda i: marks.setdefault(i.state.value, time.perf_counter()))
    end = time.perf_counter()
    assert info.done == info.matched > 0 and not info.failed, info
    return info.done, end - t, end - marks["Running"]


def _job_figures(figures: list[Figure], env, action: str, raws: list[float], jobs, key: str, unit: str,
                 per_instance: int, target: str) -> None:
    env.raw[key] = statistics.median(raws)
    n = sum(j[0] for j in jobs)
    ratios = [j[0] * per_instance / j[2] / ((raws[r] + raws[r + 1]) / 2) for r, j in enumerate(jobs)]
    with_selection = [j[0] * per_instance / j[1] / ((raws[r] + raws[r + 1]) / 2) for r, j in enumerate(jobs)]

    def spread(values: list[float]) -> str:
        return (f"per job vs the raw rate around it: {', '.join(f'{v:.0%}' for v in values)} "
                f"(median {statistics.median(values):.0%})")

    figures.append(Figure(f"bulk {action} of {n:,} ({len(jobs)} jobs, selection included)",
                          n * per_instance / sum(j[1] for j in jobs), unit, raw=key, target=target,
                          note=f"{sum(j[1] for j in jobs):.1f} s; {spread(with_selection)}"))
    figures.append(Figure("  the same, from the first recorded page", n * per_instance / sum(j[2] for j in jobs),
                          unit, raw=key, target=target,
                          note=f"{spread(ratios)}; raw {min(raws):,.0f}-{max(raws):,.0f}/s"))


def _spread(products: list[float], raws: list[float]) -> str:
    ratios = sorted(p / r for p, r in zip(products, raws))
    q = len(ratios) // 4
    return (f"paired ratios sorted: {', '.join(f'{v:.0%}' for v in ratios)}; middle half "
            f"{ratios[q]:.0%}-{ratios[-1 - q]:.0%}; raw {min(raws):,.0f}-{max(raws):,.0f}/s")


def _say(what: str) -> None:
    print(f"  ... {what}", file=sys.stderr, flush=True)


def _growth(figures: list[Figure], what: str, half: int, sizes: tuple[float, float]) -> None:
    small, big = sizes
    figures.append(Figure(f"{what} peak RSS, {half:,} -> {TOTAL:,}", big - small, "MB growth",
                          note=f"{small:.1f} -> {big:.1f} MB (x{big / small:.3f}); target: flat"))


async def run(env) -> list[Figure]:
    # An Azurite of its own, stopped at the end with everything in it: deleting the hub's queues would
    # make the GC of the shared one stall the benchmarks after this one (see the docstring).
    own = BenchEnv(azurite=Azurite.start())
    try:
        return await _run(env, own)
    finally:
        own.azurite.stop()


async def _run(env, own: BenchEnv) -> list[Figure]:
    figures = env.figures()
    hub_name, cli_env, common = cli_hub(own, "Bulk")
    counting = ["count", "-q", "createdTime > 2025-12-31", "--group-by", "name", *common]
    listing = ["get-instances", "-q", "status = Completed AND customStatus CONTAINS 'step'", "--all",
               *common[:-2], "--output", "jsonl"]
    suspending = ["bulk", "suspend", "-q", "status = Running", "--yes", "--concurrency", str(CONCURRENCY), *common]
    half = TOTAL // 2

    def memory(size: int) -> list[float]:
        sizes = [peak_rss_mb(args, cli_env)[0] for args in (counting, listing, suspending)]
        _measured(f"peak RSS at {size:,} instances: count {sizes[0]:.1f} MB, jsonl listing {sizes[1]:.1f} MB, "
                  f"bulk suspend job {sizes[2]:.1f} MB")
        return sizes

    async with TaskHub(own.account, hub_name) as hub:
        await hub.create_if_not_exists()
        manager = InstanceManager(StorageTransport(hub))
        t = time.perf_counter()
        await seed(hub, range(half))
        seeding = time.perf_counter() - t
        _say(f"peak RSS of count, listing and a bulk job at {half:,} instances")
        at_half = memory(half)
        t = time.perf_counter()
        await seed(hub, range(half, TOTAL))
        seeding += time.perf_counter() - t
        figures.append(Figure(f"seed {TOTAL:,} instances", TOTAL / seeding, "instances/s",
                              note=f"{seeding:.0f} s"))
        _say(f"the same at {TOTAL:,}")
        at_full = memory(TOTAL)
        _growth(figures, "count --group-by name", half, (at_half[0], at_full[0]))
        _growth(figures, "get-instances -q ... --output jsonl", half, (at_half[1], at_full[1]))
        _growth(figures, f"bulk suspend job ({half // 2:,} -> {half:,} acted on)", half, (at_half[2], at_full[2]))

        _say("pushed-down query beside the raw filtered scan")
        raws, finds = [], []
        for r in range(FIND_ROUNDS):
            # Which goes first alternates, so neither always meets the machine a moment later.
            if r % 2 == 0:
                raws.append(await raw_scan(hub.instances.client))
                finds.append(await find_rate(manager))
            else:
                finds.append(await find_rate(manager))
                raws.append(await raw_scan(hub.instances.client))
            _measured(f"round {r + 1}/{FIND_ROUNDS}: raw filtered scan {raws[-1]:,.0f} rows/s, find "
                      f"{finds[-1]:,.0f} rows/s ({finds[-1] / raws[-1]:.0%})")
        key = f"bulk: filtered scan, {TOTAL:,}-instance hub (rows)"
        env.raw[key] = statistics.median(raws)
        figures.append(Figure("find('status = Completed'), pushed down", statistics.median(finds), "rows/s",
                              raw=key, note="medians of both"))
        ratios = sorted(f / r for f, r in zip(finds, raws))
        figures.append(Figure(f"  paired ratio find / raw scan (median of {FIND_ROUNDS})",
                              100 * statistics.median(ratios), "%", target=">= 90%", note=_spread(finds, raws)))

        _say(f"bulk terminate, {ROUNDS} jobs between raw queue sends")
        # Each job acts on a fifth of the Running half, between raw sends of the very message it sends.
        body = terminate_body(hub)
        stand_in: list[float] = []

        async def both_sends() -> float:
            stand_in.append(await raw_send(hub, STAND_IN_BODY))
            return await raw_send(hub, body)

        raws, jobs = await _alternate(both_sends, lambda r: _timed_job(
            manager, "terminate", f"status = Running AND {_slice(r)}"), "send of the terminate message", "/s", 1)
        _job_figures(figures, env, "terminate", raws, jobs, "bulk: queue send of the terminate message",
                     "instances/s", 1, ">= 80% of raw queue send")
        key = f"bulk: queue send of the {len(STAND_IN_BODY)}-byte stand-in of earlier runs, same moment"
        env.raw[key] = statistics.median(stand_in)
        acting = sum(j[0] for j in jobs) / sum(j[2] for j in jobs)
        figures.append(Figure("  the same, from the first page, beside the earlier runs' raw send", acting, "instances/s",
                              raw=key, note=f"stand-in sends {min(stand_in):,.0f}-{max(stand_in):,.0f}/s; the "
                              f"terminate message is {len(body)} bytes"))

        _say(f"bulk purge, {ROUNDS} jobs between raw batch deletes")
        # Raw deletes on extra instances seeded for them, between the purge jobs: created a day before T0,
        # so no job's span holds them.
        extra = [iid(i) + "r" for i in range(1, 2 * RAW_SAMPLE * (ROUNDS + 1), 2)]
        await seed(hub, range(1, 2 * RAW_SAMPLE * (ROUNDS + 1), 2), extra="r", created_offset=-timedelta(days=1))
        samples = iter([extra[k:k + RAW_SAMPLE] for k in range(0, len(extra), RAW_SAMPLE)])
        raws, jobs = await _alternate(lambda: raw_delete(hub, next(samples)), lambda r: _timed_job(
            manager, "purge", f"status = Completed AND {_slice(r)}"),
            "batch delete", "rows/s", 3)
        _job_figures(figures, env, "purge", raws, jobs, "bulk: batch delete, history+row (rows)", "rows/s", 3,
                     ">= 70% of raw batch delete")
    return figures
