"""Partition management against hubs laid out as the real provider lays them out (issue 10, item 6).

Layouts come from ``tests/conformance/layouts.py`` (DurableTask.AzureStorage's
TablePartitionManager for extension v3, SafePartitionManager for v2); routing
is checked with the provider's own rule (Fnv1aHashHelper.ComputeHash %
partition count, AzureStorageOrchestrationService.GetControlQueueAsync),
spelled again in layouts.py, not with ``durable_mgmt.taskhub.names``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta, timezone

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import ClientAuthenticationError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableServiceClient
from azure.storage.blob.aio import BlobLeaseClient, BlobServiceClient

from durable_mgmt.errors import StorageUnavailable
from durable_mgmt.models import RuntimeStatus
from durable_mgmt.taskhub import TaskHub, TaskHubClient
from funchost.engine import Engine
from funchost.engine.leases import LeaseManager
from funchost.errors import HostStartError
from funchost.loader import load_app

from ..engine_support import ENGINE_APP, wait_for
from ..test_cli_support import cli, hostlike_instance  # noqa: F401 (fixture)
from .layouts import GENERATIONS, control_queue, fnv1a, lease_json, write_layout, write_live_worker

PARTITIONS = 6  # not the default 4: a reader that ignores the hub's own count routes wrongly
DOTNET = "dotnet-stamp:RD0003FF0A1B2C"  # a WorkerId as the extension sets it: "{stamp}:{roleInstance}"
ME = "funcpy-test-worker"


def provider_queue(hub_name: str, instance_id: str, count: int = PARTITIONS) -> str:
    """AzureStorageOrchestrationService.GetControlQueueAsync: Fnv1aHashHelper.ComputeHash(id) % PartitionCount."""
    return control_queue(hub_name, fnv1a(instance_id) % count)


def ids_on_high_partitions(n: int) -> list[str]:
    """Ids whose queue with 6 partitions is control-04 or -05: a 4-partition writer cannot reach them."""
    out, i = [], 0
    while len(out) < n:
        iid = f"route-{i}"
        if fnv1a(iid) % PARTITIONS >= 4:
            out.append(iid)
        i += 1
    return out


async def queue_contents(hub: TaskHub) -> dict[str, list[tuple[str, str]]]:
    """(instance id, event type) of every message on each control queue, peeked (left in place)."""
    out = {}
    for p in range(PARTITIONS):
        name = control_queue(hub.name, p)
        peeked = await hub.queue(name).peek_messages(max_messages=32)
        out[name] = [(m.instance_id, m.event.type.name)
                     for m in [await hub.large.decode_message(x.content) for x in peeked]]
    return out


async def artifacts(account, hub_name: str) -> tuple[list[str], list[str], list[str]]:
    """Every table, queue and container of the account whose name starts with the hub's name."""
    lower = hub_name.lower()
    async with TaskHub(account, hub_name) as any_hub:
        tables = sorted([t.name async for t in any_hub.table_service.list_tables()
                         if t.name.lower().startswith(lower)])
        queues = sorted([q.name async for q in any_hub._queues.list_queues(name_starts_with=lower)])
        containers = sorted([c.name async for c in any_hub._blobs.list_containers(name_starts_with=lower)])
    return tables, queues, containers


@pytest.fixture(params=GENERATIONS)
def generation(request) -> str:
    return request.param


# --- a) routing by the discovered partition count ------------------------------------------------


