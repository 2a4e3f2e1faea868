"""Bulk jobs over a real task hub in Azurite, no host: selection, checkpoints, stop/resume, in-doubt
instances, cancel, leases, exports, and bad input that changes nothing."""

from __future__ import annotations

import asyncio
import time
import gzip
import json
from collections import Counter

import pytest

from durable_mgmt import (BulkRequest, ExportRequest, InstanceManager, InvalidInput, JobBusy, JobNotFound, JobState,
                          Outcome, RuntimeStatus)
from durable_mgmt.dashboard import bulk_jobs
from durable_mgmt.jobs import actions
from durable_mgmt.taskhub.jobs_table import JOB_ROW, JobsTable, member_key
from durable_mgmt.transports import StorageTransport

from .test_cli_support import gather_limited, hostlike_instance


@pytest.fixture
def manager(hub) -> InstanceManager:
    return InstanceManager(StorageTransport(hub))


async def start_many(client, n: int, name: str = "Target", prefix: str = "t-") -> list[str]:
    return await gather_limited([client.start(name, {"i": i}, instance_id=f"{prefix}{i:03d}") for i in range(n)])


async def drain_messages(hub) -> Counter:
    """(instance id, event type) of every message on the control queues (taken off for good)."""
    seen: Counter = Counter()
    for name in hub.names.control_queues:
        queue = hub.queue(name)
        while True:
            batch = [m async for m in queue.receive_messages(messages_per_page=32, max_messages=32,
                                                            visibility_timeout=300)]
            if not batch:
                break
            for m in batch:
                msg = await hub.large.decode_message(m.content)
                seen[(msg.instance_id, msg.event.type.name)] += 1
    return seen


async def test_bulk_terminate_reaches_each_match_once_and_records_why(hub, client, manager):
    targets = await start_many(client, 30)
    others = await start_many(client, 5, name="Other", prefix="o-")
    await hostlike_instance(hub, "t-done", "Completed", name="Target")  # matches, but cannot be terminated
    job = await manager.bulk(BulkRequest("terminate", "name = 'Target'", reason="cleanup", batch_size=7,
                                         concurrency=4))
    seen_states = []
    info = await job.run(lambda i: seen_states.append((i.state, i.finished, i.matched, i.selection_complete)))
    assert (info.state, info.matched, info.done, info.skipped, info.failed) == (JobState.COMPLETED, 31, 30, 1, 0)
    # Running from the first recorded page (the scan's end is known only when the next page is asked for).
    assert seen_states[0] == (JobState.RUNNING, 0, 31, False)
    assert seen_states[-1] == (JobState.COMPLETED, 31, 31, True)
    assert [n for s, n, _, _ in seen_states if s is JobState.RUNNING and n] == [7, 14, 21, 28, 31]

    messages = await drain_messages(hub)
    terminated = {iid: n for (iid, kind), n in messages.items() if kind == "ExecutionTerminated"}
    assert terminated == {iid: 1 for iid in targets}
    assert {kind for (iid, kind) in messages if iid in others} == {"ExecutionStarted"}  # untouched

    outcomes = {o.instance_id: o async for o in job.outcomes()}
    assert set(outcomes) == set(targets) | {"t-done"}
    assert outcomes["t-done"].outcome is Outcome.SKIPPED and "already Completed" in outcomes["t-done"].reason
    assert all(outcomes[t].outcome is Outcome.DONE and outcomes[t].reason == "terminate sent" for t in targets)
    # Filtered by outcome, including the done ones a checkpoint implies by its cursor instead of writing them.
    assert {o.instance_id async for o in job.outcomes(Outcome.DONE)} == set(targets)
    assert [o.instance_id async for o in job.outcomes(Outcome.SKIPPED, Outcome.FAILED)] == ["t-done"]
    assert [o async for o in job.outcomes(Outcome.PENDING)] == []
    assert [j.id for j in await manager.jobs()] == [job.id]


async def test_statuses_read_for_several_chunks_at_once_still_tell_each_instance_apart(hub, client, manager):
    # Without a rate, one status read covers five chunks (runner.READ_AHEAD_CHUNKS): 40 targets in chunks of 3
    # take three reads, and finished instances sit in each of them, at the edges of reads and chunks.
    targets = await start_many(client, 40)
    finished = ["t-000a", "t-014a", "t-029a", "t-039a"]
    for iid in finished:
        await hostlike_instance(hub, iid, "Completed", name="Target")
    job = await manager.bulk(BulkRequest("terminate", "name = 'Target'", batch_size=3, concurrency=4))
    info = await job.run()
    assert (info.state, info.matched, info.done, info.skipped) == (JobState.COMPLETED, 44, 40, 4)
    assert _terminated(await drain_messages(hub)) == {t: 1 for t in targets}
    assert [o.instance_id async for o in job.outcomes(Outcome.SKIPPED)] == finished


