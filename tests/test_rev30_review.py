"""A hostile review (rev30) of lease renewal (runner.BulkJob._renew_lease), the cancel seen during a scan,
the one-run-per-handle guard and the dashboard's "It stopped" line. Real Azurite; faults only at the job's
own SDK calls (as tests/test_h27_review.py does)."""

from __future__ import annotations

import asyncio

import pytest

from durable_mgmt import BulkRequest, JobBusy, JobState
from durable_mgmt.jobs import runner
from durable_mgmt.taskhub.jobs_table import JobsTable

from .test_h27_review import IDS, _seed, _stall_a_send, _terminated, manager, small_pages  # noqa: F401 (fixtures)
from .test_bulk_jobs import drain_messages


def _fail_renewal_writes(job, monkeypatch, fault) -> None:
    """While a lease renewal of ``job`` (runner.BulkJob._renew_lease) writes its row, the job's own SDK client
    fails with what ``fault()`` gives (None: the write goes through), as a lost connection makes it."""
    table = job._jobs._table
    renewing = []
    real_renew, real_update = runner.BulkJob._renew_lease, table.update_entity

    async def renew(self, *args):
        renewing.append(True)
        try:
            return await real_renew(self, *args)
        finally:
            renewing.pop()

    async def update_entity(*args, **kw):
        error = fault() if renewing else None
        if error is not None:
            raise error
        return await real_update(*args, **kw)

    monkeypatch.setattr(runner.BulkJob, "_renew_lease", renew)
    monkeypatch.setattr(table, "update_entity", update_entity)


async def test_after_a_failed_renewal_no_operation_queued_behind_it_starts(hub, manager, small_pages, monkeypatch):
    # As test_a_job_taken_over_while_its_store_stalls_starts_nothing_more, but the stall is at the 2nd
    # operation of a chunk, so after the operation whose renewal fails, more of the chunk are still queued in
    # act_batch's gather. The failed renewal's _write already moved _lease_deadline (``_lease()`` runs before
    # the commit), so those see a "fresh" lease and send: this process acts after another took the job.
    await _seed(hub)
    monkeypatch.setattr(runner, "LEASE_SECONDS", 1.0)
    monkeypatch.setattr(runner, "LEASE_MARGIN_SECONDS", 0.3)
    monkeypatch.setattr(runner, "LEASE_RENEWALS", 10)
    job = await manager.bulk(BulkRequest("terminate", "name = 'Many'", batch_size=5, concurrency=1, rate=100))
    jobs = JobsTable(hub)

    async def stall_and_take_over():  # stalled past the lease (in storage too); another process takes the job
        await asyncio.sleep(1.5)
        info, etag, _ = await jobs.get(job.id)
        await jobs.update(info, etag, owner="another process", lease_seconds=60)

    sends = _stall_a_send(hub, monkeypatch, 6, stall_and_take_over)  # IDS[6], the 2nd send of chunk IDS[5:10]
    with pytest.raises(JobBusy):
        await job.run()
    at_return = len(sends)
    await asyncio.sleep(1.0)  # gather's other operations are not cancelled: they may still be running
    sent = _terminated(await drain_messages(hub))
    assert len(sends) == 6, (at_return, len(sends), sorted(sent))
    assert sent == {i: 1 for i in IDS[1:7]}


async def test_a_renewal_that_fails_unexpectedly_does_not_quote_the_error_in_the_job_row(hub, manager, small_pages,
                                                                                       monkeypatch):
    # run() quotes only DurableError texts in params["stopped"] ("written to be shown (no secret in it)");
    # anything else is named by its type. _renew_lease once wrapped *any* Exception's text into
    # _LeaseRunningOut, which record_oldest stored as params["stopped"] (shown by `jobs show`, the CLI, the
    # dashboard) and logged, and the error itself was swallowed (the run returned Interrupted).
    await _seed(hub)
    monkeypatch.setattr(runner, "LEASE_SECONDS", 0.5)
    monkeypatch.setattr(runner, "LEASE_MARGIN_SECONDS", 60.0)  # every operation takes the lease again first
    job = await manager.bulk(BulkRequest("terminate", "name = 'Many'", batch_size=5, concurrency=1, rate=100))
    # A client-side error whose text holds the request's URL, as some SDK errors do.
    _fail_renewal_writes(job, monkeypatch, lambda: ValueError(
        "bad request URL https://acct.table.core.windows.net/Jobs?sv=2024&sig=SECRETSIG"))
    with pytest.raises(ValueError):  # not a DurableError: raised as it is, named (not quoted) in the job
        await job.run()
    info = await job.refresh()
    assert info.state is JobState.INTERRUPTED and "ValueError" in info.params["stopped"]
    assert "SECRETSIG" not in info.params["stopped"], info.params["stopped"]