async def test_every_writer_routes_by_the_hubs_own_partition_count(account, hub_name, generation, cli):
    await write_layout(account, hub_name, generation, PARTITIONS)
    started, evented, stopped, cli_started = ids_on_high_partitions(4)
    async with TaskHub(account, hub_name) as hub:  # configured default: 4 partitions
        assert hub.names.partition_count == PARTITIONS
        await hostlike_instance(hub, "failed-one", "Failed")
        await hostlike_instance(hub, "done-one", "Completed")
        client = TaskHubClient(hub)
        await client.start("HelloCities", "Oslo", instance_id=started)
        await client.start("Approval", instance_id=evented)
        await client.raise_event(evented, "Approved", True)
        await client.start("Approval", instance_id=stopped)
        await client.terminate(stopped, "operator")
        await client.rewind("failed-one", "fixed")
        restarted = await client.restart("done-one")
    # The CLI, with host.json naming no partition count.
    await cli.json("start-new", "--function-name", "HelloCities", "--id", cli_started)
    await cli.json("raise-event", "--id", cli_started, "--event-name", "Ping")
    await cli.json("terminate", "--id", cli_started, "--timeout", "0")

    async with TaskHub(account, hub_name) as hub:
        contents = await queue_contents(hub)
    expected: dict[str, list] = {control_queue(hub_name, p): [] for p in range(PARTITIONS)}
    for iid, kinds in [(started, ["ExecutionStarted"]), (evented, ["ExecutionStarted", "EventRaised"]),
                       (stopped, ["ExecutionStarted", "ExecutionTerminated"]), (restarted, ["ExecutionStarted"]),
                       (cli_started, ["ExecutionStarted", "EventRaised", "ExecutionTerminated"])]:
        expected[provider_queue(hub_name, iid)] += [(iid, k) for k in kinds]
    rewound = [(q, m) for q, ms in contents.items() for m in ms if m[0] == "failed-one"]
    assert rewound and {q for q, _ in rewound} == {provider_queue(hub_name, "failed-one")}
    got = {q: sorted(m for m in ms if m[0] != "failed-one") for q, ms in contents.items()}
    assert got == {q: sorted(ms) for q, ms in expected.items()}


async def test_a_configured_partition_count_routes_as_the_apps_workers_do(account, hub_name, generation, cli):
    """AzureStorageOrchestrationService.GetControlQueueAsync routes every message by the configured
    settings.PartitionCount, whatever the hub shows (GetControlQueuesAsync is for scale monitoring). A count set
    in host.json is used the same way, with a warning when it differs from the hub's."""
    await write_layout(account, hub_name, generation, PARTITIONS)
    lib_id, cli_id = ids_on_high_partitions(2)
    async with TaskHub(account, hub_name, 4, partition_count_configured=True) as hub:
        assert hub.names.partition_count == 4 and hub.layout.partition_count == PARTITIONS
        assert "6 partitions" in hub.partition_count_warning and "partitionCount is 4" in hub.partition_count_warning
        await TaskHubClient(hub).start("HelloCities", instance_id=lib_id)
    host_json = cli.root / "host.json"
    config = json.loads(host_json.read_text())
    config["extensions"]["durableTask"]["storageProvider"] = {"partitionCount": 4}
    host_json.write_text(json.dumps(config))
    started = await cli.ok("start-new", "--function-name", "HelloCities", "--id", cli_id)
    assert "Warning: " in started.stderr and "partitionCount is 4" in started.stderr, started.stderr
    async with TaskHub(account, hub_name) as hub:
        contents = await queue_contents(hub)
    got = sorted((q, iid) for q, ms in contents.items() for iid, _ in ms)
    assert got == sorted([(provider_queue(hub_name, lib_id, 4), lib_id), (provider_queue(hub_name, cli_id, 4), cli_id)])
    # The same count as the hub's: no warning.
    async with TaskHub(account, hub_name, PARTITIONS, partition_count_configured=True) as hub:
        assert hub.partition_count_warning is None and hub.names.partition_count == PARTITIONS


async def test_a_hub_upgraded_from_v2_to_v3_routes_by_its_partitions_table(account, hub_name):
    """An app moved from extension v2 to v3 keeps its hub: taskhub.json (4 partitions, from v2) stays, and
    the v3 worker adds {Hub}Partitions with its own count. GetControlQueuesAsync reads the table first."""
    await write_layout(account, hub_name, "v2", 4)
    await write_layout(account, hub_name, "v3", PARTITIONS)
    iid = ids_on_high_partitions(1)[0]
    async with TaskHub(account, hub_name) as hub:
        assert hub.names.partition_count == PARTITIONS and hub.layout.management == "table"
        await TaskHubClient(hub).start("HelloCities", instance_id=iid)
        contents = await queue_contents(hub)
    assert [q for q, ms in contents.items() if ms] == [provider_queue(hub_name, iid)]


