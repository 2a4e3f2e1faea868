"""Timer triggers on real time: seconds-level schedules, runOnStartup, and a past-due run after a restart."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.apps.support import read_queue, running_host, unique


@pytest.fixture
def settings():
    # A host id of its own: the schedule status blob is per host id and function.
    return {"OutQueue": unique("timer-out"), "AzureFunctionsWebHost__hostid": unique("timers")}


async def runs(connection_string: str, queue: str, *, at_least: int, timeout: float = 10.0) -> list[dict]:
    return [json.loads(m) for m in await read_queue(connection_string, queue, at_least=at_least, timeout=timeout)]


async def test_seconds_schedule_and_run_on_startup(connection_string, hub_name, settings):
    async with running_host("timer_app", connection_string, hub_name,
                            settings={**settings, "TickSchedule": "*/1 * * * * *"}):
        found = await runs(connection_string, settings["OutQueue"], at_least=3)
    ticks = [r for r in found if r["fn"] == "tick"]
    assert len(ticks) >= 2 and not any(t["past_due"] for t in ticks)
    assert [r for r in found if r["fn"] == "on_start"] == [{"fn": "on_start", "past_due": False}]


async def test_run_missed_while_down_fires_once_past_due_after_restart(connection_string, hub_name, settings):
    schedule = {**settings, "TickSchedule": "*/2 * * * * *"}
    async with running_host("timer_app", connection_string, hub_name, settings=schedule, delete_hub=False):
        first = await runs(connection_string, settings["OutQueue"], at_least=2)  # on_start + one tick
    assert [r["past_due"] for r in first if r["fn"] == "tick"] == [False]
    await asyncio.sleep(2.5)  # the next tick falls due while no host runs
    async with running_host("timer_app", connection_string, hub_name, settings=schedule):
        found = await runs(connection_string, settings["OutQueue"], at_least=len(first) + 2)
    later = [r for r in found[len(first):] if r["fn"] == "tick"]
    assert later[0]["past_due"] is True
    assert sum(1 for r in later if r["past_due"]) == 1  # once, then back on schedule
