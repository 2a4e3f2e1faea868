"""Hostile review of issue 13's re-read mends (h26): ListedInstance.of reading an SDK entity's ETag, the
client-side row filter shared by count and the bulk selection, the read-ahead's coverage."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from durable_mgmt import BulkRequest, CountRequest, InstanceManager, JobState, Outcome
from durable_mgmt.jobs import actions
from durable_mgmt.models import InstanceQuery
from durable_mgmt.query import Query
from durable_mgmt.taskhub import escape_key
from durable_mgmt.taskhub.operations import ListedInstance
from durable_mgmt.taskhub.scan import scan_ids
from durable_mgmt.transports import StorageTransport

from .test_cli_support import cli, hostlike_instance  # noqa: F401 (fixture)
from .test_engine_e2e import index, state_dir  # noqa: F401 (fixtures)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
NEEDLE = "needle-in-a-blob"


@pytest.fixture
def manager(hub) -> InstanceManager:
    return InstanceManager(StorageTransport(hub))


# --- 1. purges stay ETag-checked -------------------------------------------------------------------------

async def test_listed_instance_reads_the_etag_of_an_sdk_entity_and_of_a_plain_row(hub):
    await hostlike_instance(hub, "e-1", "Completed")
    entity = await hub.instances.client.get_entity(escape_key("e-1"), "")
    listed = ListedInstance.of(entity)
    assert listed.etag and listed.etag == entity.metadata["etag"]
    assert listed.execution_id == entity["ExecutionId"]
    plain = [r async for page, _ in hub.instances.pages(InstanceQuery(), columns=["PartitionKey", "ExecutionId"])
             for r in page]
    assert ListedInstance.of(plain[0]).etag == listed.etag


async def test_purge_by_filter_leaves_an_instance_restarted_between_listing_and_delete(hub, client, monkeypatch):
    ids = [f"f-{i}" for i in range(4)]
    for iid in ids:
        await hostlike_instance(hub, iid, "Completed", name="Target")
    restarted = "f-2"
    original = type(client)._history_keys

    async def restart_first(self, pks):
        # After the page was listed (ETags read), before any delete: the same id started again.
        if escape_key(restarted) in pks and not getattr(restart_first, "done", False):
            restart_first.done = True
            await client.start("Target", {"again": True}, instance_id=restarted)
        return await original(self, pks)

    monkeypatch.setattr(type(client), "_history_keys", restart_first)
    result = await client.purge(InstanceQuery(statuses={"Completed"}, name="Target"))
    assert restart_first.done
    assert result.instances_deleted == 3
    status = await client.get_status(restarted)
    assert status is not None and status.input == {"again": True}
    for iid in ids:
        if iid != restarted:
            assert await hub.instances.get(iid) is None


async def test_bulk_purge_leaves_an_instance_restarted_between_its_status_read_and_delete(hub, client, manager,
                                                                                        monkeypatch):
    # batch_size 1 and a read-ahead: the status (and ETag) of p-3 is read with p-0's chunk; the restart
    # comes right after that read, before any chunk acts.
    ids = [f"p-{i}" for i in range(5)]
    for iid in ids:
        await hostlike_instance(hub, iid, "Completed", name="Target")
    restarted = "p-3"
    reads: list[list[str]] = []
    original = actions.bulk_ops.statuses

    async def read_then_restart(hub_, instance_ids, **kwargs):
        found = await original(hub_, instance_ids, **kwargs)
        reads.append(list(instance_ids))
        if len(reads) == 1:
            await client.start("Target", {"again": True}, instance_id=restarted)
        return found

    # Recorded first, so the run reads statuses by batch (a job acting as it selects uses the scan's: see
    # test_bulk_jobs.py's test_bulk_purge_job_leaves_an_instance_started_again_after_its_batch_was_read).
    job = await manager.bulk(BulkRequest("purge", "name = 'Target'", batch_size=1, concurrency=1))
    await job.run(lambda i: job.stop())
    monkeypatch.setattr(actions.bulk_ops, "statuses", read_then_restart)
    info = await (await manager.job(job.id)).run()
    assert restarted in reads[0]
    assert (info.state, info.done, info.skipped, info.failed) == (JobState.COMPLETED, 4, 1, 0)
    skipped = [o async for o in job.outcomes(Outcome.SKIPPED)]
    assert [o.instance_id for o in skipped] == [restarted]
    assert (await client.get_status(restarted)).input == {"again": True}
    for iid in ids:
        if iid != restarted:
            assert await hub.instances.get(iid) is None and await hub.history.rows(iid) == []


# --- 2. count and the bulk selection share the client-side row filter ------------------------------------

def _text(value):
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


TRUTH = [
    # id, name, status, created, updated (None: no column), custom, input, output
    ("a-1", "Order", "Running", NOW - timedelta(days=3), None, "waiting", {"n": 1}, None),
    ("a-2", "Order", "Completed", NOW - timedelta(hours=1), NOW, {"step": 2}, {"n": 2}, "ok"),
    ("b#3", "OrderLine", "Failed", NOW - timedelta(days=1), None, None, {"big": "x" * 70_000, "m": NEEDLE},
     {"err": "boom"}),
    ("b/4", "Ship", "Completed", NOW - timedelta(days=5), NOW - timedelta(days=4), "done", {"n": 4}, "boom!"),
    ("c?5", "Ship", "Terminated", NOW - timedelta(hours=2), NOW - timedelta(hours=1), "<script>", {"n": 5}, None),
]


def _row(t):
    iid, name, status, created, updated, custom, inp, out = t
    row = {"PartitionKey": escape_key(iid), "RowKey": "", "Name": name, "RuntimeStatus": status,
           "CreatedTime": created, "CustomStatus": json.dumps(custom), "Input": json.dumps(inp),
           "Output": json.dumps(out), "ExecutionId": "e"}
    if updated is not None:
        row["LastUpdatedTime"] = updated
    return row


QUERIES = [
    ("customStatus CONTAINS 'wait' OR customStatus = 'done'",
     lambda t: "wait" in _text(t[5]) or t[5] == "done"),
    (f"input CONTAINS '{NEEDLE}'", lambda t: NEEDLE in _text(t[6])),
    ("output CONTAINS 'boom'", lambda t: "boom" in _text(t[7])),
    # A row without LastUpdatedTime shows (and the client-side half judges) it as its CreatedTime
    # (scan._filter_columns, status_from_entity); a pushed-down lastUpdatedTime comparison used to drop
    # every row lacking the column. The provider always writes it (AzureTableTrackingStore
    # .SetNewExecutionAsync): rows of other writers.
    ("lastUpdatedTime > -30h", lambda t: (t[4] or t[3]) > NOW - timedelta(hours=30)),
    ("lastUpdatedTime < -2d", lambda t: (t[4] or t[3]) < NOW - timedelta(days=2)),
    ("lastUpdatedTime != 2024-04-30T12:00:00Z AND lastUpdatedTime BETWEEN -4d AND -10m",
     lambda t: (t[4] or t[3]) != NOW - timedelta(days=1) and NOW - timedelta(days=4) <= (t[4] or t[3])
     <= NOW - timedelta(minutes=10)),
    ("name CONTAINS 'Line' OR status = Running OR customStatus CONTAINS 'scr'",
     lambda t: "Line" in t[1] or t[2] == "Running" or "scr" in _text(t[5])),
    ("(status IN (Completed, Failed) OR name CONTAINS 'hip') AND output CONTAINS 'o'",
     lambda t: (t[2] in ("Completed", "Failed") or "hip" in t[1]) and "o" in _text(t[7])),
    ("NOT (name CONTAINS 'Order') AND lastUpdatedTime >= -3h",
     lambda t: "Order" not in t[1] and (t[4] or t[3]) >= NOW - timedelta(hours=3)),
]


@pytest.fixture
async def seeded(hub):
    for t in TRUTH:
        await hub.instances.upsert(_row(t))
    return hub


@pytest.mark.parametrize("text,predicate", QUERIES, ids=[q[0] for q in QUERIES])
async def test_count_and_selection_equal_a_plain_tally_and_find(seeded, manager, text, predicate):
    query = Query.parse(text, now=NOW)
    expected = sorted((t[0] for t in TRUTH if predicate(t)), key=escape_key)
    assert expected, "the case must select something"
    found = [s.instance_id async for s in manager.find(query)]
    assert found == expected, manager.explain(query)
    selected = [iid async for ids, _ in scan_ids(seeded, query) for iid in ids]
    assert selected == expected
    for group_by, key in (("status", lambda t: t[2]), ("name", lambda t: t[1]),
                          ("customStatus", lambda t: _text(t[5]))):
        result = await manager.count(CountRequest(query, group_by))
        assert result.groups == dict(Counter(key(t) for t in TRUTH if predicate(t))), (text, group_by)


# --- 4. hostile text through the CLI and the dashboard ---------------------------------------------------

XSS = '<script id="pwned">alert(1)</script>'
HOSTILE_ID = "h-" + XSS


async def _hostile_instance(hub) -> None:
    await hostlike_instance(hub, HOSTILE_ID, "Completed", name="N" + XSS)
    await hub.instances.upsert({"PartitionKey": escape_key(HOSTILE_ID), "RowKey": "",
                                "CustomStatus": json.dumps(XSS)})


async def test_hostile_query_values_through_the_cli_match_exactly_or_nothing_and_change_nothing(cli, hub):
    await _hostile_instance(hub)
    before = (await hub.instances.client.get_entity(escape_key(HOSTILE_ID), "")).metadata["etag"]
    hit = await cli.json("count", "-q", f"name = 'N{XSS}' AND instanceId = '{HOSTILE_ID}'")
    assert hit["total"] == 1
    quoted = await cli.json("count", "-q", "customStatus CONTAINS '\"' OR name = 'it''s \" x' OR name = '"
                            + "\U0001F600\ufffe\uffff\ud7ff" + "x" * 10_000 + "'")
    assert quoted["total"] == 1  # the customStatus JSON text holds quotes; nothing else matches
    lines = (await cli.ok("get-instances", "-q", "instanceId CONTAINS '<script'", "--output", "jsonl")).stdout
    assert [json.loads(x)["instanceId"] for x in lines.splitlines()] == [HOSTILE_ID]
    none = await cli.json("bulk", "terminate", "-q", f"name = '{XSS}\U0001F600'", "--reason", XSS, "--yes")
    assert none == {"matched": 0}
    # an unclosed quote: where and why, nothing run
    bad = await cli("bulk", "purge", "-q", "name = 'x", "--yes")
    assert bad.code == 2 and "column" in bad.stderr and "Traceback" not in bad.stderr
    # a lone surrogate cannot reach storage: refused, saying which value (bytes not UTF-8 on the command line)
    raw = await cli("count", "-q", "name = '\udcff'")
    assert raw.code == 2 and raw.stderr.splitlines()[0] == (
        "Error: Invalid query at column 9: invalid character U+DCFF (a lone UTF-16 surrogate); the query must "
        "be valid Unicode text.")
    after = await hub.instances.client.get_entity(escape_key(HOSTILE_ID), "")
    assert after.metadata["etag"] == before and after["RuntimeStatus"] == "Completed"


async def test_hostile_values_and_arguments_are_escaped_in_dashboard_pages(hub, manager):
    import aiohttp
    from urllib.parse import quote

    from durable_mgmt.dashboard.standalone import StandaloneServer

    await _hostile_instance(hub)
    async with StandaloneServer(manager, port=0) as server, aiohttp.ClientSession() as session:
        base = server.url
        paths = ["?range=all", "?range=all&q=" + quote(f"name CONTAINS '<script'"),
                 "rows?range=all", "instance?id=" + quote(HOSTILE_ID),
                 "?range=all&q=" + quote(f"name = '{XSS}"),  # unclosed: the caret error shows the text
                 "?range=all&name=" + quote(XSS) + "&prefix=" + quote(XSS) + "&custom=" + quote(XSS),
                 "?range=all&q=" + quote("name = '" + "\U0001F600\uffff\ud7ff" + "x" * 3000 + "'"),
                 "?range=all&q=name%20%3D%20%27a%00b%27", "?range=all&q=name%20%3D%20%27%ED%A0%80%27",
                 "plan?q=" + quote(f"customStatus CONTAINS '{XSS}'"), "instance?id=" + quote(XSS)]
        for path in paths:
            async with session.get(base + path) as r:
                text = await r.text(errors="replace")
                assert r.status in (200, 400, 404), (path, r.status, text[:300])
                assert '<script id="pwned"' not in text, (path, text[text.find("pwned") - 200:][:400])
        async with session.get(base + "?range=all") as r:
            assert "&lt;script id=&#34;pwned&#34;&gt;" in await r.text() or "&lt;script" in await r.text()
    after = await hub.instances.client.get_entity(escape_key(HOSTILE_ID), "")
    assert after["RuntimeStatus"] == "Completed" and json.loads(after["CustomStatus"]) == XSS


# --- 3. the read-ahead's coverage ----------------------------------------------------------------------

async def test_a_resumed_purge_of_batch_size_one_with_claims_in_its_window_purges_each_once(hub, client, manager,
                                                                                          monkeypatch):
    # An earlier run claimed members 0-2 and died before recording them (p-1 was purged by it, the others
    # not). The resumed run (chunks of 1, statuses and history keys read ahead for 5 chunks) checks the
    # claimed ones one by one, reads the others in windows, and a restart of p-6 after its window was read
    # is left whole.
    from durable_mgmt.taskhub.jobs_table import JobsTable

    ids = [f"p-{i}" for i in range(9)]
    for iid in ids:
        await hostlike_instance(hub, iid, "Completed", name="Target")
    job = await manager.bulk(BulkRequest("purge", "name = 'Target'", batch_size=1, concurrency=1))
    await job.run(lambda i: job.stop() if i.state is JobState.RUNNING else None)
    jobs = JobsTable(hub)
    keys = [key async for page in jobs.selection(job.id) for key, _ in page]
    assert len(keys) == 9
    await jobs.claim_through(job.id, keys[2])
    await client.purge_instance("p-1")  # the dead run's purge of p-1 took effect
    reads: list[list[str]] = []
    original = actions.bulk_ops.statuses

    async def read_then_restart(hub_, instance_ids, **kwargs):
        found = await original(hub_, instance_ids, **kwargs)
        reads.append(list(instance_ids))
        if "p-6" in instance_ids and not any("p-6" in r for r in reads[:-1]):
            await client.start("Target", {"again": True}, instance_id="p-6")
        return found

    monkeypatch.setattr(actions.bulk_ops, "statuses", read_then_restart)
    info = await (await manager.job(job.id)).run()
    assert not {"p-0", "p-1", "p-2"} & {i for r in reads for i in r}  # the claimed ones are not read ahead
    assert len(reads) < 6  # windows, not a read per chunk
    outcomes = {o.instance_id: o async for o in job.outcomes()}
    assert sorted(outcomes) == ids  # one outcome each
    assert outcomes["p-6"].outcome is Outcome.SKIPPED
    assert info.state is JobState.COMPLETED and info.failed == 0, outcomes
    assert (await client.get_status("p-6")).input == {"again": True}
    for iid in ids:
        if iid != "p-6":
            assert await hub.instances.get(iid) is None and await hub.history.rows(iid) == []


# --- 6. the engine: a start that fails, and a stop raced against it --------------------------------------

async def test_a_stop_raced_against_a_start_failing_after_taking_a_partition_leaves_nothing(hub, index):
    # The stop arrives while the start takes partitions; the start then fails once one is taken and its
    # reader runs. The start's caller gets the start's error, the stop returns quietly, nothing of the
    # engine runs, its own pool is shut down, and the partition is handed back (not left to expire).
    from tests.test_engine_stop import _assert_nothing_runs

    from .test_h25_review import _engine, _owners

    stopping: asyncio.Task | None = None
    e = None

    async def fail_after_stop_arrived(p: int) -> None:
        nonlocal stopping
        assert "start-fails" in await _owners(hub)  # the partition is really ours in storage
        stopping = asyncio.create_task(e.stop())
        await asyncio.sleep(0.05)
        assert not stopping.done()  # it waits for the start
        raise RuntimeError("boom while starting")

    e = _engine(hub, index, "start-fails", fail_after_stop_arrived)
    with pytest.raises(RuntimeError, match="boom while starting"):
        await e.start()
    await stopping  # no error of its own
    _assert_nothing_runs(e)
    assert "start-fails" not in await _owners(hub)
    await e.stop()  # again: nothing to do, no error
    _assert_nothing_runs(e)


async def test_a_start_refused_before_any_partition_is_torn_down_and_a_stop_after_it_is_quiet(hub, index):
    from funchost.engine import Engine
    from tests.test_engine_stop import _assert_nothing_runs

    e = Engine(hub, index, worker_id="start-refused", lease_tick_seconds=1.0)

    async def refuse() -> None:
        raise RuntimeError("lease refused")

    e.leases.start = refuse
    with pytest.raises(RuntimeError, match="lease refused"):
        await e.start()
    _assert_nothing_runs(e)  # torn down by the failed start itself, no stop needed
    await asyncio.wait_for(e.stop(), 5)
    _assert_nothing_runs(e)
    with pytest.raises(RuntimeError, match="starts once"):
        await e.start()


# --- 5. count, find and bulk jobs over a hub the provider wrote -------------------------------------------

@pytest.mark.parametrize("generation", ["v2", "v3"])
async def test_count_find_and_bulk_jobs_over_a_provider_hub(account, generation):
    import uuid

    from durable_mgmt.taskhub import TaskHub

    from .conformance import provider as p
    from .conformance.corpus import PARTITION_COUNT, load_corpus
    from .conformance.validator import check_queues, check_rows

    assert generation in p.GENERATIONS
    c = await load_corpus(account, f"CorpH{generation}{uuid.uuid4().hex[:8]}", generation)
    async with TaskHub(account, c.hub, PARTITION_COUNT) as hub:
        try:
            mgr = InstanceManager(StorageTransport(hub))
            exp = c.expected
            # client-side halves on the provider's columns (customStatus, the large inputs in blobs)
            text = "customStatus != '' OR input CONTAINS 'xxxxxxxx' OR name CONTAINS 'Approval'"
            found = sorted([s.instance_id async for s in mgr.find(text, fields=())])
            want = sorted(i for i, w in exp.items()
                          if w.get("custom_status") is not None or "Approval" in w["name"]
                          or "xxxxxxxx" in json.dumps(w.get("input")))
            assert found == want and len(want) >= 3, (found, want)
            counted = await mgr.count(CountRequest(text, "status"))
            assert counted.groups == dict(Counter(exp[i]["status"] for i in want))
            assert sorted([i async for ids, _ in scan_ids(hub, Query.parse(text)) for i in ids],
                          key=escape_key) == sorted(want, key=escape_key)
            # bulk terminate of the active ones: each gets one message the provider's workers read
            active = sorted(i for i, w in exp.items() if w["status"] in ("Running", "Pending"))
            job = await mgr.bulk(BulkRequest("terminate", "status IN (Running, Pending)", batch_size=2))
            info = await job.run()
            assert (info.state, info.done, info.failed) == (JobState.COMPLETED, len(active), 0), info
            await check_queues(account, c.hub, PARTITION_COUNT, expect=len(c.messages) + len(active))
            # bulk purge of the finished ones: rows, history and blobs gone, the others as the provider reads them
            done = sorted(i for i, w in exp.items() if w["status"] in ("Completed", "Failed", "Terminated"))
            job = await mgr.bulk(BulkRequest("purge", "status IN (Completed, Failed, Terminated)", batch_size=2))
            info = await job.run()
            assert (info.state, info.done, info.failed) == (JobState.COMPLETED, len(done), 0), info
            for iid in exp:
                if iid in done:
                    assert not await mgr.exists(iid) and await hub.history.rows(iid) == []
                else:
                    await check_rows(account, c.hub, iid, with_history=exp[iid]["status"] != "Pending")
            left = [b.name async for b in hub.container(hub.names.large_messages_container).list_blobs()]
            assert {n.split("/")[0] for n in left} <= {"corpus-bigstart"}, left
        finally:
            await hub.delete()


async def test_a_start_failing_with_its_undo_cut_short_after_a_stop_gave_up_waiting_leaves_nothing(hub, index,
                                                                                                  caplog):
    # The stop gave up waiting for the start (its time ran out) and returned; the start then fails after
    # taking a partition, and its undo fails too (the orchestration reader's stop raises). Nobody calls
    # stop() again: the start must not leave the partition's reader running over storage the host closes.
    from tests.test_engine_stop import _assert_nothing_runs

    from .test_h25_review import _engine

    e = None
    gave_up = asyncio.Event()

    async def fail_once_stop_gave_up(p: int) -> None:
        await asyncio.wait_for(e.stop(timeout=0.05), 5)
        gave_up.set()
        raise RuntimeError("boom while starting")

    e = _engine(hub, index, "undo-cut", fail_once_stop_gave_up)
    _make_the_reader_stop_fail(e)
    with pytest.raises(RuntimeError, match="boom while starting"):
        await e.start()
    assert gave_up.is_set() and "did not finish starting within" in caplog.text
    _assert_nothing_runs(e)


def _make_the_reader_stop_fail(e) -> None:
    """Stopping the engine's orchestration readers stops them, then raises (a storage error while an episode
    commits)."""
    real_stop = e.orchestrations.stop

    async def stop_fails() -> None:
        await real_stop()
        raise RuntimeError("stopping the readers failed")

    e.orchestrations.stop = stop_fails


async def test_a_stop_whose_reader_stop_fails_still_stops_everything_else(hub, index):
    # Stopping the orchestration readers fails (a storage error while an episode commits): the stop
    # reports that error, but the work-item reader and the lease rounds must not run on after it.
    from funchost.engine import Engine
    from tests.test_engine_stop import _assert_nothing_runs

    e = Engine(hub, index, worker_id="reader-stop-fails", lease_tick_seconds=1.0)
    await e.start()
    _make_the_reader_stop_fail(e)
    with pytest.raises(RuntimeError, match="stopping the readers failed"):
        await e.stop()
    _assert_nothing_runs(e)