async def test_engine_reads_every_partition_of_a_provider_hub(account, hub_name, generation, monkeypatch, tmp_path):
    monkeypatch.setenv("ENGINE_TEST_STATE", str(tmp_path))
    await write_layout(account, hub_name, generation, PARTITIONS)
    parent = ids_on_high_partitions(1)[0]
    async with TaskHub(account, hub_name) as hub:
        engine = Engine(hub, load_app(ENGINE_APP), worker_id=ME, lease_tick_seconds=0.5)
        await engine.start()
        try:
            assert engine.owned_partitions == list(range(PARTITIONS))
            client = TaskHubClient(hub)
            await client.start("ParentOfHello", instance_id=parent)
            status = await wait_for(client, parent, timeout=60)
            assert status.runtime_status == RuntimeStatus.COMPLETED, status.output
        finally:
            await engine.stop()
    # Stopping hands every partition back as the provider's own release does.
    if generation == "v3":
        rows = await partition_rows(account, hub_name)
        assert all("CurrentOwner" not in r and r["IsDraining"] is False for r in rows.values()), rows
    else:
        for p in range(PARTITIONS):
            for folder in ("intent", "ownership"):
                state, content = await lease_blob(account, hub_name, f"{folder}/{control_queue(hub_name, p)}")
                assert state == "available" and content["Owner"] is None and content["Token"] is None
                assert content["Epoch"] == 1  # BlobPartitionLeaseManager.AcquireAsync: Epoch + 1 per acquisition


async def test_messages_are_encoded_as_the_hubs_own_workers_read_them(account, hub_name, generation):
    """v2 hubs (DurableTask.AzureStorage 1.x): Base64, as CloudQueueMessage.AsString (Convert.FromBase64String)
    reads every body; up to 1.17.3 a raw UTF-8 body throws for the whole batch in Storage/Queue.cs GetMessagesAsync
    (the raw fallback in Storage/QueueMessage.cs came with 1.17.4, commit d75526f5). v3 hubs (2.x): UTF-8 JSON,
    as AzureStorageOrchestrationServiceSettings.QueueClientMessageEncoding (UTF8) writes it."""
    import base64

    from azure.storage.queue.aio import QueueServiceClient

    await write_layout(account, hub_name, generation, PARTITIONS)
    iid = ids_on_high_partitions(1)[0]
    async with TaskHub(account, hub_name) as hub:
        client = TaskHubClient(hub)
        await client.start("HelloCities", "Zürich ✓", instance_id=iid)       # non-ASCII: UTF-8 differs from Latin-1
        await client.start("HelloCities", "z" * 60_000, instance_id=iid + "-big")  # the large-message wrapper too
    async with QueueServiceClient.from_connection_string(account.connection_string) as queues:  # raw bodies
        bodies = []
        for q in {provider_queue(hub_name, iid), provider_queue(hub_name, iid + "-big")}:
            bodies += [m.content for m in await queues.get_queue_client(q).peek_messages(max_messages=32)]
    assert len(bodies) == 2
    for body in bodies:
        if generation == "v2":
            data = json.loads(base64.b64decode(body, validate=True).decode("utf-8"))
        else:
            assert body.startswith("{")
            data = json.loads(body)
        assert data["$type"] == "DurableTask.AzureStorage.MessageData"
    assert any(json.loads((base64.b64decode(b) if generation == "v2" else b.encode()).decode())["TaskMessage"]
               for b in bodies)


# --- b) deleting a hub --------------------------------------------------------------------------


async def test_delete_hub_leaves_nothing(account, hub_name, generation):
    await write_layout(account, hub_name, generation, PARTITIONS)
    async with TaskHub(account, hub_name) as hub:
        # Left from when the hub had 8 partitions: lowering partitionCount rewrites taskhub.json
        # (BlobPartitionLeaseManager.GetOrCreateTaskHubInfoAsync, checkIfStale) but deletes no queue.
        for p in (6, 7):
            await hub.queue(control_queue(hub_name, p)).create_queue()
        client = TaskHubClient(hub)
        await client.start("HelloCities", "x" * 100_000, instance_id=ids_on_high_partitions(1)[0])  # large input
        tables, queues, containers = await artifacts(account, hub_name)
        assert f"{hub_name}Partitions" in tables if generation == "v3" else f"{hub_name.lower()}-leases" in containers
        assert f"{hub_name.lower()}-largemessages" in containers and len(queues) == PARTITIONS + 3
        await client.delete_hub()
    assert await artifacts(account, hub_name) == ([], [], [])


# --- c) hubs funcpy creates are the current provider's layout -----------------------------------