async def test_at_a_rate_each_chunk_reads_the_statuses_it_acts_on(hub, client, manager):
    # At a rate a chunk acts long after the one before it, so its statuses are read just before it acts, not
    # ahead: an instance that finishes while the job runs is skipped, not sent a terminate.
    targets = await start_many(client, 8)
    table = hub.instances.client

    async def finish_the_last_one(info):
        if info.state is JobState.RUNNING and info.finished == 2:
            await table.update_entity({"PartitionKey": targets[-1], "RowKey": "", "RuntimeStatus": "Completed"})

    job = await manager.bulk(BulkRequest("terminate", "instanceId STARTS_WITH 't-'", rate=40, batch_size=2))
    info = await job.run(finish_the_last_one)
    assert (info.done, info.skipped) == (7, 1)
    (skipped,) = [o async for o in job.outcomes(Outcome.SKIPPED)]
    assert skipped.instance_id == targets[-1] and "already Completed" in skipped.reason
    assert _terminated(await drain_messages(hub)) == {t: 1 for t in targets[:-1]}


def _terminated(messages) -> dict[str, int]:
    return {iid: n for (iid, kind), n in messages.items() if kind == "ExecutionTerminated"}


async def test_a_stopped_job_resumes_without_repeating_finished_instances(hub, client, manager):
    targets = await start_many(client, 25)
    job = await manager.bulk(BulkRequest("suspend", "instanceId STARTS_WITH 't-'", batch_size=5))

    def stop_after_two(info):
        if info.state is JobState.RUNNING and info.finished >= 10:
            job.stop()

    first = await job.run(stop_after_two)
    # The second checkpoint is reported while later batches are in flight (up to runner.ACTING_CHUNKS of them):
    # those are finished and recorded, whole; nothing after them is started.
    assert first.state is JobState.INTERRUPTED and first.done in (15, 20)
    # The next batch was claimed ahead (pipeline) but not acted on: the claim mark went back to the cursor,
    # so the resumed run does not take it for in doubt (and wait to see each instance's state).
    assert await JobsTable(hub).claimed_through(job.id) == first.cursor
    # A new instance that matches now is not added: the selection was frozen when the job was created.
    await client.start("Target", instance_id="t-late")
    resumed = await (await manager.job(job.id)).run()
    assert (resumed.state, resumed.matched, resumed.done) == (JobState.COMPLETED, 25, 25)
    suspended = {iid: n for (iid, kind), n in (await drain_messages(hub)).items() if kind == "ExecutionSuspended"}
    assert suspended == {iid: 1 for iid in targets}
    assert {(o.instance_id, o.outcome, o.reason) async for o in job.outcomes()} == {
        (iid, Outcome.DONE, "suspend sent") for iid in targets}
    again = await (await manager.job(job.id)).run()  # a finished job does nothing more
    assert again.state is JobState.COMPLETED
    assert not [k for _, k in await drain_messages(hub) if k != "ExecutionStarted"]


async def test_the_handle_that_created_a_job_resumes_it_if_another_ran_it_first(hub, client, manager, monkeypatch):
    # A handle's first run takes a job it created with one conditional write (runner._acquire_created) and
    # skips looking for an earlier run's leftovers. Once another handle ran the job (and a crash left a claim
    # ahead of its cursor), that write fails and the run resumes: the claimed instances are in doubt.
    targets = await start_many(client, 25)
    job = await manager.bulk(BulkRequest("suspend", "instanceId STARTS_WITH 't-'", batch_size=5))
    other = await manager.job(job.id)
    first = await other.run(lambda i: other.stop() if i.state is JobState.RUNNING and i.finished >= 10 else None)
    assert first.state is JobState.INTERRUPTED and first.done in (15, 20)
    in_doubt = [t for t in targets if first.cursor < member_key(t) <= member_key(targets[first.done + 2])]
    await JobsTable(hub).claim_through(job.id, member_key(in_doubt[-1]))
    monkeypatch.setattr(actions, "IN_DOUBT_WAIT", 0.1)
    final = await job.run()
    assert (final.state, final.matched, final.done, final.failed) == (JobState.COMPLETED, 25, 25, 0)
    reasons = {o.instance_id: o.reason async for o in job.outcomes()}
    assert {i for i, r in reasons.items() if r.endswith("(sent again after an interruption)")} == set(in_doubt)


