"""How a bulk job keeps its selection: many ids per row, resumable, in the table service's key order, and
jobs stored by the earlier layout (one row per instance) still run."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from azure.data.tables import UpdateMode

from durable_mgmt import BulkRequest, InstanceManager, JobState, Outcome
from durable_mgmt.jobs.models import JobInfo
from durable_mgmt.jobs.runner import new_job_id, request_params
from durable_mgmt.query import Query
from durable_mgmt.taskhub.jobs_table import (MEMBER_PREFIX, SELECTION_LAYOUT, SELECTION_PREFIX, STREAMED_LAYOUT,
                                             JobsTable, member_key, selection_rows)
from durable_mgmt.taskhub.names import escape_key
from durable_mgmt.taskhub.timefmt import utcnow
from durable_mgmt.transports import StorageTransport

from .test_bulk_jobs import drain_messages, start_many
from .test_cli_support import gather_limited, hostlike_instance


@pytest.fixture
def manager(hub) -> InstanceManager:
    return InstanceManager(StorageTransport(hub))


async def _rows(hub, job_id: str, prefix: str) -> list[dict]:
    table = hub.table_service.get_table_client(hub.names.jobs_table)
    return [e async for e in table.query_entities("PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
                                                  parameters={"pk": job_id, "lo": prefix,
                                                              "hi": prefix[:-1] + chr(ord(prefix[-1]) + 1)})]


def _kinds(messages: Counter, kind: str) -> Counter:
    return Counter({iid: n for (iid, k), n in messages.items() if k == kind})


async def test_a_selection_is_stored_many_ids_to_a_row(hub, manager):
    # 1,205 matches come in two storage pages: two selection rows, not 1,205 member rows (and no outcome
    # row: each one went as usual, which the cursor implies).
    ids = [f"m-{i:05d}" for i in range(1205)]
    await _running_rows(hub, ids)
    job = await manager.bulk(BulkRequest("suspend", "name = 'Many'"))
    info = await job.run()
    assert (info.state, info.matched, info.done) == (JobState.COMPLETED, 1205, 1205)
    rows = await _rows(hub, job.id, SELECTION_PREFIX)
    assert [r["Count"] for r in rows] == [1000, 205]
    assert await _rows(hub, job.id, MEMBER_PREFIX) == []
    assert [(o.instance_id, o.outcome) async for o in job.outcomes()] == [(i, Outcome.DONE) for i in ids]


async def _running_rows(hub, ids: list[str], name: str = "Many") -> None:
    await gather_limited([hub.instances.client.upsert_entity({"PartitionKey": i, "RowKey": "", "Name": name,
                                                              "RuntimeStatus": "Running", "CreatedTime": utcnow()})
                          for i in ids])


async def test_acting_starts_with_the_first_recorded_page_while_the_scan_goes_on(hub, manager):
    # Two storage pages of matches: the first page's instances are acted on before the second page is read,
    # so a job over many instances does not wait for its whole scan (runner: "Acting starts with the first
    # page"). Each progress report is taken from the job row as written.
    ids = [f"m-{i:05d}" for i in range(1205)]
    await _running_rows(hub, ids)
    job = await manager.bulk(BulkRequest("suspend", "name = 'Many'", batch_size=50))
    seen = []
    info = await job.run(lambda i: seen.append((i.state, i.finished, i.matched, i.selection_complete)))
    assert (info.state, info.matched, info.done) == (JobState.COMPLETED, 1205, 1205)
    assert seen[0] == (JobState.RUNNING, 0, 1000, False)  # the first page recorded, nothing acted on yet
    acted_while_selecting = [f for state, f, matched, complete in seen if not complete and f]
    assert acted_while_selecting and max(acted_while_selecting) <= 1000
    assert _kinds(await drain_messages(hub), "ExecutionSuspended") == {i: 1 for i in ids}


async def test_a_job_stopped_while_acting_and_selecting_resumes_each_instance_once(hub, manager):
    ids = [f"m-{i:05d}" for i in range(1205)]
    await _running_rows(hub, ids)
    job = await manager.bulk(BulkRequest("suspend", "name = 'Many'", batch_size=50))
    info = await job.run(lambda i: job.stop() if i.finished >= 100 else None)
    assert (info.state, info.matched, info.selection_complete) == (JobState.INTERRUPTED, 1000, False)
    assert 100 <= info.done < 1000
    scanned = info.params["scanned"]
    assert scanned == escape_key(ids[999]) and info.cursor == member_key(ids[info.done - 1])
    # What `jobs show` lists: done through the cursor, pending up to the scan's cursor, nothing past it.
    outcomes = [(o.instance_id, o.outcome) async for o in job.outcomes()]
    assert outcomes == [(i, Outcome.DONE) for i in ids[:info.done]] + [(i, Outcome.PENDING)
                                                                      for i in ids[info.done:1000]]
    # A crash after a page's rows were written but before the job row recorded them leaves rows past the
    # scan's cursor, one of them an instance that does not match: the resumed run drops them and scans again.
    await JobsTable(hub).add_selection(job.id, [ids[1000], "m-01000x-stray", ids[1001]])
    info = await (await manager.job(job.id)).run()
    assert (info.state, info.matched, info.done, info.skipped) == (JobState.COMPLETED, 1205, 1205, 0)
    assert _kinds(await drain_messages(hub), "ExecutionSuspended") == {i: 1 for i in ids}
    assert [o.instance_id async for o in job.outcomes()] == ids


async def test_a_job_the_selection_page_layout_was_still_selecting_resumes_from_its_scan_cursor(hub, manager):
    # Layout 2 (before acting overlapped the scan) kept the scan's cursor in the job's cursor until the
    # selection was complete, and acted on nothing before that. Such a job, stopped mid-selection, resumes:
    # its recorded pages are acted on, a row past its cursor is dropped, and the scan goes on after it.
    ids = [f"m-{i:03d}" for i in range(12)]
    await _running_rows(hub, ids)
    request = BulkRequest("suspend", "name = 'Many'")
    jobs = JobsTable(hub)
    await jobs.ensure()
    query: Query = request.query
    info = JobInfo(id=new_job_id(), action=request.action, query=query.text, now=query.now,
                   state=JobState.INTERRUPTED, created=utcnow(), updated=utcnow(),
                   params={**request_params(request), "layout": SELECTION_LAYOUT}, matched=5,
                   cursor=escape_key(ids[4]))
    await jobs.create(info)
    await jobs.add_selection(info.id, ids[:5])
    await jobs.add_selection(info.id, ["m-005x-stray"])  # written, but the cursor never moved past it
    # Recorded, then it stopped matching: recorded pages are kept (not scanned again), so it is still acted on.
    await hub.instances.client.update_entity({"PartitionKey": ids[2], "RowKey": "", "Name": "Renamed"})
    job = await manager.job(info.id)
    assert [(o.instance_id, o.outcome) async for o in job.outcomes()] == [(i, Outcome.PENDING) for i in ids[:5]]
    info = await job.run()
    assert (info.state, info.matched, info.done, info.skipped) == (JobState.COMPLETED, 12, 12, 0)
    assert info.params["layout"] == STREAMED_LAYOUT and "scanned" not in info.params
    assert _kinds(await drain_messages(hub), "ExecutionSuspended") == {i: 1 for i in ids}
    assert [o.instance_id async for o in job.outcomes()] == ids


@pytest.mark.parametrize("query", [
    "customStatus CONTAINS 'b'",
    "input CONTAINS 'x' OR status = Failed",
    "output CONTAINS 'ok' AND NOT name STARTS_WITH 'B'",
    "instanceId >= 'c-05' AND name = 'A'",
    "lastUpdatedTime < '2026-03-01' OR output CONTAINS 'ok'",
])
async def test_a_selection_filtered_here_reads_the_columns_its_filter_needs(hub, manager, query):
    # The selection reads only the key and the columns the client-side half of the query looks at
    # (scan.scan_ids): it must select exactly what find() matches, whichever columns that half needs,
    # including a row without LastUpdatedTime (taken as updated when created).
    created = utcnow().replace(year=2026, month=1, day=1)
    rows = []
    for i in range(12):
        row = {"PartitionKey": f"c-{i:02d}", "RowKey": "", "Name": "AB"[i % 2],
               "RuntimeStatus": ["Completed", "Failed", "Running"][i % 3], "CreatedTime": created,
               "CustomStatus": json.dumps("ab"[i % 2 == 0 and i % 4 == 0]), "Input": json.dumps("x" * (i % 3)),
               "Output": json.dumps("ok" if i % 5 == 0 else "no")}
        if i % 4:
            row["LastUpdatedTime"] = created.replace(month=1 + i)
        rows.append(row)
    await gather_limited([hub.instances.client.upsert_entity(r) for r in rows])
    expected = [s.instance_id async for s in manager.find(query)]
    assert expected and len(expected) < 12  # the query tells rows apart
    job = await manager.bulk(BulkRequest("suspend", query))
    info = await job.run(lambda i: job.stop() if i.state is JobState.RUNNING else None)  # select only
    assert info.matched == len(expected)
    assert [o.instance_id async for o in job.outcomes(Outcome.PENDING)] == expected


async def test_long_ids_beyond_the_bmp_are_split_across_rows_and_properties_within_entity_limits(hub):
    jobs = JobsTable(hub)
    await jobs.ensure()
    job_id = new_job_id()
    # 250 characters beyond U+FFFF: 1,000 bytes of UTF-16, about the most a key may hold (1 KiB).
    ids = [f"{i:04d}" + "\U0001F600" * 246 for i in range(1000)]
    rows = selection_rows(job_id, ids)
    assert len(rows) > 1 and sum(r["Count"] for r in rows) == 1000
    await jobs.add_selection(job_id, ids)
    stored = await _rows(hub, job_id, SELECTION_PREFIX)
    assert len(stored) == len(rows)
    for row in stored:
        texts = [v for k, v in row.items() if k.startswith("Ids")]
        # Storage limits: a string property holds 64 KiB of UTF-16, an entity 1 MiB.
        assert all(len(t.encode("utf-16-le")) <= 64 * 1024 for t in texts)
        assert sum(len(t.encode("utf-16-le")) for t in texts) < 1024 * 1024
        assert sum(len(json.dumps(t)) for t in texts) < 1024 * 1024  # as Azurite measures it: UTF-8 JSON
    read = [iid async for page in jobs.selection(job_id) for _, iid in page]
    assert read == ids
    after = [iid async for page in jobs.selection(job_id, after=member_key(ids[600])) for _, iid in page]
    assert after == ids[601:]


async def test_rows_left_by_a_selection_that_stopped_before_its_cursor_moved_are_not_acted_on(hub, client, manager):
    targets = await start_many(client, 12)
    job = await manager.bulk(BulkRequest("terminate", "instanceId STARTS_WITH 't-'"))
    # A selection that died after writing its rows but before the job row recorded them (one of them is an
    # instance that has been purged since): the next run must start that page again, not add to it.
    await JobsTable(hub).add_selection(job.id, ["t-000", "t-001", "t-0015-gone"])
    info = await job.run()
    assert (info.state, info.matched, info.done, info.skipped) == (JobState.COMPLETED, 12, 12, 0)
    assert _kinds(await drain_messages(hub), "ExecutionTerminated") == {t: 1 for t in targets}
    assert [o.instance_id async for o in job.outcomes()] == targets


async def test_a_job_still_selecting_shows_only_what_its_cursor_recorded(hub, client, manager):
    targets = await start_many(client, 4)
    job = await manager.bulk(BulkRequest("terminate", "instanceId STARTS_WITH 't-'"))
    # Rows of a selection that stopped before its cursor recorded them (the next run drops them): not part of
    # the job yet, so `jobs show` must not list them as pending (one is an instance the query does not match).
    await JobsTable(hub).add_selection(job.id, ["t-000", "t-001", "x-other"])
    assert [o async for o in job.outcomes()] == []
    assert [o async for o in job.outcomes(Outcome.PENDING)] == []
    info = await job.run()
    assert (info.state, info.matched, info.done) == (JobState.COMPLETED, 4, 4)
    assert [o.instance_id async for o in job.outcomes()] == targets


async def test_outcomes_follow_the_table_service_key_order(hub, client, manager):
    # The service orders keys by UTF-16 code unit: U+1F600 (a surrogate pair, D83D...) comes before U+FFFD,
    # though Python's str order puts it after. The skipped outcome is written; the other is implied.
    smiley, replacement = "k-\U0001F600", "k-\uFFFD"
    await client.start("Target", instance_id=smiley)
    await hostlike_instance(hub, replacement, "Completed", name="Target")
    job = await manager.bulk(BulkRequest("terminate", "instanceId STARTS_WITH 'k-'"))
    info = await job.run()
    assert (info.done, info.skipped) == (1, 1)
    outcomes = [(o.instance_id, o.outcome) async for o in job.outcomes()]
    assert outcomes == [(smiley, Outcome.DONE), (replacement, Outcome.SKIPPED)]


async def test_ids_whose_keys_fill_the_key_limit_are_selected_acted_on_and_reported(hub, client, manager):
    # A key holds at most 1 KiB (512 UTF-16 units; Azurite refuses longer ones as the service does). The
    # extension allows ids of 256 characters (DurableClient.MaxInstanceIdLength) and escapes '^' as '^^'
    # (KeySanitation.EscapePartitionKey): these keys are 512 and 511 units, so "s:"/"i:" plus the key did not
    # fit and every job selecting them failed ("refused the request while recording the instances"). Cut to
    # fit, the two skipped ones would share one outcome row: a transaction of both was refused.
    running, completed = "^" * 256, ["^" * 255 + "x", "^" * 255 + "y"]
    await client.start("Target", instance_id=running)
    for iid in completed:
        await hostlike_instance(hub, iid, "Completed", name="Target")
    assert [len(escape_key(i)) for i in (running, *completed)] == [512, 511, 511]
    job = await manager.bulk(BulkRequest("terminate", "name = 'Target'"))
    info = await job.run()
    assert (info.state, info.matched, info.done, info.skipped, info.failed) == (JobState.COMPLETED, 3, 1, 2, 0)
    assert _kinds(await drain_messages(hub), "ExecutionTerminated") == {running: 1}
    assert [(o.instance_id, o.outcome) async for o in job.outcomes()] == [
        (running, Outcome.DONE), (completed[0], Outcome.SKIPPED), (completed[1], Outcome.SKIPPED)]
    skipped = [o async for o in job.outcomes(Outcome.SKIPPED)]
    assert [o.instance_id for o in skipped] == completed and all("already Completed" in o.reason for o in skipped)
    for row in await _rows(hub, job.id, SELECTION_PREFIX) + await _rows(hub, job.id, MEMBER_PREFIX):
        assert len(row["RowKey"].encode("utf-16-le", "surrogatepass")) <= 1024


async def test_a_selection_row_left_by_a_runner_that_lost_its_lease_never_repeats_an_instance(hub, client, manager):
    targets = await start_many(client, 6)
    job = await manager.bulk(BulkRequest("terminate", "instanceId STARTS_WITH 't-'"))
    info = await job.run(lambda i: job.stop() if i.state is JobState.RUNNING else None)  # select only
    assert (info.state, info.matched) == (JobState.INTERRUPTED, 6)
    # A runner paused past its lease (another took the job over and selected) writes its rows when it wakes,
    # before its job row update is refused: its page began at an instance gone since ("t-0"), so its row
    # overlaps the new owner's instead of replacing it. Rows are written without the job row's ETag.
    await JobsTable(hub).add_selection(job.id, ["t-0", *targets])
    info = await (await manager.job(job.id)).run()
    assert info.state is JobState.COMPLETED
    assert _kinds(await drain_messages(hub), "ExecutionTerminated") == {t: 1 for t in targets}
    assert [o.instance_id async for o in job.outcomes()] == ["t-0", *targets]


async def _legacy_job(hub, request: BulkRequest, ids: list[str], *, selected: bool, done: int = 0) -> str:
    """A job as the earlier layout stored it: no ``layout`` param and one "i:" row per selected instance,
    pending (those up to the cursor done as usual: checkpoints did not write them)."""
    jobs = JobsTable(hub)
    await jobs.ensure()
    query: Query = request.query
    params = {**request_params(request), **({"selected": True} if selected else {})}
    cursor = member_key(ids[done - 1]) if done else ""
    info = JobInfo(id=new_job_id(), action=request.action, query=query.text, now=query.now,
                   state=JobState.INTERRUPTED, created=utcnow(), updated=utcnow(), params=params,
                   matched=len(ids), done=done, cursor=cursor)
    await jobs.create(info)
    table = hub.table_service.get_table_client(hub.names.jobs_table)
    for iid in ids:
        await table.upsert_entity({"PartitionKey": info.id, "RowKey": member_key(iid), "InstanceId": iid,
                                   "Outcome": Outcome.PENDING.value}, mode=UpdateMode.MERGE)
    return info.id


async def test_a_job_selected_by_the_earlier_layout_resumes_where_it_stopped(hub, client, manager):
    targets = await start_many(client, 8)
    job_id = await _legacy_job(hub, BulkRequest("suspend", "instanceId STARTS_WITH 't-'"), targets, selected=True,
                               done=3)
    info = await (await manager.job(job_id)).run()
    assert (info.state, info.matched, info.done) == (JobState.COMPLETED, 8, 8)
    assert _kinds(await drain_messages(hub), "ExecutionSuspended") == {t: 1 for t in targets[3:]}
    job = await manager.job(job_id)
    assert [(o.instance_id, o.outcome, o.reason) async for o in job.outcomes()] == [
        (t, Outcome.DONE, "suspend sent") for t in targets]


async def test_a_job_the_earlier_layout_was_still_selecting_selects_again_in_rows(hub, client, manager):
    targets = await start_many(client, 6)
    # It had recorded two members (and a third that no longer matches) before it stopped.
    job_id = await _legacy_job(hub, BulkRequest("resume", "instanceId STARTS_WITH 't-'"),
                               targets[:2] + ["t-gone"], selected=False)
    info = await (await manager.job(job_id)).run()
    assert (info.state, info.matched, info.done) == (JobState.COMPLETED, 6, 6)
    assert _kinds(await drain_messages(hub), "ExecutionResumed") == {t: 1 for t in targets}
    job = await manager.job(job_id)
    assert [o.instance_id async for o in job.outcomes()] == targets
    assert json.loads(json.dumps(job.info.params))["layout"] == STREAMED_LAYOUT
    assert await _rows(hub, job_id, MEMBER_PREFIX) == []
    assert escape_key("t-gone") not in [r["RowKey"] for r in await _rows(hub, job_id, SELECTION_PREFIX)]


async def _history_partitions(hub) -> set[str]:
    return {e["PartitionKey"] async for e in hub.history.client.query_entities("", select=["PartitionKey"])}


@pytest.mark.parametrize("how", ["bulk purge job", "purge by filter"])
async def test_purges_reach_the_history_of_ids_beyond_the_bmp(hub, manager, how):
    # Both purges read history keys by ranges taken from sorted keys: sorted as Python orders str, the range
    # from "k-\uFFFD" to "k-\U0001F600" is empty in the service, and the history rows were left behind.
    ids = ["k-\U0001F600", "k-\uFFFD", "k-a"]
    for iid in ids:
        await hostlike_instance(hub, iid, "Completed", name="Target")
    assert {escape_key(i) for i in ids} <= await _history_partitions(hub)
    if how == "bulk purge job":
        info = await (await manager.bulk(BulkRequest("purge", "name = 'Target'"))).run()
        assert (info.done, info.skipped, info.failed) == (3, 0, 0)
    else:
        assert (await manager.purge(statuses=["Completed"])).instances_deleted == 3
    assert await _history_partitions(hub) == set()
    assert [i async for i in manager.find("")] == []
