"""`funcpy durable` query commands: count --group-by, get-instances --query (jsonl, csv), --explain,
query errors with a caret, and the bulk / jobs / export-history commands (no host needed)."""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import timedelta

import click
import pytest

from .test_cli_support import T0, cli, gather_limited, hostlike_instance  # noqa: F401 (fixture)

SEED = [(f"a-{i:02d}", "Completed" if i % 3 else "Failed", "Alpha" if i % 2 else "Beta") for i in range(18)]


@pytest.fixture
async def seeded(hub):
    await gather_limited([hostlike_instance(hub, iid, status, name=name, created=T0 + timedelta(hours=i),
                                            input={"n": i}) for i, (iid, status, name) in enumerate(SEED)])
    return hub


async def failed_count(hub) -> int:
    from durable_mgmt import CountRequest, InstanceManager
    from durable_mgmt.transports import StorageTransport

    return (await InstanceManager(StorageTransport(hub)).count(CountRequest("status = Failed"))).total


async def test_count_grouped_by_name_and_status_in_json_and_table(cli, seeded):
    body = await cli.json("count", "-q", "status = Completed", "--group-by", "name")
    expected = {}
    for _, status, name in SEED:
        if status == "Completed":
            expected[name] = expected.get(name, 0) + 1
    assert body == {"total": sum(expected.values()), "groupBy": "name", "groups": expected}
    table = await cli.ok("count", "--group-by", "status", "--output", "table")
    assert "Completed" in table.stdout and "12" in table.stdout and "Total" in table.stdout and "18" in table.stdout


async def test_get_instances_by_query_streams_jsonl_and_csv(cli, seeded):
    jsonl = await cli.ok("get-instances", "-q", "name = 'Beta' AND input CONTAINS '1'", "--all", "--show-input",
                         "--output", "jsonl")
    lines = [json.loads(line) for line in jsonl.stdout.splitlines()]
    expected = [iid for i, (iid, _, name) in enumerate(SEED) if name == "Beta" and "1" in json.dumps({"n": i}, separators=(",", ":"))]
    assert [b["instanceId"] for b in lines] == expected and all("input" in b for b in lines)
    text = (await cli.ok("get-instances", "-q", "status = Failed", "--top", "3", "--output", "csv")).stdout
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["instanceId", "name", "runtimeStatus", "createdTime", "lastUpdatedTime", "customStatus"]
    assert [r[0] for r in rows[1:]] == ["a-00", "a-03", "a-06"] and {r[2] for r in rows[1:]} == {"Failed"}


async def test_explain_prints_the_plan_and_touches_nothing(cli, seeded):
    body = await cli.json("get-instances", "-q", "status = Failed AND customStatus CONTAINS 'x'", "--explain")
    assert body["pushedDown"] == "status = Failed" and body["filteredHere"] == "customStatus CONTAINS 'x'"
    assert body["storageFilter"].startswith("RuntimeStatus eq 'Failed'")


async def test_a_bad_query_shows_a_caret_and_exits_2(cli, seeded):
    result = await cli("count", "-q", "status = Done OR name = 'x'")
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "Error: Invalid query at column 10: unknown runtime status 'Done'; allowed: Pending, Running, Completed, "
        "ContinuedAsNew, Failed, Canceled, Terminated, Suspended.",
        "  status = Done OR name = 'x'",
        "           ^"]
    mixed = await cli("count", "-q", "status = Failed", "--name", "Alpha")
    assert mixed.code == 2 and "--query replaces the filter options" in mixed.stderr


async def test_bulk_purge_asks_then_runs_as_a_job_listed_by_jobs(cli, seeded, hub):
    declined = await cli("bulk", "purge", "-q", "status = Failed", input="n\n")
    assert declined.code == 1
    assert "purge 6 instances of task hub" in declined.stderr and "(6 Failed)" in declined.stderr
    assert "Error: Nothing done: not confirmed" in declined.stderr
    assert await failed_count(hub) == 6  # nothing was purged

    done = await cli.json("bulk", "purge", "-q", "status = Failed", "--rate", "100", "--yes")
    assert (done["state"], done["matched"], done["done"], done["failed"]) == ("Completed", 6, 6, 0)
    assert await failed_count(hub) == 0
    listed = await cli.json("jobs", "list")
    assert [j["id"] for j in listed] == [done["id"]]
    shown = await cli.json("jobs", "show", done["id"], "--outcomes", "done", "--limit", "2")
    assert shown["instances"] == [{"instanceId": "a-00", "outcome": "done", "reason": "purged"},
                                  {"instanceId": "a-03", "outcome": "done", "reason": "purged"}]
    resumed = await cli.json("jobs", "resume", done["id"])  # nothing left to do
    assert resumed["done"] == 6
    canceled = await cli.json("jobs", "cancel", done["id"])
    assert canceled["state"] == "Completed"  # a finished job stays finished
    missing = await cli("jobs", "show", "nope")
    assert missing.code == 1 and "No bulk job with id 'nope'" in missing.stderr


