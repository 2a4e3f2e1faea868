"""Shared benchmark machinery: a fresh Azurite, the raw Azurite rates, figures and the report.

Raw rates are measured with the Azure SDKs directly (no durable_mgmt code),
with the same concurrency the product uses, so each product figure can be
read as a fraction of what the emulator itself allows on this machine.
"""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from azure.data.tables import TransactionOperation
from funchost.azurite import Azurite


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    raw: str | None = None          # key into env.raw: the raw Azurite rate to compare with
    target: str | None = None       # human-readable target
    note: str = ""


@dataclass
class BenchEnv:
    """A fresh in-memory Azurite for the whole run, plus the raw rates measured on it."""

    azurite: Azurite | None = None
    raw: dict[str, float] = field(default_factory=dict)

    async def __aenter__(self) -> "BenchEnv":
        self.azurite = Azurite.start()
        self.raw = await measure_raw_rates(self.azurite.account)
        return self

    async def __aexit__(self, *exc) -> None:
        self.azurite.stop()

    @property
    def account(self):
        return self.azurite.account

    def figures(self) -> LiveFigures:
        """An empty list of figures for a benchmark: each is printed as it is appended."""
        return LiveFigures(self)

    def describe(self) -> str:
        lines = [f"date {date.today().isoformat()}, {platform.node()}: {os.cpu_count()} cores, "
                 f"Python {platform.python_version()}, {platform.machine()}",
                 "raw Azurite rates (Azure SDK for Python, async):"]
        lines += [f"  {k:<34} {v:>10,.0f} /s" for k, v in self.raw.items()]
        return "\n".join(lines)


FUNCPY = Path(sys.executable).parent / "funcpy"


def cli_hub(env: BenchEnv, prefix: str) -> tuple[str, dict[str, str], list[str]]:
    """A fresh hub name for a benchmark, the environment and the common options of ``funcpy durable`` on it."""
    hub_name = prefix + uuid.uuid4().hex[:8]
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-{hub_name}"
    root.mkdir(parents=True, exist_ok=True)
    cli_env = {"AzureWebJobsStorage": env.account.connection_string}
    return hub_name, cli_env, ["--task-hub-name", hub_name, "--script-root", str(root), "--output", "json"]


def peak_rss_mb(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Peak RSS (MB) and wall time of ``funcpy durable <args>`` as a subprocess (output discarded)."""
    t = time.perf_counter()
    proc = subprocess.Popen([str(FUNCPY), "durable", *args], env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"funcpy durable {' '.join(args)} failed: {proc.stderr.read().decode()[-2000:]}")
    proc.stderr.close()
    return usage.ru_maxrss / 1024, elapsed


async def _parallel(n: int, concurrency: int, make) -> float:
    """Run ``make(i)`` for i < n with ``concurrency`` in flight; returns the rate per second."""
    sem = asyncio.Semaphore(concurrency)

    async def one(i):
        async with sem:
            await make(i)

    t = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - t)


async def measure_raw_rates(account) -> dict[str, float]:
    raw: dict[str, float] = {}
    name = "raw" + uuid.uuid4().hex[:8]
    async with account.queue_service() as qs, account.table_service() as ts:
        q = qs.get_queue_client(name)
        await q.create_queue()
        body = '{"$type":"x","payload":"' + "x" * 400 + '"}'
        raw["queue send"] = await _parallel(1000, 16, lambda i: q.send_message(body))
        received = []

        async def receive_delete(_):
            async for m in q.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=30):
                received.append(m)
                await q.delete_message(m)

        t = time.perf_counter()
        while len(received) < 1000:
            before = len(received)
            await asyncio.gather(*(receive_delete(i) for i in range(4)))
            if len(received) == before:
                break
        raw["queue receive+delete"] = len(received) / (time.perf_counter() - t)
        await q.delete_queue()

        table = ts.get_table_client(name)
        await table.create_table()
        raw["table upsert"] = await _parallel(1000, 16, lambda i: table.upsert_entity(
            {"PartitionKey": f"p{i}", "RowKey": "", "Name": "x", "RuntimeStatus": "Completed", "Input": "x" * 200}))

        async def batch(i):
            await table.submit_transaction([(TransactionOperation.UPSERT, {
                "PartitionKey": f"b{i}", "RowKey": f"{j:016X}", "EventType": "TaskCompleted", "Result": "x" * 100})
                for j in range(100)])
        raw["table batch insert (entities)"] = 100 * await _parallel(40, 4, batch)

        t = time.perf_counter()
        n = 0
        async for _ in table.query_entities("RuntimeStatus eq 'Completed'", results_per_page=1000,
                                            select=["PartitionKey", "RuntimeStatus"]):
            n += 1
        raw["table filtered scan (rows)"] = n / (time.perf_counter() - t)

        async def delete_batch(i):
            await table.submit_transaction([(TransactionOperation.DELETE, {
                "PartitionKey": f"b{i}", "RowKey": f"{j:016X}"}) for j in range(100)])
        raw["table batch delete (entities)"] = 100 * await _parallel(40, 4, delete_batch)
        await ts.delete_table(name)
    return raw


def figure_line(f: Figure, env: BenchEnv) -> str:
    line = f"  {f.name:<48} {f.value:>10,.1f} {f.unit}"
    if f.raw:
        rate = env.raw[f.raw]
        line += f"   ({f.value / rate:.1%} of raw {f.raw}: {rate:,.0f}/s)"
    if f.target:
        line += f"   target {f.target}"
    if f.note:
        line += f"   {f.note}"
    return line


class LiveFigures(list):
    """A benchmark's figures, each printed the moment it is appended (with the raw rate it is compared
    with, which must already be in ``env.raw``): a run stopped midway still shows what it measured."""

    def __init__(self, env: BenchEnv):
        super().__init__()
        self._env = env

    def append(self, f: Figure) -> None:
        super().append(f)
        print(figure_line(f, self._env), flush=True)

    def extend(self, figures) -> None:
        for f in figures:
            self.append(f)


def print_report(figures: list[Figure], env: BenchEnv) -> None:
    for f in figures:
        print(figure_line(f, env), flush=True)
