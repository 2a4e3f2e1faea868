"""Hostile review of issue 13 (h25): bulk jobs reading statuses for several chunks at once, the selection
reading only the columns its client-side filter needs, the job's request parsed once."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from durable_mgmt import BulkRequest, DurableError, InstanceManager, JobState, Outcome
from durable_mgmt.jobs import actions, runner
from durable_mgmt.taskhub.jobs_table import JobsTable
from durable_mgmt.transports import StorageTransport

from .test_bulk_jobs import drain_messages, start_many
from .test_cli_support import hostlike_instance
from .test_engine_e2e import index, state_dir  # noqa: F401 (fixtures)


@pytest.fixture
def manager(hub) -> InstanceManager:
    return InstanceManager(StorageTransport(hub))


def _terminated(messages) -> dict[str, int]:
    return {iid: n for (iid, kind), n in messages.items() if kind == "ExecutionTerminated"}


async def _select_only(manager, request: BulkRequest):
    job = await manager.bulk(request)
    await job.run(lambda i: job.stop() if i.state is JobState.RUNNING else None)
    return job


async def test_a_purge_read_ahead_leaves_an_instance_restarted_before_its_chunk_acts(hub, client, manager,
                                                                                    monkeypatch):
    # Statuses and history keys of chunks 1-5 are read when chunk 1 is prepared; an instance of chunk 4 is
    # started again after that read (after the first checkpoint). The ETag-checked purge must leave the new
    # run whole and say so, and every other instance is purged once.
    ids = [f"p-{i:02d}" for i in range(12)]
    for iid in ids:
        await hostlike_instance(hub, iid, "Completed", name="Target")
    reads: list[list[str]] = []
    original = actions.bulk_ops.statuses

    async def counted(hub_, instance_ids, **kwargs):
        reads.append(list(instance_ids))
        return await original(hub_, instance_ids, **kwargs)

    restarted = "p-07"  # chunk 4 of chunks of 2
    # Recorded first, so the run reads statuses by batch (a job acting as it selects uses the scan's).
    job = await _select_only(manager, BulkRequest("purge", "name = 'Target'", batch_size=2, concurrency=2))
    monkeypatch.setattr(actions.bulk_ops, "statuses", counted)

    async def restart_once(info):
        if info.state is JobState.RUNNING and info.finished == 2:
            await client.start("Target", {"again": True}, instance_id=restarted)

    info = await (await manager.job(job.id)).run(restart_once)
    assert restarted in reads[0]  # read ahead, before the restart
    assert (info.state, info.done, info.skipped, info.failed) == (JobState.COMPLETED, 11, 1, 0)
    skipped = [o async for o in job.outcomes(Outcome.SKIPPED)]
    assert [o.instance_id for o in skipped] == [restarted] and "started again" in skipped[0].reason
    assert (await client.get_status(restarted)).input == {"again": True}
    for iid in ids:
        if iid != restarted:
            assert await hub.instances.get(iid) is None
            assert await hub.history.rows(iid) == []


async def test_a_failed_status_read_mid_window_acts_on_each_member_once(hub, client, manager, monkeypatch):
    # The second of the window's reads fails: its chunk acts one by one, the next chunk reads again, and
    # every instance gets one terminate.
    targets = await start_many(client, 24)
    calls = 0
    original = actions.bulk_ops.statuses

    async def second_fails(hub_, instance_ids, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise DurableError("storage hiccup (test)")
        return await original(hub_, instance_ids, **kwargs)

    # Recorded first, so the run reads statuses by batch (a job acting as it selects uses the scan's).
    job = await _select_only(manager, BulkRequest("terminate", "name = 'Target'", batch_size=2, concurrency=3))
    monkeypatch.setattr(actions.bulk_ops, "statuses", second_fails)
    info = await (await manager.job(job.id)).run()
    assert calls >= 3
    assert (info.state, info.done, info.skipped, info.failed) == (JobState.COMPLETED, 24, 0, 0)
    assert _terminated(await drain_messages(hub)) == {t: 1 for t in targets}


async def test_a_resumed_job_with_claims_inside_a_read_ahead_window_acts_on_each_member_once(
        hub, client, manager, monkeypatch):
    # An earlier run claimed members 1-5 and stopped before recording them (nothing was sent). The resumed
    # run gives those as in doubt (checked one by one) while reading the others ahead: each gets exactly one
    # terminate, the in-doubt ones "sent again".
    monkeypatch.setattr(actions, "IN_DOUBT_WAIT", 0.0)
    targets = await start_many(client, 17)
    job = await _select_only(manager, BulkRequest("terminate", "name = 'Target'", batch_size=3, concurrency=3))
    jobs = JobsTable(hub)
    keys = [key async for page in jobs.selection(job.id) for key, _ in page]
    await jobs.claim_through(job.id, keys[4])
    info = await (await manager.job(job.id)).run()
    assert (info.state, info.done, info.skipped, info.failed) == (JobState.COMPLETED, 17, 0, 0)
    assert _terminated(await drain_messages(hub)) == {t: 1 for t in targets}
    again = {o.instance_id async for o in job.outcomes(Outcome.DONE) if "sent again" in o.reason}
    assert again == set(targets[:5])


async def test_a_job_request_follows_a_change_of_its_params(hub, manager):
    job = await manager.bulk(BulkRequest("terminate", "name = 'Target'", batch_size=3, reason="one"))
    assert (job.request.batch_size, job.request.reason) == (3, "one")
    job.info = replace(job.info, params={**job.info.params, "batch_size": 7, "reason": "two"})
    assert (job.request.batch_size, job.request.reason) == (7, "two")
    job.info = replace(job.info, query="name = 'Other'")
    assert job.request.query.text == "name = 'Other'"
    job.info = replace(job.info, params={**job.info.params, "selected": True, "offset": 5})
    assert job.request.batch_size == 7


async def test_a_job_canceled_inside_a_read_ahead_window_sends_to_exactly_the_members_it_records(hub, client,
                                                                                                manager,
                                                                                                monkeypatch):
    # Canceled from "another request" after its first checkpoint, while statuses are read ahead for chunks
    # it will never act on: the terminates sent are exactly the instances recorded done, and the claim mark
    # is back at what was acted on (a cancel leaves nothing in doubt).
    monkeypatch.setattr(runner, "CANCEL_CHECK_SECONDS", 0.0)  # every chunk looks for a cancel
    targets = await start_many(client, 30)
    job = await manager.bulk(BulkRequest("terminate", "name = 'Target'", batch_size=2, concurrency=2))
    asked = []

    async def cancel_once(info):
        if info.state is JobState.RUNNING and info.finished >= 2 and not asked:
            asked.append(await manager.cancel_job(job.id))

    info = await job.run(cancel_once)
    assert info.state is JobState.CANCELED and 2 <= info.done < 30
    done = {o.instance_id async for o in job.outcomes(Outcome.DONE)}
    assert len(done) == info.done and done <= set(targets)
    assert _terminated(await drain_messages(hub)) == {t: 1 for t in done}
    jobs = JobsTable(hub)
    keys = {iid: key async for page in jobs.selection(job.id) for key, iid in page}
    assert await jobs.claimed_through(job.id) == max((keys[t] for t in done), key=runner.service_order)


@pytest.mark.parametrize("query", ["input CONTAINS 'needle'", "input CONTAINS 'needle' OR name = 'Nope'",
                                   "NOT input CONTAINS 'needle' AND name = 'Big'"])
async def test_a_selection_filtered_on_an_input_kept_in_a_blob_selects_what_find_matches(hub, client, manager,
                                                                                        query):
    # A large input is stored in a blob (the row holds its URL): the client-side filter must see the value.
    await client.start("Big", "x" * 100_000 + "needle", instance_id="big-needle")
    await client.start("Big", "x" * 100_000, instance_id="big-plain")
    await client.start("Big", "small needle", instance_id="small-needle")
    expected = [s.instance_id async for s in manager.find(query)]
    assert expected
    job = await _select_only(manager, BulkRequest("suspend", query))
    assert [o.instance_id async for o in job.outcomes(Outcome.PENDING)] == expected


async def test_a_job_stopped_inside_a_read_ahead_window_resumes_acting_on_each_member_once(hub, client, manager):
    # Stopped after its second checkpoint, with statuses read for chunks it never acted on: the resumed run
    # reads them again and every instance gets one terminate; none is in doubt.
    targets = await start_many(client, 20)
    job = await manager.bulk(BulkRequest("terminate", "name = 'Target'", batch_size=2, concurrency=2))
    first = await job.run(lambda i: job.stop() if i.state is JobState.RUNNING and i.finished >= 4 else None)
    assert first.state is JobState.INTERRUPTED and 4 <= first.finished < 20
    info = await (await manager.job(job.id)).run()
    assert (info.state, info.done, info.skipped, info.failed) == (JobState.COMPLETED, 20, 0, 0)
    assert _terminated(await drain_messages(hub)) == {t: 1 for t in targets}
    assert not [o async for o in job.outcomes(Outcome.DONE) if "again" in o.reason or "confirmed" in o.reason]


async def test_a_purge_of_rows_without_an_execution_id_or_with_typed_columns(hub, manager):
    # Rows as other writers leave them: no ExecutionId column, or one written with an explicit type.
    from azure.data.tables import EdmType, EntityProperty, UpdateMode

    for i in range(6):
        row = await hostlike_instance(hub, f"q-{i}", "Completed", name="Target")
        if i % 2:
            await hub.instances.client.update_entity(
                {"PartitionKey": row["PartitionKey"], "RowKey": "", "ExecutionId": EntityProperty(row["ExecutionId"], EdmType.STRING)})
        else:
            await hub.instances.client.upsert_entity({k: v for k, v in row.items() if k != "ExecutionId"},
                                                     mode=UpdateMode.REPLACE)
            assert "ExecutionId" not in await hub.instances.client.get_entity(row["PartitionKey"], "")
    job = await manager.bulk(BulkRequest("purge", "name = 'Target'", batch_size=2))
    info = await job.run()
    assert (info.state, info.done, info.skipped, info.failed) == (JobState.COMPLETED, 6, 0, 0)
    for i in range(6):
        assert await hub.instances.get(f"q-{i}") is None and await hub.history.rows(f"q-{i}") == []


# --- the engine's stop (h24) ------------------------------------------------------------------------

def _engine(hub, index, worker_id: str, on_taken):
    """An engine whose lease rounds call ``on_taken(p)`` once partition ``p`` is taken (its reader started)."""
    from funchost.engine import Engine

    e = Engine(hub, index, worker_id=worker_id, lease_tick_seconds=1.0)
    real = e.leases.on_acquired

    async def taken(p: int) -> None:
        await real(p)
        await on_taken(p)

    e.leases.on_acquired = taken
    return e


async def _owners(hub) -> list[str]:
    from durable_mgmt.taskhub.partitions import PartitionTable

    return [lease.current_owner for lease in await PartitionTable(hub).read() if lease.current_owner]


async def test_an_engine_starting_while_another_worker_writes_a_lease_starts(hub, index):
    # Two workers start on one hub: ours takes its first partition, then the other writes another
    # partition's lease row between our read and our claim (a 412). The provider's partition loop takes a
    # 412 as "re-read at once" (TablePartitionManager.PartitionManagerLoop); before, our start failed with
    # ConcurrencyConflict and left the first partition's reader running after stop().
    from tests.test_engine_stop import _assert_nothing_runs

    table = hub.table_service.get_table_client(hub.names.partitions_table)
    raced = []

    async def another_worker_writes(p: int) -> None:
        if not raced:
            rows = [r async for r in table.list_entities()]
            other = next(r for r in rows if r.get("CurrentOwner") != "start-raced")
            await table.update_entity({"PartitionKey": other["PartitionKey"], "RowKey": other["RowKey"],
                                       "IsDraining": False})
            raced.append(other["RowKey"])

    e = _engine(hub, index, "start-raced", another_worker_writes)
    await e.start()
    assert raced and e.running and e.owned_partitions
    await e.stop()
    _assert_nothing_runs(e)
    assert "start-raced" not in await _owners(hub)


async def test_an_engine_start_cut_short_after_taking_a_partition_leaves_nothing_running(hub, index):
    # A second Ctrl-C (or any failure) during start, once a partition is taken and its reader runs: once
    # stop() has returned nothing of the engine may run over storage the host closes next, and the
    # partition is handed back rather than left to expire.
    from tests.test_engine_stop import _assert_nothing_runs

    starting: asyncio.Task | None = None

    async def cut_short(p: int) -> None:
        starting.cancel()

    e = _engine(hub, index, "start-cut", cut_short)
    starting = asyncio.create_task(e.start())
    with pytest.raises(asyncio.CancelledError):
        await starting
    await e.stop()
    _assert_nothing_runs(e)
    assert "start-cut" not in await _owners(hub)


async def test_a_selection_by_creation_time_selects_what_find_matches_at_the_edges(hub, manager):
    # Times are pushed down widened and checked here exactly (the selection then reads CreatedTime too):
    # rows on, just inside and just outside each edge, and one without the column.
    from datetime import datetime, timedelta, timezone

    from .test_cli_support import gather_limited

    lo = datetime(2026, 1, 1, tzinfo=timezone.utc)
    hi = lo + timedelta(hours=1)
    ms = timedelta(milliseconds=1)
    times = [lo - ms, lo, lo + ms, hi - ms, hi, hi + ms, None]
    rows = []
    for i, t in enumerate(times):
        row = {"PartitionKey": f"e-{i}", "RowKey": "", "Name": "E", "RuntimeStatus": "Running"}
        if t is not None:
            row["CreatedTime"] = t
        rows.append(row)
    await gather_limited([hub.instances.client.upsert_entity(r) for r in rows])
    query = f"status = Running AND createdTime >= '{lo.isoformat()}' AND createdTime < '{hi.isoformat()}'"
    expected = [s.instance_id async for s in manager.find(query)]
    assert expected == ["e-1", "e-2", "e-3"]
    job = await _select_only(manager, BulkRequest("terminate", query))
    assert [o.instance_id async for o in job.outcomes(Outcome.PENDING)] == expected