async def test_bulk_with_no_match_does_nothing_and_bad_options_exit_2(cli, seeded):
    body = await cli.json("bulk", "terminate", "-q", "name = 'Nobody'", "--yes")
    assert body == {"matched": 0}
    assert (await cli.json("jobs", "list")) == []
    bad = await cli("bulk", "raise-event", "-q", "status = Running", "--yes")
    assert bad.code == 2 and "Missing option '--event-name'" in bad.stderr
    bad = await cli("bulk", "suspend", "-q", "status = Running", "--rate", "0")
    assert bad.code == 2 and "--rate" in bad.stderr


async def test_export_history_writes_gzip_jsonl(cli, seeded, tmp_path):
    path = tmp_path / "failed.jsonl.gz"
    body = await cli.json("export-history", "-q", "status = Failed", "--path", str(path), "--gzip")
    assert (body["state"], body["done"]) == ("Completed", 6)
    lines = [json.loads(x) for x in gzip.decompress(path.read_bytes()).decode().splitlines()]
    assert [x["instanceId"] for x in lines] == ["a-00", "a-03", "a-06", "a-09", "a-12", "a-15"]
    assert all(any(e["EventType"] == "ExecutionCompleted" for e in x["historyEvents"]) for x in lines)


@pytest.mark.parametrize("rate", ["inf", "nan", "1e-300", "-1", "1e300"])
async def test_rates_that_could_never_run_exit_2_and_create_no_job(cli, seeded, rate):
    bad = await cli("bulk", "suspend", "-q", "status = Running", "--rate", rate, "--yes")
    assert bad.code == 2 and "is not a rate" in bad.stderr and "from 0.01" in bad.stderr
    assert (await cli.json("jobs", "list")) == []


@pytest.mark.parametrize("command", ["show", "cancel", "resume"])
async def test_job_ids_not_of_the_issued_form_are_refused_before_storage(cli, seeded, command):
    for job_id in ("../x", "a'b", "20240501T101500-3FA2C1", "20240501T101500-3fa2c1/..", "%2e%2e"):
        bad = await cli("jobs", command, job_id)
        assert bad.code != 0 and "job ids look like 20240501T120000-a1b2c3" in bad.stderr, bad.stderr
        assert "HTTP" not in bad.stderr and "Traceback" not in bad.stderr
    assert (await cli.json("jobs", "list")) == []
    missing = await cli("jobs", command, "20240501T101500-3fa2c1")  # the right form, but no such job
    assert missing.code != 0 and "No bulk job with id '20240501T101500-3fa2c1' in this task hub" in missing.stderr


async def test_bulk_raise_event_refuses_broken_json_and_deep_nesting_and_takes_plain_text_explicitly(cli, seeded):
    base = ("bulk", "raise-event", "-q", "status = Running", "--event-name", "Go", "--yes")
    for data in ("{bad", "[1, 2", '"unclosed', "NaN", "Infinity"):
        bad = await cli(*base, "--event-data", data)
        assert bad.code == 2 and "looks like JSON but is not valid JSON" in bad.stderr and "--event-data-text" in bad.stderr
    deep = await cli(*base, "--event-data", "[" * 5000 + "]" * 5000)
    assert deep.code == 2 and "nested more than 64 levels" in deep.stderr and "Traceback" not in deep.stderr
    both = await cli(*base, "--event-data", "1", "--event-data-text", "x")
    assert both.code == 2 and "not both" in both.stderr
    assert (await cli.json("jobs", "list")) == []  # nothing was created
    explained = await cli(*base, "--event-data-text", "{bad", "--explain")
    assert explained.code == 0, explained.stderr


def test_single_raise_event_keeps_taking_text_that_is_not_json_as_a_string():
    from durable_mgmt.cli.params import JSON_TEXT, STRICT_JSON_TEXT

    assert JSON_TEXT.convert("{bad", None, None) == '"{bad"' and JSON_TEXT.convert("Tokyo", None, None) == '"Tokyo"'
    assert STRICT_JSON_TEXT.convert("Tokyo", None, None) == '"Tokyo"'  # plain words stay strings in bulk too
    with pytest.raises(click.BadParameter, match="nested more than 64 levels"):
        JSON_TEXT.convert("[" * 5000 + "]" * 5000, None, None)
