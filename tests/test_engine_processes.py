"""Engines in real processes: two workers sharing a hub, and crashes (SIGKILL) mid-flight."""

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from durable_mgmt.models import RuntimeStatus
from durable_mgmt.taskhub.events import EventType

from .apps.support import STOP_SECONDS
from .engine_support import wait_for

ROOT = Path(__file__).resolve().parent.parent


class Worker:
    def __init__(self, connection_string, hub_name, worker_id, state_dir):
        env = dict(os.environ, AzureWebJobsStorage=connection_string, ENGINE_TEST_STATE=str(state_dir))
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.engine_worker", hub_name, worker_id], cwd=ROOT,
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("READY"), f"worker {worker_id} did not start: {line!r}"

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                # The engine drains in stages of up to 10 s (Engine.stop); 30 s was once not enough in CI.
                out, _ = self.proc.communicate(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"the worker did not stop within {STOP_SECONDS} s of SIGTERM") from None
            return out
        return ""


@pytest.fixture
def workers(connection_string, hub_name, tmp_path):
    started = []

    def start(worker_id):
        w = Worker(connection_string, hub_name, worker_id, tmp_path)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


async def lease_owners(hub):
    """Partition -> owner, from the {Hub}Partitions rows (TablePartitionManager's leases) that have not expired."""
    from durable_mgmt.taskhub.partitions import PartitionTable
    from durable_mgmt.taskhub.timefmt import utcnow

    now = utcnow()
    return {hub.names.partition_of_queue(lease.row_key): lease.current_owner
            for lease in await PartitionTable(hub).read()
            if lease.current_owner and lease.expires_at and lease.expires_at > now}


async def test_two_workers_split_partitions_and_survive_one_dying(hub, client, workers):
    a = workers("worker-a")
    b = workers("worker-b")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        owners = await lease_owners(hub)
        if sorted(owners.values()) == ["worker-a", "worker-a", "worker-b", "worker-b"]:
            break
        await asyncio.sleep(0.5)
    assert sorted(owners.values()) == ["worker-a", "worker-a", "worker-b", "worker-b"], owners
    ids = [await client.start("HelloSequence", instance_id=f"split-{i}") for i in range(12)]
    for iid in ids:
        assert (await wait_for(client, iid)).runtime_status == RuntimeStatus.COMPLETED
    a_parts = {p for p, o in owners.items() if o == "worker-a"}
    assert {hub.names.partition_of(i) for i in ids} & a_parts, "ids should land on both workers"
    # Kill b: its partitions free up when its leases expire, and a takes them over.
    b.kill()
    more = [await client.start("HelloSequence", instance_id=f"after-{i}") for i in range(8)]
    for iid in more:
        assert (await wait_for(client, iid, timeout=60)).runtime_status == RuntimeStatus.COMPLETED
    owners = await lease_owners(hub)
    assert set(owners.values()) == {"worker-a"} and len(owners) == 4
    assert "episodes=" in a.stop()


async def run_crash_scenario(client, hub, workers, seed: int, instances: int, kills: int):
    rng = random.Random(seed)
    w = workers(f"crashy-{seed}")
    names = ["HelloSequence", "FanOutFanIn", "RetryThenSucceed", "ParentOfHello"]
    expected = {}
    for i in range(instances):
        name = names[i % len(names)]
        iid = await client.start(name, 8 if name == "FanOutFanIn" else None, instance_id=f"c{seed}-{i}")
        expected[iid] = name
    for _ in range(kills):
        await asyncio.sleep(rng.uniform(0.1, 1.2))
        w.kill()
        w = workers(f"crashy-{seed}")  # same worker id: it takes its partitions back at once
    outputs = {
        "HelloSequence": ["Hello Tokyo!", "Hello Seattle!", "Hello London!"],
        "FanOutFanIn": sum(2 * i for i in range(8)),
        "ParentOfHello": {"child": ["Hello Tokyo!", "Hello Seattle!", "Hello London!"], "doubled": 42},
    }
    for iid, name in expected.items():
        status = await wait_for(client, iid, timeout=90)
        assert status.runtime_status == RuntimeStatus.COMPLETED, (iid, status.output)
        if name == "RetryThenSucceed":
            assert status.output[1] == "Hello after retry!"
        else:
            assert status.output == outputs[name]
        history = await hub.history.read(iid)
        completions = [e for e in history.events if e.type == EventType.ExecutionCompleted]
        assert len(completions) == 1, f"{iid} completed {len(completions)} times"
        scheduled = [e.event_id for e in history.events if e.type == EventType.TaskScheduled]
        assert len(scheduled) == len(set(scheduled)), f"{iid} scheduled a task id twice"


@pytest.mark.parametrize("seed", [1, 2])
async def test_crash_and_restart_loses_nothing(hub, client, workers, seed):
    await run_crash_scenario(client, hub, workers, seed, instances=50, kills=3)


@pytest.mark.soak
@pytest.mark.parametrize("seed", list(range(10, 20)))
async def test_crash_soak(hub, client, workers, seed):
    await run_crash_scenario(client, hub, workers, seed, instances=200, kills=10)