async def test_a_handle_stopped_once_can_run_its_job_to_the_end_later(hub, manager, small_pages):
    # BulkJob.stop(): "the job can be resumed". run() forgets an earlier run's reason (_stopped_because) but
    # not its stop request (_stop is never reset): every later run of this handle stops at once, Interrupted,
    # "asked to stop". The same after breaking out of `async for info in job.progress()` (it calls stop()).
    await _seed(hub)
    job = await manager.bulk(BulkRequest("terminate", "name = 'Many'", batch_size=5))
    first = await job.run(lambda i: job.stop() if i.finished else None)
    assert first.state is JobState.INTERRUPTED
    again = await job.run()
    assert again.state is JobState.COMPLETED, (again.state, again.finished, again.params.get("stopped"))


async def test_once_a_renewal_failed_the_run_starts_no_more_operations_in_any_chunk(hub, manager, small_pages,
                                                                                    monkeypatch):
    # Without a rate two chunks act at once. One operation's renewal fails (storage unreachable for a moment):
    # record_oldest decides the run stops Interrupted, and nothing acted on after that point is recorded (it is
    # all left in doubt: a raise-event job then reports each such instance FAILED "in doubt"). But the other
    # chunk goes on starting operations, each taking the lease again (the store answers again), up to its end.
    from azure.core.exceptions import ServiceRequestError
    await _seed(hub)
    monkeypatch.setattr(runner, "LEASE_SECONDS", 1.0)
    monkeypatch.setattr(runner, "LEASE_MARGIN_SECONDS", 0.3)
    monkeypatch.setattr(runner, "UNRATED_SECONDS_PER_INSTANCE", 0.0)
    job = await manager.bulk(BulkRequest("terminate", "name = 'Many'", batch_size=5, concurrency=2))
    sends = _stall_a_send(hub, monkeypatch, 10**9, None)  # counts sends (none stalled)
    for name in hub.names.control_queues:  # each send takes 0.4 s: a chunk of 5 outlasts the lease's margin
        queue = hub.queue(name)

        async def send_message(*args, _counted=queue.send_message, **kw):
            await asyncio.sleep(0.4)
            return await _counted(*args, **kw)

        monkeypatch.setattr(queue, "send_message", send_message)
    failed_at = []

    def fault():  # the first renewal fails (a connection reset), the others go through
        if not failed_at:
            failed_at.append(len(sends))
            return ServiceRequestError("connection reset (injected by the test)")

    _fail_renewal_writes(job, monkeypatch, fault)
    info = await job.run()
    await asyncio.sleep(1.0)
    assert failed_at and info.state is JobState.INTERRUPTED, (failed_at, info)
    # At most the operation in flight in the other slot may still send after the failure.
    assert len(sends) - failed_at[0] <= 1, (failed_at[0], len(sends), info.finished, info.params.get("stopped"))


async def test_an_export_canceled_while_its_scan_reads_pages_without_a_match_ends_canceled(hub, client, manager,
                                                                                          monkeypatch, tmp_path):
    from durable_mgmt import ExportRequest
    from durable_mgmt.taskhub import scan
    from .test_bulk_jobs import start_many
    from .test_cli_support import gather_limited, hostlike_instance
    monkeypatch.setattr(scan, "MAX_PAGE", 20)
    await gather_limited([hostlike_instance(hub, f"a-{i:03d}", "Running", name="Target") for i in range(200)])
    await start_many(client, 5, prefix="z-")
    path = tmp_path / "out.jsonl"
    request = ExportRequest("""input CONTAINS '"i"'""", str(path))
    job = await manager.export(BulkRequest(**{**request.__dict__, "query": request.query}))
    pages = []

    async def cancel_from_elsewhere(info):
        pages.append(info.params.get("scanned"))
        if len(pages) == 1:
            await (await manager.job(job.id)).cancel()

    info = await job.run(cancel_from_elsewhere)
    assert (info.state, info.matched, info.finished) == (JobState.CANCELED, 0, 0), info
    assert len(pages) <= 3, pages
    assert path.read_bytes() == b""
    assert "stopped" not in info.params


