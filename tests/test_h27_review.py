"""A hostile review of bulk jobs that act on each recorded page while the scan goes on (runner.BulkJob with
STREAMED_LAYOUT): failures at each step, the order of the job row's writes, racing handles, and what is shown
of a job stopped mid-scan. Storage is the real Azurite of tests/conftest.py; faults are raised from the job's
own calls into it (a storage call that fails, as a lost connection makes it), never from a fake store."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import re
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import markupsafe
import pytest

from durable_mgmt import BulkRequest, DurableError, ExportRequest, InstanceManager, JobBusy, JobNotFound, JobState, Outcome
from durable_mgmt.dashboard import bulk_jobs
from durable_mgmt.errors import StorageUnavailable
from durable_mgmt.jobs import actions, runner
from durable_mgmt.jobs.models import JobInfo
from durable_mgmt.taskhub import scan
from durable_mgmt.taskhub.jobs_table import JobsTable, member_key
from durable_mgmt.taskhub.names import escape_key
from durable_mgmt.taskhub.timefmt import utcnow
from durable_mgmt.transports import StorageTransport

from .test_bulk_engine import CliProcess
from .test_bulk_jobs import drain_messages
from .test_bulk_selection import _legacy_job
from .test_cli_support import HUB_SETTING, cli, gather_limited, write_script_root  # noqa: F401 (fixture)

# Two storage pages of matches, every 23rd instance one terminate skips. The scan reads at most
# taskhub.scan.MAX_PAGE rows a page (1,000, what Azure Tables returns at most); the ``small_pages`` fixture
# lowers it to PAGE for this process, so two real storage pages (a continuation token between them) need
# 121 instances, not 1,205: seeding and acting on 1,205 per test made this module take minutes.
PAGE = 100
IDS = [f"m-{i:05d}" for i in range(PAGE + 21)]
FINISHED = set(IDS[::23])
# A test whose job runs in a CLI process reads real 1,000-row pages there.
BIG_IDS = [f"m-{i:05d}" for i in range(1205)]
BIG_FINISHED = set(BIG_IDS[::97])


@pytest.fixture
def manager(hub) -> InstanceManager:
    return InstanceManager(StorageTransport(hub))


@pytest.fixture
def small_pages(monkeypatch) -> None:
    """The scan reads PAGE rows a storage page (``_rows`` asks for min(page_size, MAX_PAGE) per page)."""
    monkeypatch.setattr(scan, "MAX_PAGE", PAGE)


async def _seed(hub, ids=IDS, finished=FINISHED) -> None:
    await gather_limited([hub.instances.client.upsert_entity(
        {"PartitionKey": i, "RowKey": "", "Name": "Many", "RuntimeStatus": "Completed" if i in finished else "Running",
         "CreatedTime": utcnow()}) for i in ids])


def _fail_the_scan_after_one_page(monkeypatch):
    """The job's scan reads one storage page, then the next read fails as a lost connection makes it. At
    taskhub.scan._rows: every scan a job makes (ids, or ids with statuses) reads its pages there."""
    real_rows = scan._rows

    async def rows(*args, **kw):
        async for page in real_rows(*args, **kw):
            yield page
            raise StorageUnavailable("Azure Storage is unreachable while reading instances (injected by the test).")

    monkeypatch.setattr(scan, "_rows", rows)
    return real_rows


def _stall_a_send(hub, monkeypatch, nth: int, stall) -> list[str]:
    """The job's ``nth`` queue send (counted from 1) waits for ``stall()`` first, as a store that answers
    late; the names of the queues sent to, in order. At the control queues' SDK clients (TaskHub.queue keeps
    one per queue), where every message the job sends goes, however it is encoded."""
    sends: list[str] = []
    for name in hub.names.control_queues:
        queue = hub.queue(name)

        async def send_message(*args, _real=queue.send_message, _name=name, **kw):
            sends.append(_name)
            if len(sends) == nth:
                await stall()
            return await _real(*args, **kw)

        monkeypatch.setattr(queue, "send_message", send_message)
    return sends


def _terminated(messages: Counter) -> Counter:
    return Counter({iid: n for (iid, kind), n in messages.items() if kind == "ExecutionTerminated"})


async def _assert_each_once(hub, job, ids=IDS, finished=FINISHED) -> None:
    """Every match acted on once: one terminate message per running instance, each listed once by outcomes(),
    the skipped ones as skipped, and the counters equal to that tally."""
    info = await job.refresh()
    failed = [(o.instance_id, o.reason) async for o in job.outcomes(Outcome.FAILED)]
    assert (info.state, info.matched, info.failed) == (JobState.COMPLETED, len(ids), 0), (info, failed[:3])
    sent = _terminated(await drain_messages(hub))
    expected = {i: 1 for i in ids if i not in finished}
    assert sent == expected, (len(sent), len(expected), sorted(set(expected) - set(sent))[:5], info)
    outcomes = [o async for o in job.outcomes()]
    assert [o.instance_id for o in outcomes] == ids
    assert {o.instance_id for o in outcomes if o.outcome is Outcome.SKIPPED} == finished
    tally = Counter(o.outcome for o in outcomes)
    assert (info.state, info.matched, info.done, info.skipped, info.failed) == (
        JobState.COMPLETED, len(ids), tally[Outcome.DONE], tally[Outcome.SKIPPED], 0)


async def test_a_checkpoint_that_fails_never_leaves_its_cursor_or_counters_in_the_job_row(hub, manager, small_pages, monkeypatch):
    # A checkpoint's outcome rows and the job row's cursor go in one transaction. When it fails (storage
    # unreachable for a moment), the next write of the row (the scan's, or the run recording itself
    # Interrupted) must not carry that checkpoint's cursor: the skipped instances of the chunk would be
    # implied "done" by the cursor with no outcome row, and never acted on again.
    await _seed(hub)
    failed = []
    real_commit = JobsTable.commit

    async def commit(self, info, etag, outcomes, **kw):
        outcomes = list(outcomes)
        if outcomes and not failed:
            failed.append(info.cursor)
            raise StorageUnavailable("Azure Storage is unreachable while checkpointing (injected by the test).")
        return await real_commit(self, info, etag, outcomes, **kw)

    monkeypatch.setattr(JobsTable, "commit", commit)
    monkeypatch.setattr(actions, "IN_DOUBT_WAIT", 0.2)  # the failed chunk is in doubt on resume: checked first
    job = await manager.bulk(BulkRequest("terminate", "name = 'Many'", batch_size=5))
    with pytest.raises(StorageUnavailable):
        await job.run()
    info = await job.refresh()
    assert info.state is JobState.INTERRUPTED
    assert info.params["stopped"].startswith("StorageUnavailable: Azure Storage is unreachable while checkpointing")
    # The row holds no more than was recorded: its cursor is before the chunk whose checkpoint failed.
    assert failed and info.cursor < failed[0]
    assert info.skipped == len([i for i in FINISHED if member_key(i) <= info.cursor])
    claimed = await JobsTable(hub).claimed_through(job.id)
    monkeypatch.setattr(JobsTable, "commit", real_commit)
    await (await manager.job(job.id)).run()
    # The chunks acted on but not recorded were in doubt: their terminates may be sent again, nothing else.
    messages = _terminated(await drain_messages(hub))
    assert set(messages) == {i for i in IDS if i not in FINISHED}
    again = {i for i, n in messages.items() if n > 1}
    assert again and all(info.cursor < member_key(i) <= claimed for i in again)
    await _assert_in_doubt_settled(job, info.cursor, claimed)


async def _assert_in_doubt_settled(job, cursor: str, claimed: str, ids=IDS, finished=FINISHED) -> None:
    """Each instance listed once; finished ones skipped, but those in doubt (after ``cursor``, up to
    ``claimed``), which a resumed terminate confirms as finished (actions._check_in_doubt), and the counters
    equal to that tally."""
    doubt = {i for i in finished if cursor < member_key(i) <= claimed}
    outcomes = [o async for o in job.outcomes()]
    assert [o.instance_id for o in outcomes] == ids
    assert {o.instance_id for o in outcomes if o.outcome is Outcome.SKIPPED} == finished - doubt
    assert all("confirmed after an interruption" in o.reason for o in outcomes if o.instance_id in doubt)
    info = await job.refresh()
    assert (info.state, info.matched, info.done, info.skipped) == (
        JobState.COMPLETED, len(ids), len(ids) - len(finished - doubt), len(finished - doubt))


async def test_a_scan_that_fails_mid_run_records_the_chunks_already_acted_on(hub, manager, small_pages, monkeypatch):
    # The second storage page cannot be read (a lost connection) while chunks of the first are being acted
    # on: those chunks are recorded before the run stops, so a resumed run repeats none of them (an
    # unrecorded chunk is in doubt, and a terminate in doubt is sent again when the instance shows no effect).
    await _seed(hub)
    real_rows = _fail_the_scan_after_one_page(monkeypatch)
    monkeypatch.setattr(actions, "IN_DOUBT_WAIT", 0.2)
    job = await manager.bulk(BulkRequest("terminate", "name = 'Many'", batch_size=5))
    with pytest.raises(StorageUnavailable):
        await job.run()
    info = await job.refresh()
    assert (info.state, info.matched, info.selection_complete) == (JobState.INTERRUPTED, PAGE, False)
    # Everything sent is recorded, and nothing is left claimed beyond it (no wait for in-doubt instances).
    assert info.cursor == member_key(IDS[info.done + info.skipped - 1])
    assert await JobsTable(hub).claimed_through(job.id) <= info.cursor
    monkeypatch.setattr(scan, "_rows", real_rows)
    await (await manager.job(job.id)).run()
    await _assert_each_once(hub, job)


async def _assert_coherent(hub, job) -> None:
    """A job that stopped for good: what it says it did is what was sent, each once, and it lists exactly
    the instances its scan recorded (done through its cursor, pending after), nothing past the scan cursor."""
    info = await job.refresh()
    sent = _terminated(await drain_messages(hub))
    assert set(sent.values()) <= {1}
    outcomes = [o async for o in job.outcomes()]
    recorded = IDS[:info.matched]
    assert [o.instance_id for o in outcomes] == recorded
    done = {o.instance_id for o in outcomes if o.outcome is Outcome.DONE}
    assert set(sent) == done and info.done == len(done)
    assert info.skipped == sum(o.outcome is Outcome.SKIPPED for o in outcomes)
    assert all(o.outcome is Outcome.PENDING for o in outcomes if member_key(o.instance_id) > info.cursor)
    assert all(o.outcome is not Outcome.PENDING for o in outcomes if member_key(o.instance_id) <= info.cursor)


@pytest.mark.parametrize("door", ["manager", "handle"])
async def test_a_job_canceled_while_its_scan_goes_on_records_what_it_sent(hub, manager, small_pages, door):
    # manager.cancel_job (another handle: the dashboard's Cancel) or the running handle's own cancel() (the
    # BulkJob docstring: "run it in a task ... cancel() stops it for good"), asked once acting has started
    # and the scan has recorded only its first page.
    await _seed(hub)
    # A run looks for a cancel request once a second (runner.CANCEL_CHECK_SECONDS): at 40/s it sees one long
    # before it has acted on the first page (as 400/s did with pages of 1,000).
    job = await manager.bulk(BulkRequest("terminate", "name = 'Many'", batch_size=5, rate=40))
    asked = []

    async def progress(info):
        if info.finished and not asked:
            asked.append(info.matched)
            await (manager.cancel_job(job.id) if door == "manager" else job.cancel())

    info = await job.run(progress)
    assert asked == [PAGE]
    assert (info.state, info.selection_complete) == (JobState.CANCELED, False)
    assert info.finished < PAGE
    await _assert_coherent(hub, job)
    again = await (await manager.job(job.id)).run()  # a canceled job is final: resuming it acts on nothing
    assert again.state is JobState.CANCELED and not await drain_messages(hub)


# Under full-suite load the winning run once ended Interrupted at 400 of 1,000 recorded, with no failed
# outcome: a storage stall longer than its lease, with operations of a chunk queued behind it, made the run
# stop (runner._LeaseRunningOut) though nobody had taken the job. It now takes the lease again first
# (test_a_job_whose_store_stalls_past_its_lease_takes_it_again_and_goes_on).
async def test_a_second_handle_never_runs_a_job_whose_scan_goes_on(hub, manager, small_pages):
    # Two handles started together on one job (two `jobs resume`, or a dashboard step racing a CLI): one runs
    # it, the other is refused with JobBusy before touching anything, and so is a later dashboard step; the
    # job still reaches each match once.
    await _seed(hub)
    job = await manager.bulk(BulkRequest("terminate", "name = 'Many'", batch_size=5, rate=600))
    other = await manager.job(job.id)
    steps = []

    async def progress(info):
        if info.finished and not steps:  # acting, the scan's second page not read yet
            steps.append(await bulk_jobs.step(await manager.job(job.id), seconds=0.1))

    results = await asyncio.gather(job.run(progress), other.run(progress), return_exceptions=True)
    assert all(isinstance(r, (JobInfo, JobBusy)) for r in results), results
    busy = [r for r in results if isinstance(r, JobBusy)]
    assert len(busy) == 1 and job.id in str(busy[0]) and "another process" in str(busy[0])
    assert steps and "being run by another process" in steps[0].busy and "resume after" in steps[0].busy
    assert steps[0].info.state is JobState.RUNNING and not steps[0].info.selection_complete
    await _assert_each_once(hub, job)


async def test_a_job_whose_store_stalls_past_its_lease_takes_it_again_and_goes_on(hub, manager, small_pages,
                                                                                 monkeypatch, caplog):
    # Under load a call into storage can stall for longer than the job's lease (a checkpoint took 15 s with
    # three copies of this module side by side; in-memory Azurite collects garbage). Operations queued behind
    # the stalled one (concurrency 1 here; 8 by default, with 50 a chunk) then found the lease's end passed:
    # the job stopped Interrupted, its lease never taken by anyone. Now each takes the lease again first (a
    # write conditional on the row's ETag) and the job goes on.
    caplog.set_level(logging.INFO, logger="durable_mgmt.jobs")  # where a run says why it stopped
    await _seed(hub)
    monkeypatch.setattr(runner, "LEASE_SECONDS", 2.0)  # the lease: 2 s plus a chunk's time at the rate
    monkeypatch.setattr(runner, "LEASE_MARGIN_SECONDS", 0.5)
    monkeypatch.setattr(runner, "LEASE_RENEWALS", 10)  # a write slower than 1.5 s on a loaded machine: try again
    # The 8th send (in the second chunk, with the rest of it queued behind) stalls past the lease.
    sends = _stall_a_send(hub, monkeypatch, 8, lambda: asyncio.sleep(3.0))
    job = await manager.bulk(BulkRequest("terminate", "name = 'Many'", batch_size=5, concurrency=1, rate=100))
    info = await job.run()
    assert not [r for r in caplog.records if "Interrupted" in r.getMessage()], caplog.text
    assert len(sends) > 8 and "stopped" not in info.params, info
    await _assert_each_once(hub, job)


async def test_a_job_taken_over_while_its_store_stalls_starts_nothing_more(hub, manager, small_pages, monkeypatch):
    # The other side of taking the lease again: the stall outlasted the lease, and meanwhile another process
    # took the job (its lease on the row, as runner.BulkJob._acquire writes it). The stalled run's write fails
    # on the row's ETag: it starts no operation after the stall, writes nothing over the other's row, and
    # says why.
    await _seed(hub)
    monkeypatch.setattr(runner, "LEASE_SECONDS", 1.0)
    monkeypatch.setattr(runner, "LEASE_MARGIN_SECONDS", 0.3)
    monkeypatch.setattr(runner, "LEASE_RENEWALS", 10)  # a write slower than 0.7 s on a loaded machine: try again
    job = await manager.bulk(BulkRequest("terminate", "name = 'Many'", batch_size=5, concurrency=1, rate=100))
    jobs = JobsTable(hub)

    async def stall_and_take_over():  # stalled past the lease; another process takes the job meanwhile
        await asyncio.sleep(1.5)
        info, etag, _ = await jobs.get(job.id)
        await jobs.update(info, etag, owner="another process", lease_seconds=60)

    sends = _stall_a_send(hub, monkeypatch, 8, stall_and_take_over)
    with pytest.raises(JobBusy) as raised:
        await job.run()
    assert job.id in str(raised.value) and "another process" in str(raised.value)
    row = await hub.table_service.get_table_client(hub.names.jobs_table).get_entity(job.id, "job")
    assert (row["Owner"], row["State"]) == ("another process", "Running")  # not overwritten by the stalled run
    # Nothing started after the stall: the stalled send went, the one queued behind it did not (IDS[0] is
    # finished: skipped).
    assert len(sends) == 8 and _terminated(await drain_messages(hub)) == {i: 1 for i in IDS[1:9]}


# A crash test, like the engine's crash soak: 30-60 s (the dead process's lease, 20 s, runs out first, and
# the CLI reads real 1,000-row pages: 1,205 instances), too long for `make test`. In one fresh-clone
# `make test` (e06c4db, all three workers busy) the resumed job's sends were missing from the control queues
# (first + second held about 70 of 1,135 ids): the resumed run stopped Interrupted early, most likely as the
# test above did (a stall past its lease; fixed since); the assertions below say the resumed run's state first.
@pytest.mark.soak
async def test_a_cli_killed_while_its_scan_goes_on_resumes_without_acting_past_what_it_recorded(
        hub, manager, tmp_path, connection_string, monkeypatch):
    # The job runs in a CLI process, which reads real 1,000-row storage pages: BIG_IDS, two of them.
    # SIGKILL of `funcpy durable bulk terminate` once it acts and its scan has recorded only its first page:
    # nothing it sent lies past its claim mark or its scan cursor, and the resumed job reaches the rest;
    # only the claimed chunks (in doubt, no host here to show the effect) may be sent twice.
    await _seed(hub, BIG_IDS, BIG_FINISHED)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AzureWebJobs")}
    env.update({"AzureWebJobsStorage": connection_string, HUB_SETTING: hub.name,
                "PYTHONPATH": str(Path(__file__).resolve().parents[1])})  # this tree's durable_mgmt, not the venv's
    cli = CliProcess(write_script_root(tmp_path / "app"), env)
    proc = await cli.start("bulk", "terminate", "-q", "name = 'Many'", "--rate", "400", "--batch-size", "20",
                           "--yes", "--output", "json")
    try:
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "the CLI never acted"
            listed = await manager.jobs()
            if listed and listed[0].finished >= 60:
                break
            await asyncio.sleep(0.05)
    finally:
        proc.kill()
        await proc.communicate()
    info = (await manager.jobs())[0]
    job = await manager.job(info.id)
    assert info.state is JobState.RUNNING and info.matched == 1000 and not info.selection_complete
    claimed = await JobsTable(hub).claimed_through(info.id)
    first = _terminated(await drain_messages(hub))
    assert first and all(member_key(i) <= claimed <= member_key(BIG_IDS[999]) for i in first)
    monkeypatch.setattr(actions, "IN_DOUBT_WAIT", 0.2)
    final = await job.run(wait_for_lease=True)  # the dead process's lease runs out first
    failed = [(o.instance_id, o.reason) async for o in job.outcomes(Outcome.FAILED)]
    assert (final.state, final.matched, final.failed) == (JobState.COMPLETED, 1205, 0), (final, failed[:3])
    second = _terminated(await drain_messages(hub))
    assert first + second == Counter({i: 1 for i in BIG_IDS if i not in BIG_FINISHED}) + Counter(
        {i: 1 for i in set(first) & set(second)})
    assert all(info.cursor < member_key(i) <= claimed for i in set(first) & set(second))
    assert final.state is JobState.COMPLETED
    await _assert_in_doubt_settled(job, info.cursor, claimed, BIG_IDS, BIG_FINISHED)


async def test_a_legacy_job_stopped_while_selecting_shows_only_what_its_scan_cursor_recorded(hub, manager):
    # The earlier layout (one "i:" row per instance) wrote a page's rows, then moved its cursor (the scan's
    # key, while selecting) past them: rows past the cursor are a page it never recorded, and `jobs show`
    # must not list them (runner._select of 3a31baa^; the resumed run drops them).
    ids = [f"m-{i:03d}" for i in range(6)]
    await _seed(hub, ids, set())
    job_id = await _legacy_job(hub, BulkRequest("terminate", "name = 'Many'"), ids[:4], selected=False)
    jobs = JobsTable(hub)
    info, etag, _ = await jobs.get(job_id)
    await jobs.update(replace(info, matched=2, cursor=escape_key(ids[1])), etag)
    job = await manager.job(job_id)
    assert [(o.instance_id, o.outcome) async for o in job.outcomes()] == [(i, Outcome.PENDING) for i in ids[:2]]
    info = await job.run()
    assert (info.state, info.matched, info.done) == (JobState.COMPLETED, 6, 6)
    assert _terminated(await drain_messages(hub)) == {i: 1 for i in ids}


async def test_the_cli_shows_a_job_stopped_mid_scan_and_its_resumed_progress_truthfully(hub, manager, small_pages, cli):
    # `jobs show --output json` of a job stopped with only its first page recorded says the count is not final;
    # `jobs resume` then reports progress against what it has matched so far, never past 100%.
    await _seed(hub)
    job = await manager.bulk(BulkRequest("terminate", "name = 'Many'", batch_size=9))
    stopped = await job.run(lambda i: job.stop() if i.finished else None)
    assert (stopped.state, stopped.matched, stopped.selection_complete) == (JobState.INTERRUPTED, PAGE, False)
    here = {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}  # this tree's durable_mgmt, not the venv's
    shown = await cli.json("jobs", "show", job.id, env=here)
    assert (shown["matched"], shown["selectionComplete"], shown["state"]) == (PAGE, False, "Interrupted")
    assert shown["params"]["stopped"].startswith("asked to stop"), shown  # why it stopped (runner.BulkJob._finish)
    # In text, as the dashboard's "of 100+": more may match once the scan goes on.
    text = await cli.ok("jobs", "show", job.id, "--output", "table", env=here)
    assert f"Matched {PAGE:,}+:" in text.stdout, text.stdout
    listed = await cli.ok("jobs", "list", "--output", "table", env=here)
    assert f"{PAGE:,}+" in listed.stdout, listed.stdout
    resumed = await cli("jobs", "resume", job.id, env=here)  # (its scan reads 1,000-row pages: the rest in one)
    assert resumed.code == 0, str(resumed)
    percents = [int(p) for p in re.findall(r"\((\d+)%\)", resumed.stderr)]
    assert percents and max(percents) == 100 and percents.count(100) == 1, resumed.stderr
    assert f"{len(IDS):,}/{len(IDS):,} instances (100%)" in resumed.stderr
    assert "matched so far" in resumed.stderr  # while the scan went on, the count was said to be partial
    final = resumed.json  # (JSON when stdout is not a terminal)
    assert (final["state"], final["matched"], final["selectionComplete"], final["done"], final["skipped"]) == (
        "Completed", len(IDS), True, len(IDS) - len(FINISHED), len(FINISHED))


@pytest.mark.parametrize("fault", ["etag", "table"])
async def test_a_job_whose_row_changes_or_vanishes_mid_scan_stops_at_once_and_says_why(hub, manager, small_pages, fault, caplog):
    # Another writer changes the job row (its ETag moves), or the jobs table is deleted (delete-hub), once the
    # first page is being acted on: the run stops with an error naming the job, acts on nothing past its
    # claim mark, and writes nothing over the other writer's row.
    await _seed(hub)
    job = await manager.bulk(BulkRequest("terminate", "name = 'Many'", batch_size=5))
    table = hub.table_service.get_table_client(hub.names.jobs_table)
    claims = []

    async def progress(info):
        if info.finished and not claims:
            claims.append(await JobsTable(hub).claimed_through(job.id))
            if fault == "etag":
                await table.update_entity({"PartitionKey": job.id, "RowKey": "job", "Note": "another writer"})
            else:
                await table.delete_table()

    with pytest.raises(DurableError) as raised:
        await job.run(progress)
    assert job.id in str(raised.value)
    if fault == "etag":
        assert isinstance(raised.value, JobBusy) and "another process" in str(raised.value)
        row = await table.get_entity(job.id, "job")
        assert row["Note"] == "another writer" and row["State"] == "Running"  # not overwritten by the loser
        last = await JobsTable(hub).claimed_through(job.id)
    else:
        with pytest.raises(JobNotFound):
            await manager.job(job.id)
        last = member_key(IDS[PAGE - 1])
    sent = _terminated(await drain_messages(hub))
    assert set(sent.values()) == {1} and all(member_key(i) <= last for i in sent)
    assert len(sent) < PAGE  # it stopped within the first page
    gc.collect()  # a task left with its error unread is reported when collected
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


async def test_an_export_whose_scan_fails_mid_run_resumes_with_each_instance_once_in_its_file(hub, manager, small_pages, tmp_path,
                                                                                              monkeypatch):
    # An export-history job: the file's length is checkpointed (params["offset"]) with each batch. The scan's
    # second page fails while the first is exported; a crash-like tail is left in the file; the resumed job
    # cuts it back and writes each instance once, in key order.
    await _seed(hub)
    real_rows = _fail_the_scan_after_one_page(monkeypatch)
    path = tmp_path / "out.jsonl"
    request = ExportRequest("name = 'Many'", str(path))
    job = await manager.export(BulkRequest(**{**request.__dict__, "query": request.query, "batch_size": 9,
                                              "concurrency": 8}))
    with pytest.raises(StorageUnavailable):
        await job.run()
    info = await job.refresh()
    assert info.state is JobState.INTERRUPTED and info.done and not info.selection_complete
    assert info.params["offset"] == path.stat().st_size  # everything written is recorded
    with open(path, "ab") as f:
        f.write(b'{"instanceId": "half written"}\n')
    monkeypatch.setattr(scan, "_rows", real_rows)
    final = await (await manager.job(job.id)).run()
    assert (final.state, final.matched, final.done) == (JobState.COMPLETED, len(IDS), len(IDS))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["instanceId"] for line in lines] == IDS


async def test_a_job_resumed_mid_scan_stays_running_while_it_resumes(hub, manager, small_pages, monkeypatch):
    # A job stopped after acting on part of its first page has matches: resumed, its row must not go back to
    # Selecting ("nothing matched yet": the CLI and the dashboard say so) while the run gets going.
    await _seed(hub)
    job = await manager.bulk(BulkRequest("terminate", "name = 'Many'", batch_size=9))
    stopped = await job.run(lambda i: job.stop() if i.finished else None)
    assert (stopped.state, stopped.matched) == (JobState.INTERRUPTED, PAGE)
    states = []
    real_drop = JobsTable.drop_selection_after

    async def drop_selection_after(self, job_id, last_key):  # the first step after the resumed run took the job
        states.append((await self.get(job_id))[0].state)
        return await real_drop(self, job_id, last_key)

    monkeypatch.setattr(JobsTable, "drop_selection_after", drop_selection_after)
    seen = []
    final = await (await manager.job(job.id)).run(lambda i: seen.append(i.state))
    assert states == [JobState.RUNNING] and JobState.SELECTING not in seen
    assert "stopped" in stopped.params and "stopped" not in final.params  # why it stopped held until resumed
    assert (final.state, final.matched, final.done + final.skipped) == (JobState.COMPLETED, len(IDS), len(IDS))


async def test_the_dashboard_job_page_says_the_count_is_partial_until_the_scan_ends(hub, manager, small_pages):
    # The job page (job_progress.html) shows "of N+" while the scan goes on, "of N" once it is complete.
    from durable_mgmt.dashboard.core import Dashboard
    from durable_mgmt.dashboard.web import Request

    await _seed(hub)

    async def managers():
        return manager

    dashboard = Dashboard(managers)
    job = await manager.bulk(BulkRequest("terminate", "name = 'Many'", batch_size=9))

    async def progress_text() -> str:
        page = await dashboard.handle(Request.build("GET", "/job", f"id={job.id}", {"host": "127.0.0.1"}))
        assert page.status == 200
        body = page.body_bytes.decode()
        return " ".join(re.search(r'<p id="job-progress">(.*?)</p>', body, re.S).group(1).split())

    async def stopped_text() -> str | None:
        page = await dashboard.handle(Request.build("GET", "/job", f"id={job.id}", {"host": "127.0.0.1"}))
        found = re.search(r'<p class="note" id="job-stopped">(.*?)</p>', page.body_bytes.decode(), re.S)
        return found and found.group(1)

    stopped = await job.run(lambda i: job.stop() if i.finished else None)
    assert f"{stopped.finished} of {PAGE}+ handled" in await progress_text()
    # And why it stopped (runner.BulkJob._finish: params["stopped"]), escaped as every value on a page.
    assert await stopped_text() == f"It stopped: {markupsafe.escape(stopped.params['stopped'])}. Resume it to go on."
    assert "asked to stop" in stopped.params["stopped"]
    await (await manager.job(job.id)).run()
    assert f"{len(IDS)} of {len(IDS)} handled" in await progress_text()
    assert await stopped_text() is None


async def test_a_recursive_terminate_sends_once_to_a_child_the_scan_reaches_after_its_parent(hub, manager, monkeypatch):
    # "a-parent" is on the scan's first page, its sub-orchestration "z-child" (found from the parent's history:
    # SubOrchestrationInstanceCreated.InstanceId, taskhub/family.py) on the second; both match. The parent's
    # terminate reaches the child while the scan goes on; no host runs, so the child still looks Running when
    # the scan records it. It must not be sent a second terminate. And "b-parent"'s child "a-child" is acted
    # on as a member first (window of two chunks): its parent does not send it another either.
    # Pages of 20 rows: a recursive terminate goes one instance at a time (status, history, send), so this
    # test keeps to 34 instances.
    monkeypatch.setattr(scan, "MAX_PAGE", 20)
    ids, finished = IDS[:30], FINISHED & set(IDS[:30])
    await _seed(hub, ids, finished)
    await _seed(hub, ["a-parent", "z-child", "b-parent", "a-child"], set())
    for parent, child in (("a-parent", "z-child"), ("b-parent", "a-child")):
        await hub.history.client.upsert_entity({"PartitionKey": parent, "RowKey": "0000000000000001",
                                                "EventType": "SubOrchestrationInstanceCreated", "InstanceId": child})
    job = await manager.bulk(BulkRequest("terminate", "name = 'Many'", recursive=True, batch_size=5))
    info = await job.run()
    everyone = sorted(ids + ["a-parent", "z-child", "b-parent", "a-child"])
    assert _terminated(await drain_messages(hub)) == {i: 1 for i in everyone if i not in finished}
    outcomes = {o.instance_id: o async for o in job.outcomes()}
    assert sorted(outcomes) == everyone
    assert outcomes["a-parent"].reason == "terminate sent, and to 1 sub-orchestration(s)"
    assert outcomes["z-child"].reason == "terminate sent with 'a-parent'"
    assert outcomes["b-parent"].reason == "terminate sent, and to 0 sub-orchestration(s)"
    assert (info.state, info.matched, info.done, info.skipped) == (
        JobState.COMPLETED, len(everyone), len(everyone) - len(finished), len(finished))
