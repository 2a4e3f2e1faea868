"""h23: Engine.stop races."""
import asyncio

from funchost.engine import Engine
from tests.test_engine_e2e import index, state_dir  # noqa: F401 (fixtures)


async def test_a_stop_during_start_leaves_no_engine_running(hub, index):
    # Shutdown arriving while start() awaits its leases: stop() returns at once (not started yet), then start
    # finishes and the engine runs on, owning partitions, with nobody left to stop it.
    e = Engine(hub, index, worker_id="h23-race", lease_tick_seconds=1.0)
    real = e.leases.start
    gate = asyncio.Event()

    async def slow_start():
        await gate.wait()
        await real()

    e.leases.start = slow_start
    starting = asyncio.create_task(e.start())
    await asyncio.sleep(0.1)
    await e.stop(timeout=5)          # the host's shutdown
    gate.set()
    await starting
    try:
        assert not e._started, "stop() returned, yet the engine is started afterwards"
    finally:
        await e.stop()


async def test_an_abandoned_stop_then_a_second_stop_finishes_the_teardown(hub, index):
    e = Engine(hub, index, worker_id="h23-twice", lease_tick_seconds=1.0)
    await e.start()
    await e.stop(timeout=0)          # abandoned at once
    await e.stop()                   # a second, patient stop: should wait for the first and close the router
    # the first stop's stages, left running in the background, finish quickly here
    await asyncio.sleep(3)
    assert e.router._stops == [], "no stop ever closes the router of an abandoned stop"
    assert e.executor._shutdown, "no stop ever shuts the engine's own executor down"


async def test_an_abandoned_stop_then_closing_the_hub_reports_no_stray_errors(account, index, caplog):
    # What the host does after an abandoned engine stop: it goes on to close its storage. The stop's stages,
    # still running in the background, then work on a closed hub.
    import gc, logging
    from durable_mgmt.taskhub import TaskHub
    name = f"H23{__import__('uuid').uuid4().hex[:8]}"
    async with TaskHub(account, name) as h:
        await h.create_if_not_exists()
        e = Engine(h, index, worker_id="h23-closed", lease_tick_seconds=1.0)
        await e.start()
        await e.stop(timeout=0)
    caplog.set_level(logging.DEBUG)
    await asyncio.sleep(3)
    gc.collect()
    await asyncio.sleep(0.1)
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR and "did not stop within" not in r.getMessage()]
    assert not bad, [r.getMessage()[:200] for r in bad]