async def test_a_run_that_returned_interrupted_never_takes_the_job_again(hub, manager, small_pages, monkeypatch):
    # The operations act_batch's gather still holds when one raises _LeaseRunningOut are not cancelled: they
    # go on after run() has written the job Interrupted and released it (Owner ""). One that reaches the lease's
    # end then "takes the lease again": its write is conditional on the ETag _finish left, so it lands, and the
    # released Interrupted job is owned again by a run that has ended (`jobs resume` says JobBusy) and acted on.
    from azure.core.exceptions import ServiceRequestError
    await _seed(hub)
    monkeypatch.setattr(runner, "LEASE_SECONDS", 1.0)
    monkeypatch.setattr(runner, "LEASE_MARGIN_SECONDS", 0.3)
    job = await manager.bulk(BulkRequest("terminate", "name = 'Many'", batch_size=5, concurrency=1, rate=100))
    failed_at = []
    sends = _stall_a_send(hub, monkeypatch, 10**9, None)  # counts sends
    for name in hub.names.control_queues:  # the 6th send stalls past the lease (the next op renews); so does
        queue = hub.queue(name)             # the first send after the failed renewal

        async def send_message(*args, _counted=queue.send_message, **kw):
            if len(sends) == 5 or (failed_at and len(sends) == failed_at[0]):
                await asyncio.sleep(1.5)
            return await _counted(*args, **kw)

        monkeypatch.setattr(queue, "send_message", send_message)

    def fault():  # a renewal mid-chunk fails once (connection reset)
        if not failed_at and len(sends) >= 6:
            failed_at.append(len(sends))
            return ServiceRequestError("connection reset (injected by the test)")

    _fail_renewal_writes(job, monkeypatch, fault)
    info = await job.run()
    at_return = len(sends)
    await asyncio.sleep(3.0)
    row = await hub.table_service.get_table_client(hub.names.jobs_table).get_entity(job.id, "job")
    assert failed_at and info.state is JobState.INTERRUPTED, (failed_at, info)
    assert (row["State"], row["Owner"]) == ("Interrupted", ""), (row["Owner"], row["LeaseUntil"])
    assert len(sends) == at_return, (failed_at, at_return, len(sends))


async def test_a_run_whose_acquire_fails_or_is_canceled_leaves_the_handle_able_to_run(hub, manager, small_pages,
                                                                                     monkeypatch):
    from azure.core.exceptions import ServiceRequestError
    from durable_mgmt.errors import StorageUnavailable
    await _seed(hub)
    job = await manager.bulk(BulkRequest("terminate", "name = 'Many'", batch_size=20))
    table = job._jobs._table
    real_update, real_get = table.update_entity, table.get_entity
    faults = {"update": 1, "get": 1}
    gate = asyncio.Event()

    async def update_entity(*args, **kw):
        if faults["update"]:
            faults["update"] -= 1
            raise ServiceRequestError("connection reset (injected by the test)")
        return await real_update(*args, **kw)

    async def get_entity(*args, **kw):
        if faults["get"]:
            faults["get"] -= 1
            raise ServiceRequestError("connection reset (injected by the test)")
        if faults.get("hang"):
            faults["hang"] = 0
            gate.set()
            await asyncio.sleep(60)  # the read hangs until the task is canceled (Ctrl-C)
        return await real_get(*args, **kw)

    monkeypatch.setattr(table, "update_entity", update_entity)
    monkeypatch.setattr(table, "get_entity", get_entity)
    with pytest.raises(StorageUnavailable):
        await job.run()  # _acquire_created's write fails, then _acquire's read
    faults["hang"] = 1
    task = asyncio.ensure_future(job.run())
    await asyncio.wait_for(gate.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    info = await job.run()
    assert (info.state, info.finished) == (JobState.COMPLETED, len(IDS)), info


async def test_a_dashboard_step_sees_a_cancel_while_the_scan_reads_pages_without_a_match(hub, client, manager,
                                                                                        monkeypatch):
    from durable_mgmt.dashboard import bulk_jobs
    from durable_mgmt.taskhub import scan
    from .test_bulk_jobs import start_many
    from .test_cli_support import gather_limited, hostlike_instance
    monkeypatch.setattr(scan, "MAX_PAGE", 20)
    await gather_limited([hostlike_instance(hub, f"a-{i:03d}", "Running", name="Target") for i in range(200)])
    await start_many(client, 5, prefix="z-")
    job = await manager.bulk(BulkRequest("terminate", """input CONTAINS '"i"'"""))
    stepping = await manager.job(job.id)
    real_rows = scan._rows
    pages = []

    async def rows(*args, **kw):  # the dashboard's Cancel (another handle) is pressed once the first page is read
        async for page in real_rows(*args, **kw):
            pages.append(page)
            if len(pages) == 1:
                await manager.cancel_job(job.id)
            yield page

    monkeypatch.setattr(scan, "_rows", rows)
    step = await bulk_jobs.step(stepping, seconds=30)
    assert step.info.state is JobState.CANCELED and not step.busy, step
    assert len(pages) <= 3 and step.info.matched == 0 and not [k for _, k in await drain_messages(hub) if k == "ExecutionTerminated"]
