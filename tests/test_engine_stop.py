"""Engine.stop in every situation a host meets it: during start, twice, past its time, at a wake-up.

The contract: whenever stop() is called, the engine ends stopped and nothing of it runs once stop() has
returned (no reader polls, no lease round runs over storage its caller closes next); what a stop cuts
short is left as a crash leaves it (held messages reappear, leases expire).
"""

import asyncio
import logging

import funchost.engine as engine_module
from durable_mgmt.taskhub import TaskHub
from durable_mgmt.taskhub.partitions import PartitionTable
from funchost.engine import Engine
from tests.test_engine_e2e import index, state_dir  # noqa: F401 (fixtures)


def _gate_leases(engine: Engine) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold ``engine``'s start at its lease acquisition: (reached, go)."""
    real, reached, go = engine.leases.start, asyncio.Event(), asyncio.Event()

    async def gated() -> None:
        reached.set()
        await go.wait()
        await real()

    engine.leases.start = gated
    return reached, go


async def _stop_while_starting(start, stop, reached: asyncio.Event, go: asyncio.Event, what: str) -> None:
    """Call ``stop()`` once ``start()`` has reached its gate; the stop must wait for the start (``go``)."""
    starting = asyncio.create_task(start())
    await reached.wait()
    stopping = asyncio.create_task(stop())
    await asyncio.sleep(0.1)
    assert not stopping.done(), what
    go.set()
    await asyncio.gather(starting, stopping)


async def _owners(hub) -> list[str]:
    return [lease.current_owner for lease in await PartitionTable(hub).read() if lease.current_owner]


def _assert_nothing_runs_but_the_host_pool(engine: Engine) -> None:
    assert not engine.running
    assert engine._tasks() == [], [t.get_name() for t in engine._tasks()]
    assert engine.router._stops == [], "the router still observes sends"


def _assert_nothing_runs(engine: Engine) -> None:
    _assert_nothing_runs_but_the_host_pool(engine)
    assert engine.executor._shutdown, "the engine's own thread pool was not shut down"


async def test_a_stop_during_start_waits_for_it_then_stops_and_hands_the_partitions_over(hub, index):
    # The host's shutdown arrives while start() awaits its leases. It used to return at once (not started
    # yet); the start then finished and the engine ran on, owning partitions, with nobody left to stop it.
    e = Engine(hub, index, worker_id="stop-during-start", lease_tick_seconds=1.0)
    reached, go = _gate_leases(e)
    await _stop_while_starting(e.start, e.stop, reached, go,
                               "the stop returned while the start was still taking partitions")
    _assert_nothing_runs(e)
    assert "stop-during-start" not in await _owners(hub), "the partitions were not released"


async def test_a_stop_that_gave_up_waiting_for_the_start_is_carried_out_by_the_start(hub, index, caplog):
    e = Engine(hub, index, worker_id="stop-gave-up", lease_tick_seconds=1.0)
    reached, go = _gate_leases(e)
    starting = asyncio.create_task(e.start())
    await reached.wait()
    await e.stop(timeout=0.1)
    assert "did not finish starting within" in caplog.text
    go.set()
    await starting  # the start ends in a stopped engine
    _assert_nothing_runs(e)
    assert "stop-gave-up" not in await _owners(hub)


async def test_a_stop_out_of_time_cancels_everything_so_closing_storage_after_it_is_quiet(account, index, caplog):
    # What a host does after a stop that ran out of time: close its storage. The engine's work used to go
    # on in the background over the closed hub ("transport has been closed" errors every lease round).
    async with TaskHub(account, "StopQuiet") as h:
        await h.create_if_not_exists()
        e = Engine(h, index, worker_id="stop-quiet", lease_tick_seconds=0.5)
        await e.start()
        await e.stop(timeout=0)  # out of time at once: everything is cancelled, as a crash would end it
        _assert_nothing_runs(e)
        assert "did not stop within 0 s" in caplog.text
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    await asyncio.sleep(1.5)  # three lease rounds' time
    assert not [r for r in caplog.records if r.name.startswith("funchost")], caplog.text[-2000:]
    async with TaskHub(account, "StopQuiet") as h:
        await h.delete()


async def test_work_that_ignores_its_cancel_is_torn_down_by_a_later_stop(hub, index, monkeypatch, caplog):
    # Tearing down under running work makes a running activity fail its instance ("cannot schedule new
    # futures after shutdown"): a stop out of time whose cancel does not land leaves the engine as it is,
    # and the next stop, once that work has ended, tears down (once).
    monkeypatch.setattr(engine_module, "CANCEL_SECONDS", 0.2)
    e = Engine(hub, index, worker_id="stop-stubborn", lease_tick_seconds=1.0)
    await e.start()
    release = asyncio.Event()

    async def stubborn() -> None:
        try:
            await release.wait()
        except asyncio.CancelledError:
            await release.wait()  # ignores the first cancel
        await e.leases.protocol.release_all()

    e.leases.stop = stubborn
    await e.stop(timeout=0.5)
    assert "did not end when cancelled" in caplog.text and "engine-stop" in caplog.text
    assert e.router._stops and not e.executor._shutdown, "torn down under running work"
    release.set()
    await e.stop()
    _assert_nothing_runs(e)


async def test_a_stop_right_after_local_wake_ups_ends_on_time(hub, index, caplog):
    # Readers woken by local sends in the very moment the stop cancels them (what an orchestration in flight
    # does) once ignored the cancel (asyncio.wait_for on 3.11, see tests/test_queue_consumer.py): the stop
    # never returned, and `funcpy start` or an engine worker never exited after SIGTERM.
    e = Engine(hub, index, worker_id="stop-at-wake", lease_tick_seconds=1.0)
    await e.start()
    await asyncio.sleep(1.5)  # the readers idle between polls of their empty queues
    for p in e.owned_partitions:
        e.router.wake(hub.names.control_queue(p))
    e.router.wake(hub.names.workitem_queue)
    await e.stop(timeout=20)
    assert "did not stop within" not in caplog.text
    _assert_nothing_runs(e)


async def test_a_host_stopped_while_it_starts_its_engine_waits_then_stops_everything(connection_string, hub_name):
    # LocalHost knew its engine only once the engine had started: a stop meanwhile closed storage under the
    # start, which then left an engine running with nobody to stop it.
    import os

    from funchost.host import LocalHost
    from tests.apps.support import APPS, _answers

    reached, go = asyncio.Event(), asyncio.Event()
    engines: list[Engine] = []

    class Gated(LocalHost):
        async def _start_engine(self, invoker) -> None:
            reached.set()
            await go.wait()
            await super()._start_engine(invoker)
            engines.append(self.engine)

    host = Gated(APPS / "client_app", port=0, connection_string=connection_string, hub_name=hub_name,
                 environ=dict(os.environ), drain_timeout=2.0)
    await _stop_while_starting(host.start, host.stop, reached, go, "the host's stop did not wait for its start")
    assert host.engine is None and len(engines) == 1
    _assert_nothing_runs_but_the_host_pool(engines[0])
    assert not await asyncio.to_thread(_answers, host.port)
    async with TaskHub(host.hub.account, hub_name) as h:
        assert await _owners(h) == []
        await h.delete()