async def snapshot(account, hub_name: str) -> dict:
    """Everything a hub's creation left, with the hub's name replaced by HUB: names, Partitions rows with the
    type of each column, blob names and contents."""
    lower = hub_name.lower()
    tables, queues, containers = await artifacts(account, hub_name)
    rows = await partition_rows(account, hub_name) if f"{hub_name}Partitions" in tables else {}
    blobs = {}
    async with BlobServiceClient.from_connection_string(account.connection_string) as service:
        for c in containers:
            container = service.get_container_client(c)
            async for b in container.list_blobs():
                body = await (await container.download_blob(b.name)).readall()
                blobs[f"{c}/{b.name}".replace(lower, "hub")] = body.decode()
    return {
        "tables": [t.replace(hub_name, "HUB") for t in tables],
        "queues": [q.replace(lower, "hub") for q in queues],
        "containers": [c.replace(lower, "hub") for c in containers],
        "rows": {k.replace(lower, "hub"): {c: type(v).__name__ for c, v in r.items()} for k, r in rows.items()},
        "blobs": blobs,
    }


async def test_a_hub_funcpy_creates_is_laid_out_as_the_current_provider_lays_it_out(account, hub_name):
    provider_hub, funcpy_hub = hub_name + "p", hub_name + "f"
    await write_layout(account, provider_hub, "v3", PARTITIONS)
    async with TaskHub(account, funcpy_hub, PARTITIONS) as hub:  # what funcpy start does on a new hub
        await hub.create_if_not_exists()
    ours, theirs = await snapshot(account, funcpy_hub), await snapshot(account, provider_hub)
    assert ours == theirs
    assert "hub-leases/taskhub.json" not in ours["blobs"]
    assert ours["rows"]["hub-control-05"] == {"PartitionKey": "str", "RowKey": "str", "IsDraining": "bool"}


async def test_a_v2_hub_keeps_its_blob_leases_when_funcpy_starts_on_it(account, hub_name):
    """Adding a Partitions table to an extension v2 hub would start a second lease protocol beside Safe's."""
    await write_layout(account, hub_name, "v2", PARTITIONS)
    before = await snapshot(account, hub_name)
    async with BlobServiceClient.from_connection_string(account.connection_string) as service:
        leases = service.get_container_client(f"{hub_name.lower()}-leases")
        for folder in ("intent", "ownership"):  # lost lease blobs are made again as CreateLeaseIfNotExistAsync does
            await leases.delete_blob(f"{folder}/{control_queue(hub_name, 5)}")
    async with TaskHub(account, hub_name) as hub:
        await hub.create_if_not_exists()
    assert await snapshot(account, hub_name) == before


# --- d) a live .NET worker on the hub -----------------------------------------------------------


async def partition_rows(account, hub_name: str) -> dict[str, dict]:
    async with TableServiceClient.from_connection_string(account.connection_string) as tables:
        table = tables.get_table_client(f"{hub_name}Partitions")
        return {e["RowKey"]: dict(e) async for e in table.list_entities()}


async def dotnet_round(account, hub_name: str, row_key: str, **changes) -> None:
    """Write one row as the .NET TableLeaseManager would after a round (ReplaceEntityAsync with the ETag read)."""
    async with TableServiceClient.from_connection_string(account.connection_string) as tables:
        table = tables.get_table_client(f"{hub_name}Partitions")
        row = await table.get_entity("", row_key)
        entity = {k: v for k, v in dict(row).items()} | changes
        entity = {k: v for k, v in entity.items() if v is not None}  # null members are not stored
        await table.update_entity(entity, mode=UpdateMode.REPLACE, etag=row.metadata["etag"],
                                  match_condition=MatchConditions.IfNotModified)


async def lease_blob(account, hub_name: str, name: str) -> tuple[str, dict]:
    async with BlobServiceClient.from_connection_string(account.connection_string) as service:
        blob = service.get_blob_client(f"{hub_name.lower()}-leases", name)
        props = await blob.get_blob_properties()
        return props.lease.state, json.loads(await (await blob.download_blob()).readall())


class Partitions:
    """The callbacks the engine gives the lease manager: which queues this worker reads."""

    def __init__(self):
        self.reading: set[int] = set()
        self.events: list[tuple[str, int]] = []

    async def acquired(self, p: int) -> None:
        self.reading.add(p)
        self.events.append(("acquired", p))

    async def released(self, p: int) -> None:
        self.reading.discard(p)
        self.events.append(("released", p))