async def test_two_concurrent_runs_of_the_creating_handle_do_not_both_act(hub, client, manager):
    # Two run() calls on the handle that created the job (a double-clicked start, a retry that did not
    # wait for the first): only one may act; the other must raise JobBusy.
    await start_many(client, 40)
    job = await manager.bulk(BulkRequest("terminate", "instanceId STARTS_WITH 't-'", batch_size=5, concurrency=2))
    results = await asyncio.gather(job.run(), job.run(), return_exceptions=True)
    busy = [r for r in results if isinstance(r, JobBusy)]
    others = [r for r in results if not isinstance(r, JobBusy)]
    messages = await drain_messages(hub)
    terminated = Counter({iid: n for (iid, kind), n in messages.items() if kind == "ExecutionTerminated"})
    assert max(terminated.values()) == 1, f"terminate sent twice to some instances: {terminated.most_common(3)}; {results}"
    assert len(busy) == 1, results
    assert others[0].state is JobState.COMPLETED and others[0].done == 40, others


async def test_a_handle_already_running_its_job_refuses_a_second_run(hub, client, manager):
    # A second run() on a handle whose run is under way (the lease is this handle's own, so the lease check
    # alone would let it through) is refused: two runs of one handle would act on the same instances twice.
    await start_many(client, 40)
    job = await manager.bulk(BulkRequest("terminate", "instanceId STARTS_WITH 't-'", batch_size=5, concurrency=2))
    started = asyncio.Event()
    first = asyncio.ensure_future(job.run(lambda i: started.set() if i.finished else None))
    await asyncio.wait_for(started.wait(), 60)
    with pytest.raises(JobBusy, match="already running"):
        await job.run()
    info = await first
    assert (info.state, info.done) == (JobState.COMPLETED, 40)
    terminated = Counter({iid: n for (iid, kind), n in (await drain_messages(hub)).items() if kind == "ExecutionTerminated"})
    assert set(terminated.values()) == {1} and len(terminated) == 40


async def test_a_job_whose_row_is_gone_before_its_first_run_is_not_found(hub, client, manager):
    # The task hub (and with it the jobs table) deleted between create and run, e.g. the dashboard's
    # "start" racing a 'delete hub': a handle from manager.job() or a resumed run says JobNotFound (404);
    # the creating handle's first run (runner._acquire_created's conditional write) must say the same, not a
    # storage outage.
    await start_many(client, 3)
    job = await manager.bulk(BulkRequest("terminate", "instanceId STARTS_WITH 't-'"))
    other = await manager.job(job.id)
    await hub.table_service.get_table_client(hub.names.jobs_table).delete_entity(job.id, JOB_ROW)
    with pytest.raises(JobNotFound):
        await other.run()
    with pytest.raises(JobNotFound):
        await job.run()


async def test_a_cancel_is_seen_while_the_scan_reads_pages_without_a_match(hub, client, manager, monkeypatch):
    # A query storage cannot evaluate (on the input) reads every row; here the matches come last, after ten
    # pages of 20 rows that match nothing. A cancel asked for from another
    # process while those pages are read stops the job at once, Canceled: it does not wait for a first match,
    # and it acts on nothing.
    from durable_mgmt.taskhub import scan
    monkeypatch.setattr(scan, "MAX_PAGE", 20)
    await gather_limited([hostlike_instance(hub, f"a-{i:03d}", "Running", name="Target") for i in range(200)])
    await start_many(client, 5, prefix="z-")
    job = await manager.bulk(BulkRequest("terminate", """input CONTAINS '"i"'"""))  # start_many's inputs only
    pages = []

    async def cancel_from_elsewhere(info):
        pages.append(info.params.get("scanned"))
        if len(pages) == 1:
            await (await manager.job(job.id)).cancel()  # another handle: the run's lease is live, so a request

    info = await job.run(cancel_from_elsewhere)
    assert (info.state, info.matched, info.finished) == (JobState.CANCELED, 0, 0), info
    assert len(pages) <= 3 and not info.selection_complete, pages  # stopped after the page it saw the request on
    assert not [k for _, k in await drain_messages(hub) if k == "ExecutionTerminated"]


