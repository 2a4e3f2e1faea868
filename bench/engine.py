"""Durable engine throughput and latency on Azurite (issue 3's figures).

Runs one engine in this process on a fresh hub, with the orchestrations of
bench/apps/bench_app, and reports: sequential activities/s for one instance,
fan-out/fan-in activities/s, external events/s to one instance,
HelloSequence5 orchestrations/s, idle start-to-completed latency, and
storage requests per activity.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from pathlib import Path

from durable_mgmt.models import RuntimeStatus
from durable_mgmt.taskhub import TaskHub, TaskHubClient
from funchost.engine import Engine
from funchost.loader import load_app

from .common import Figure

APP = Path(__file__).parent / "apps" / "bench_app"


class RequestCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, response) -> None:
        self.count += 1


async def wait_done(client: TaskHubClient, iid: str, timeout: float = 300, poll: float = 0.005) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            s = await client.get_status(iid, show_input=False, show_output=False)
            if s.runtime_status.is_terminal:
                if s.runtime_status != RuntimeStatus.COMPLETED:
                    raise RuntimeError(f"{iid} ended {s.runtime_status}")
                return time.perf_counter()
        except RuntimeError:
            raise
        except Exception:
            pass
        await asyncio.sleep(poll)
    raise TimeoutError(iid)


async def run(env) -> list[Figure]:
    counter = RequestCounter()
    account = env.account.with_response_hook(counter)
    figures = env.figures()
    index = load_app(APP)
    async with TaskHub(account, "Bench" + uuid.uuid4().hex[:8]) as hub, \
            TaskHub(env.account, hub.name) as client_hub:
        engine = Engine(hub, index, worker_id="bench")
        await engine.start()
        client = TaskHubClient(client_hub)  # its requests are not counted
        engine.router.observe(client_hub)  # its sends wake the engine, as a host's own client's do
        try:
            # Warm-up: imports, first episodes.
            await wait_done(client, await client.start("OneActivity"))

            before, t0 = counter.count, time.perf_counter()
            iid = await client.start("Sequential", 100)
            t1 = await wait_done(client, iid, poll=0.02)
            figures.append(Figure("sequential activities, one instance (100)", 100 / (t1 - t0), "activities/s",
                                  raw="queue receive+delete", target=">= 40/s (Azure Storage provider: 5/s)"))
            figures.append(Figure("storage requests per sequential activity", (counter.count - before) / 100,
                                  "requests", note="engine side, polling included"))

            t0 = time.perf_counter()
            iid = await client.start("FanOutFanIn", 500)
            t1 = await wait_done(client, iid, poll=0.02)
            figures.append(Figure("fan-out/fan-in (500 activities)", 500 / (t1 - t0), "activities/s",
                                  raw="queue receive+delete", target=">= 150/s (provider: 100-150/s)"))

            iid = await client.start("EventCounter", 200)
            while (await client.get_status(iid)).runtime_status != RuntimeStatus.RUNNING:
                await asyncio.sleep(0.01)
            t0 = time.perf_counter()
            sem = asyncio.Semaphore(16)

            async def tick(i):
                async with sem:
                    await client.raise_event(iid, "tick", i)

            await asyncio.gather(*(tick(i) for i in range(200)))
            t1 = await wait_done(client, iid, poll=0.02)
            figures.append(Figure("external events to one instance (200)", 200 / (t1 - t0), "events/s",
                                  raw="queue send", target=">= 100/s (provider: 50/s)"))

            t0 = time.perf_counter()
            starts = asyncio.Semaphore(32)

            async def start_one():
                async with starts:
                    return await client.start("HelloSequence5")

            ids = await asyncio.gather(*(start_one() for _ in range(500)))
            for iid in ids:
                await wait_done(client, iid, poll=0.05)
            t1 = time.perf_counter()
            figures.append(Figure("HelloSequence5 orchestrations (500)", 500 / (t1 - t0), "orchestrations/s",
                                  target="(Netherite EP1: 50/s)"))
            figures.append(Figure("  = activities", 2500 / (t1 - t0), "activities/s", raw="queue receive+delete"))

            await asyncio.sleep(3)  # let the pollers back off: an idle host
            latencies = []
            for _ in range(40):
                t0 = time.perf_counter()
                iid = await client.start("OneActivity")
                latencies.append((await wait_done(client, iid, poll=0.002)) - t0)
                await asyncio.sleep(0.3)
            latencies.sort()
            figures.append(Figure("idle start-to-completed latency p50", 1000 * statistics.median(latencies), "ms",
                                  target="<= 150 ms"))
            figures.append(Figure("idle start-to-completed latency p99", 1000 * latencies[int(0.99 * len(latencies)) - 1],
                                  "ms"))
        finally:
            await engine.stop()
            await hub.delete()
    return figures