async def test_table_leases_share_a_v3_hub_with_a_live_dotnet_worker(account, hub_name):
    await write_layout(account, hub_name, "v3", PARTITIONS)
    await write_live_worker(account, hub_name, "v3", DOTNET, range(PARTITIONS), app_name="dotnet-app")
    queues = [control_queue(hub_name, p) for p in range(PARTITIONS)]
    async with TaskHub(account, hub_name) as hub:
        seen = Partitions()
        leases = LeaseManager(hub, ME, seen.acquired, seen.released, lease_seconds=30, tick_seconds=3600)
        await leases.start()  # one round: TableLeaseManager.ReadAndWriteTableAsync
        try:
            # The .NET worker renews all six: we read none, and ask for our share (BalanceLeasesAsync: 6 // 2).
            rows = await partition_rows(account, hub_name)
            assert seen.reading == set() and {r["CurrentOwner"] for r in rows.values()} == {DOTNET}
            asked = sorted(k for k, r in rows.items() if r.get("NextOwner") == ME)
            assert len(asked) == 3
            # The .NET worker drains them and releases (CheckDrainTask -> ReleaseLease: CurrentOwner null,
            # IsDraining false, NextOwner kept); the others it renews.
            for key in asked:
                await dotnet_round(account, hub_name, key, CurrentOwner=None, IsDraining=False)
            await leases.tick()
            rows = await partition_rows(account, hub_name)
            mine = sorted(k for k, r in rows.items() if r.get("CurrentOwner") == ME)
            assert mine == asked and seen.reading == {queues.index(k) for k in asked}
            assert all("NextOwner" not in rows[k] and rows[k]["ExpiresAt"] > datetime.now(timezone.utc)
                       for k in mine)
            # TablePartitionLease's DateTime? members are Edm.DateTime columns, IsDraining Edm.Boolean.
            assert all(isinstance(rows[mine[0]][c], datetime) for c in ("OwnedSince", "LastRenewal", "ExpiresAt"))
            # The .NET worker asks for one back (StealLease: NextOwner): we stop reading it, mark it draining,
            # and release it on the next round.
            back = mine[0]
            await dotnet_round(account, hub_name, back, NextOwner=DOTNET)
            await leases.tick()
            row = (await partition_rows(account, hub_name))[back]
            assert queues.index(back) not in seen.reading
            assert row["CurrentOwner"] == ME and row["IsDraining"] is True and row["NextOwner"] == DOTNET
            await asyncio.sleep(0)  # the drain task has finished
            await leases.tick()
            row = (await partition_rows(account, hub_name))[back]
            assert "CurrentOwner" not in row and row["IsDraining"] is False and row["NextOwner"] == DOTNET
            # A .NET lease that is no longer renewed expires, and then we may claim it (TryClaimLease).
            theirs = sorted(k for k, r in (await partition_rows(account, hub_name)).items()
                            if r.get("CurrentOwner") == DOTNET)
            await dotnet_round(account, hub_name, theirs[0],
                               ExpiresAt=datetime.now(timezone.utc) - timedelta(seconds=1))
            await leases.tick()
            assert (await partition_rows(account, hub_name))[theirs[0]]["CurrentOwner"] == ME
            assert queues.index(theirs[0]) in seen.reading
        finally:
            await leases.stop()
        rows = await partition_rows(account, hub_name)
        assert not any(r.get("CurrentOwner") == ME for r in rows.values()) and seen.reading == set()


async def test_the_host_renews_table_leases_for_the_providers_lease_interval(account, hub_name, monkeypatch,
                                                                             tmp_path):
    """AzureStorageOrchestrationServiceSettings: LeaseInterval 30 s (TableLeaseManager.RenewLease sets ExpiresAt
    to now + LeaseInterval), LeaseAcquireInterval 10 s between rounds. A .NET worker takes a lease as soon as it
    expires, so ours must last as long as theirs."""
    monkeypatch.setenv("ENGINE_TEST_STATE", str(tmp_path))
    await write_layout(account, hub_name, "v3", PARTITIONS)
    async with TaskHub(account, hub_name) as hub:
        engine = Engine(hub, load_app(ENGINE_APP), worker_id=ME)  # the defaults funcpy start uses
        await engine.start()
        try:
            assert engine.leases.tick_seconds == 10
            await engine.leases.tick()  # a renewal round (the first one claimed)
            rows = await partition_rows(account, hub_name)
        finally:
            await engine.stop()
    assert {r["CurrentOwner"] for r in rows.values()} == {ME}
    assert {(r["ExpiresAt"] - r["LastRenewal"]).total_seconds() for r in rows.values()} == {30}