async def _claimed_job(manager, hub, request: BulkRequest, claim_through: str):
    """A job whose selection is done and whose instances up to ``claim_through`` were claimed by a process
    that then died before recording anything."""
    job = await manager.bulk(request)
    # Stopped as soon as the selection is recorded, before acting on anything.
    info = await job.run(lambda i: job.stop() if i.state is JobState.RUNNING else None)
    assert info.state is JobState.INTERRUPTED and info.matched > 0 and info.finished == 0
    await JobsTable(hub).claim_through(job.id, member_key(claim_through))
    return await manager.job(job.id)


async def test_events_in_doubt_after_a_crash_are_never_sent_twice(hub, client, manager):
    targets = await start_many(client, 6)
    job = await _claimed_job(manager, hub, BulkRequest("raise-event", "", event_name="Go", event_data={"x": 1}),
                             claim_through=targets[1])
    info = await job.run()
    assert (info.done, info.failed) == (4, 2)
    failed = [o async for o in job.outcomes(Outcome.FAILED)]
    assert {o.instance_id for o in failed} == set(targets[:2])
    assert all("in doubt" in o.reason for o in failed)
    raised = {iid for (iid, kind) in await drain_messages(hub) if kind == "EventRaised"}
    assert raised == set(targets[2:])


async def test_terminates_in_doubt_are_confirmed_from_the_instance_or_sent_again(hub, client, manager, monkeypatch):
    monkeypatch.setattr(actions, "IN_DOUBT_WAIT", 0.2)
    targets = await start_many(client, 4)
    await hostlike_instance(hub, "t-gone", "Terminated", name="Target")  # its terminate took effect before the crash
    await client.start("Target", instance_id="u-after")  # after the claim mark: not in doubt
    job = await _claimed_job(manager, hub, BulkRequest("terminate", "name = 'Target'"), claim_through="t-gone")
    info = await job.run()
    assert (info.done, info.skipped, info.failed) == (6, 0, 0)
    reasons = {o.instance_id: o.reason async for o in job.outcomes()}
    assert "confirmed after an interruption" in reasons["t-gone"]
    assert all("sent again after an interruption" in reasons[t] for t in targets)
    assert reasons["u-after"] == "terminate sent"
    targets.append("u-after")
    terminated = Counter(iid for (iid, kind), n in (await drain_messages(hub)).items() for _ in range(n)
                         if kind == "ExecutionTerminated")
    assert terminated == {iid: 1 for iid in targets}  # nothing for t-gone: it was already Terminated


async def test_cancel_and_leases(hub, client, manager):
    await start_many(client, 5)
    job = await manager.bulk(BulkRequest("terminate", ""))
    jobs = JobsTable(hub)
    info, etag, _ = await jobs.get(job.id)
    await jobs.update(info, etag, owner="someone-else", lease_seconds=60)  # a live process holds it
    with pytest.raises(JobBusy, match="is being run by another process"):
        await (await manager.job(job.id)).run()
    info, etag, _ = await jobs.get(job.id)
    await jobs.update(info, etag, owner="someone-else", lease_seconds=-1)  # that process died long ago
    busy = await manager.job(job.id)
    stopped = await busy.run(lambda i: busy.stop() if i.state is JobState.RUNNING else None)
    assert (stopped.state, stopped.matched, stopped.finished) == (JobState.INTERRUPTED, 5, 0)
    canceled = await manager.cancel_job(job.id)
    assert canceled.state is JobState.CANCELED
    after = await (await manager.job(job.id)).run()
    assert after.state is JobState.CANCELED and after.finished == 0
    assert not [k for _, k in await drain_messages(hub) if k != "ExecutionStarted"]
    with pytest.raises(JobNotFound, match="No bulk job with id 'nope'"):
        await manager.job("nope")


async def test_bad_requests_are_refused_before_anything_is_written(hub, manager):
    cases = [
        (dict(action="explode"), "Unknown bulk action 'explode'"),
        (dict(action="terminate", rate=0), "Invalid rate 0"),
        (dict(action="terminate", concurrency=0), "Invalid concurrency 0"),
        (dict(action="raise-event"), "raise-event needs an event name"),
        (dict(action="suspend", recursive=True), "--recursive applies to terminate and purge, not suspend"),
        (dict(action="terminate", terminate_first=True), "terminate_first applies to purge only"),
        (dict(action="terminate", batch_size=99), "Invalid batch size 99"),
        (dict(action="terminate", query="status < Running"), "status does not take <"),
        (dict(action="export-history"), "export-history needs the path"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InvalidInput, match=message.replace("(", r"\(")):
            BulkRequest(**kwargs)
    assert await manager.jobs() == []  # nothing was created, not even the jobs table's rows


async def test_export_resumes_without_writing_an_instance_twice(hub, client, manager, tmp_path):
    await gather_limited([hostlike_instance(hub, f"e-{i:02d}", "Completed") for i in range(12)])
    path = tmp_path / "out.jsonl.gz"
    request = ExportRequest("status = Completed", str(path), gzip=True)
    job = await manager.export(BulkRequest(**{**request.__dict__, "query": request.query, "batch_size": 5}))

    def stop_after_first(info):
        if info.state is JobState.RUNNING and info.finished >= 5:
            job.stop()

    assert (await job.run(stop_after_first)).done == 10  # the batch in flight when it was asked to stop is kept
    with open(path, "ab") as f:  # a crash after writing a batch but before its checkpoint
        f.write(gzip.compress(b'{"instanceId": "e-05", "half": "written"}\n'))
    info = await (await manager.job(job.id)).run()
    assert (info.state, info.done) == (JobState.COMPLETED, 12)
    lines = [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines()]
    assert [line["instanceId"] for line in lines] == [f"e-{i:02d}" for i in range(12)]
    assert all(line["runtimeStatus"] == "Completed" and line["historyEvents"] for line in lines)


async def test_delete_hub_deletes_the_jobs_table(account, hub, client, manager):
    await start_many(client, 2)
    await (await manager.bulk(BulkRequest("suspend", ""))).run()
    assert await manager.jobs()
    await client.delete_hub()
    names = [t.name async for t in hub.table_service.list_tables()]
    assert hub.names.jobs_table not in names and hub.names.instances_table not in names


async def test_a_rate_holds_across_runs_of_one_job(hub, client, manager):
    # The dashboard runs a job as short runs (bulk_jobs.step), each with a new handle: a run must not start its
    # first operation at once when the previous run's last one was a moment ago.
    await start_many(client, 3, prefix="paced-")
    job = await manager.bulk(BulkRequest("terminate", "instanceId STARTS_WITH 'paced-'", rate=0.5, batch_size=1))
    began = time.monotonic()
    runs = 0
    while not (info := (await bulk_jobs.step(await manager.job(job.id), seconds=0.5)).info).state.is_final:
        runs += 1
    assert (info.state, info.done, runs > 0) == (JobState.COMPLETED, 3, True)
    assert time.monotonic() - began >= 3.6, "three operations at 0.5 per second take at least 4 s"


def test_runtime_statuses_used_above_exist():
    assert RuntimeStatus.parse("Completed") is RuntimeStatus.COMPLETED


async def test_purge_after_terminate_gives_up_clearly_when_the_instance_never_stops(hub, client, manager):
    # No host runs here, so the terminate is never carried out: the purge must not go ahead.
    (iid,) = await start_many(client, 1)
    job = await manager.bulk(BulkRequest("purge", "", terminate_first=True, wait_seconds=1.0))
    info = await job.run()
    assert (info.done, info.failed) == (0, 1)
    (failed,) = [o async for o in job.outcomes(Outcome.FAILED)]
    assert failed.instance_id == iid
    assert f"Instance {iid!r} did not finish within 1 s (it is Pending). Not purged" in failed.reason
    assert await manager.exists(iid)


async def test_a_running_job_can_be_canceled_and_watched_as_an_async_iterator(hub, client, manager):
    await start_many(client, 20)
    job = await manager.bulk(BulkRequest("suspend", "", rate=5, batch_size=2, concurrency=1))  # 4 s: cancel checks are 1 s apart
    seen = []
    async for info in job.progress():  # what a dashboard handler would do
        seen.append(info)
        if info.state is JobState.RUNNING and info.finished >= 2 and len(seen) < 50:
            await manager.cancel_job(job.id)  # from "another request": stops at the next check
    final = await (await manager.job(job.id)).refresh()
    assert final.state is JobState.CANCELED and 2 <= final.finished < 20
    assert seen[-1].state is JobState.CANCELED
    suspended = [iid for (iid, kind) in await drain_messages(hub) if kind == "ExecutionSuspended"]
    assert len(suspended) == final.done


async def test_bulk_purge_job_leaves_an_instance_started_again_after_its_batch_was_read(hub, client, manager,
                                                                                        monkeypatch):
    """Issue 12 class 7 for jobs: the selection reads each row (status, ETag, execution) and the batch acts on
    what it read (runner.BulkJob._select); a restart of one id between that read and the delete keeps its
    new run whole, and the job says why it skipped it. (tests/test_h26_review.py: the same when a resumed
    job reads the statuses by batch.)"""
    from durable_mgmt.jobs import runner

    olds = {iid: await hostlike_instance(hub, iid, "Completed") for iid in ("race-a", "race-b", "race-c")}
    original = runner.scan_statuses

    async def read_then_restart(*args, **kwargs):
        async for statuses, last_key in original(*args, **kwargs):
            if "race-b" in statuses:
                await client.start("Target", {"again": True}, instance_id="race-b")
            yield statuses, last_key

    monkeypatch.setattr(runner, "scan_statuses", read_then_restart)
    monkeypatch.setattr(actions.bulk_ops, "statuses", None)  # not called: the scan's statuses are used
    job = await manager.bulk(BulkRequest("purge", "instanceId STARTS_WITH 'race-'", batch_size=10))
    info = await job.run()
    assert (info.done, info.skipped, info.failed) == (2, 1, 0)
    outcomes = {o.instance_id: o async for o in job.outcomes()}
    assert outcomes["race-b"].outcome is Outcome.SKIPPED and "started again" in outcomes["race-b"].reason
    assert await hub.instances.get("race-a") is None and await hub.instances.get("race-c") is None
    row = await hub.instances.get("race-b")
    assert row["RuntimeStatus"] == "Pending" and row["ExecutionId"] != olds["race-b"]["ExecutionId"]
    assert (await client.get_status("race-b")).input == {"again": True}


# --- hostile review of issue 13 -------------------------------------------------------------------

async def test_a_slow_rated_chunk_keeps_its_lease_so_a_concurrent_resume_is_refused(hub, client, manager,
                                                                                     monkeypatch):
    # Before: the lease (LEASE_SECONDS, renewed only at checkpoints) ran out mid-chunk at a slow rate and a
    # concurrent resume acted on the same instances. Shrunk here: a 0.5 s lease, a 4-instance chunk at 1/s.
    from durable_mgmt.jobs import runner

    monkeypatch.setattr(runner, "LEASE_SECONDS", 0.5)
    monkeypatch.setattr(runner, "LEASE_MARGIN_SECONDS", 0.1)
    targets = await start_many(client, 4)
    job = await manager.bulk(BulkRequest("terminate", "", rate=1, batch_size=20, concurrency=4))
    running = asyncio.Event()
    task = asyncio.ensure_future(job.run(lambda i: running.set() if i.state is JobState.RUNNING else None))
    await asyncio.wait_for(running.wait(), 60)
    await asyncio.sleep(1.5)  # three old leases later, mid-chunk
    with pytest.raises(JobBusy, match="is being run by another process"):
        await (await manager.job(job.id)).run()
    info = await asyncio.wait_for(task, 60)
    assert (info.state, info.done) == (JobState.COMPLETED, 4)
    terminated = {iid: n for (iid, kind), n in (await drain_messages(hub)).items() if kind == "ExecutionTerminated"}
    assert terminated == {iid: 1 for iid in targets}


async def test_a_job_stops_acting_when_its_own_lease_may_have_run_out(hub, client, manager, monkeypatch):
    from durable_mgmt.jobs import runner

    monkeypatch.setattr(runner, "LEASE_SECONDS", 0.5)
    monkeypatch.setattr(runner, "LEASE_MARGIN_SECONDS", 60.0)  # every lease is already "running out"
    await start_many(client, 3)
    job = await manager.bulk(BulkRequest("terminate", "", rate=10, concurrency=1))
    info = await job.run()
    assert (info.state, info.done) == (JobState.INTERRUPTED, 0)
    assert not [k for _, k in await drain_messages(hub) if k != "ExecutionStarted"]


@pytest.mark.parametrize("rate", [float("inf"), float("nan"), 1e-300, 0.001, 1e300, True])
def test_rates_that_could_never_run_are_refused(rate):
    with pytest.raises(InvalidInput, match="Invalid rate .*from 0.01 \\(one every 100 s\\)"):
        BulkRequest("terminate", "", rate=rate)