async def test_funcpy_refuses_a_v2_hub_whose_blob_leases_a_live_worker_holds(account, hub_name):
    await write_layout(account, hub_name, "v2", PARTITIONS)
    await write_live_worker(account, hub_name, "v2", DOTNET, [0, 1, 2], app_name="dotnet-app")
    name = f"intent/{control_queue(hub_name, 1)}"
    before = await lease_blob(account, hub_name, name)
    async with TaskHub(account, hub_name) as hub:
        seen = Partitions()
        leases = LeaseManager(hub, ME, seen.acquired, seen.released)
        with pytest.raises(HostStartError) as refused:
            await leases.start()
    message = str(refused.value)
    assert hub_name in message and DOTNET in message and "extension v2" in message and "stop that worker" in message
    assert seen.events == [] and await lease_blob(account, hub_name, name) == before
    free = await lease_blob(account, hub_name, f"ownership/{control_queue(hub_name, 5)}")
    assert free == ("available", {"PartitionId": control_queue(hub_name, 5), "Owner": None, "Token": None,
                                  "Epoch": 0})


async def test_funcpy_start_on_such_a_hub_exits_with_the_reason(account, hub_name, connection_string):
    import os
    import subprocess

    from ..apps.support import APPS, REPO, funcpy_command, free_port

    await write_layout(account, hub_name, "v2", PARTITIONS)
    await write_live_worker(account, hub_name, "v2", DOTNET, [3])
    env = {**os.environ, "AzureWebJobsStorage": connection_string, "TaskHubName": hub_name}
    done = await asyncio.to_thread(
        subprocess.run, funcpy_command("--script-root", str(APPS / "http_app"), "--port", str(free_port())),
        capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"funcpy start: Task hub {hub_name!r} uses the blob partition leases" in done.stderr, done.stderr
    assert DOTNET in done.stderr and "Traceback" not in done.stderr


async def test_a_client_made_table_does_not_hide_a_live_v2_worker(account, hub_name):
    """A client is first on a new hub: like the provider's (CreateTaskOrchestrationAsync -> EnsureTaskHubAsync ->
    GetTaskHubCreatorTask) it lays the hub out for its partition manager, the table one. Then an extension v2 app
    runs on it: SafePartitionManager writes taskhub.json and holds blob leases and never reads the table. The
    hub is that app's: funcpy start must not claim the unused table rows and read its queues."""
    async with TaskHub(account, hub_name) as hub:
        await TaskHubClient(hub).start("HelloCities", instance_id="first")
        assert hub.layout.management == "table"
    await write_layout(account, hub_name, "v2", PARTITIONS)
    await write_live_worker(account, hub_name, "v2", "dotnet-v2-worker", range(PARTITIONS))
    async with TaskHub(account, hub_name) as hub:
        assert (hub.layout.management, hub.names.partition_count) == ("blob", PARTITIONS)
        seen = Partitions()
        with pytest.raises(HostStartError, match="dotnet-v2-worker"):
            await LeaseManager(hub, ME, seen.acquired, seen.released).start()
    assert seen.events == []
    assert not any("CurrentOwner" in r for r in (await partition_rows(account, hub_name)).values())


async def test_a_used_table_beside_live_blob_leases_is_refused(account, hub_name):
    """Both protocols live on one hub (an app moved from extension v2 to v3 while a v2 worker still runs): the
    v3 worker's rows would let us in, but the v2 worker reads queues without looking at the table."""
    await write_layout(account, hub_name, "v2", PARTITIONS)
    await write_layout(account, hub_name, "v3", PARTITIONS)
    await write_live_worker(account, hub_name, "v3", DOTNET, [0, 1])
    await write_live_worker(account, hub_name, "v2", "dotnet-v2-worker", [2])
    async with TaskHub(account, hub_name) as hub:
        assert hub.layout.management == "table"
        seen = Partitions()
        with pytest.raises(HostStartError) as refused:
            await LeaseManager(hub, ME, seen.acquired, seen.released).start()
    assert "dotnet-v2-worker" in str(refused.value) and "Partitions table" in str(refused.value)
    assert seen.events == [] and not any(r.get("CurrentOwner") == ME
                                         for r in (await partition_rows(account, hub_name)).values())


async def test_on_a_free_v2_hub_a_later_dotnet_worker_can_take_partitions_over(account, hub_name):
    await write_layout(account, hub_name, "v2", PARTITIONS)
    async with TaskHub(account, hub_name) as hub:
        seen = Partitions()
        leases = LeaseManager(hub, ME, seen.acquired, seen.released, tick_seconds=3600)
        await leases.start()
        try:
            assert seen.reading == set(range(PARTITIONS))
            queue = control_queue(hub_name, 2)
            state, content = await lease_blob(account, hub_name, f"intent/{queue}")
            assert state == "leased" and content["Owner"] == ME and content["Epoch"] == 1
            # LeaseCollectionBalancer steals an intent lease: BlobPartitionLeaseManager.AcquireAsync changes the
            # lease from the Token written in the blob, then writes Owner, the new Token and Epoch + 1 under it.
            dotnet_id = "11111111-2222-3333-4444-555555555555"
            async with BlobServiceClient.from_connection_string(account.connection_string) as service:
                container = service.get_container_client(f"{hub_name.lower()}-leases")
                intent = container.get_blob_client(f"intent/{queue}")
                await BlobLeaseClient(intent, lease_id=content["Token"]).change(dotnet_id)
                await intent.upload_blob(lease_json(queue, DOTNET, dotnet_id, content["Epoch"] + 1),
                                         overwrite=True, lease=dotnet_id)
                await leases.tick()
                assert 2 not in seen.reading
                # ownership is released (ReleaseAsync: Owner and Token null) for the .NET worker to acquire.
                state, content = await lease_blob(account, hub_name, f"ownership/{queue}")
                assert state == "available" and content["Owner"] is None and content["Token"] is None
                # The .NET worker keeps its lease, renewing it every round (LeaseCollectionBalancer.RenewLeaseAsync)
                # and takes ownership (AcquireAsync on the expired ownership lease). Our later rounds must
                # leave it alone: the provider never takes a live lease except when its balancer steals.
                await BlobLeaseClient(intent, lease_id=dotnet_id).renew()
                for _ in range(3):
                    await leases.tick()
                    await BlobLeaseClient(intent, lease_id=dotnet_id).renew()  # fails if we took it back
                    assert 2 not in seen.reading and seen.reading == set(range(PARTITIONS)) - {2}
                state, content = await lease_blob(account, hub_name, f"intent/{queue}")
                assert state == "leased" and content["Owner"] == DOTNET and content["Token"] == dotnet_id
                assert seen.events.count(("acquired", 2)) == 1
        finally:
            await leases.stop()


async def test_lease_rounds_that_keep_failing_stop_the_reading_and_are_logged(account, hub_name, caplog):
    refuse = {"on": False}

    def hook(request):
        if refuse["on"] and "Partitions" in request.http_request.url:
            raise ClientAuthenticationError("Server failed to authenticate the request.")

    await write_layout(account, hub_name, "v3", PARTITIONS)
    async with TaskHub(account.with_request_hook(hook), hub_name) as hub:
        seen = Partitions()
        leases = LeaseManager(hub, ME, seen.acquired, seen.released, lease_seconds=1, tick_seconds=0.2)
        await leases.start()
        try:
            assert seen.reading == set(range(PARTITIONS))
            refuse["on"] = True
            with caplog.at_level(logging.ERROR, logger="funchost.engine"):
                for _ in range(100):
                    if not seen.reading:
                        break
                    await asyncio.sleep(0.1)
            assert seen.reading == set()
            assert any("credentials" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
        finally:
            refuse["on"] = False
            await leases.stop()
    # At start, the same error stops the host with the reason.
    refuse["on"] = True
    with pytest.raises(StorageUnavailable, match="credentials"):
        async with TaskHub(account.with_request_hook(hook), hub_name):
            pass
