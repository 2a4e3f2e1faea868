"""`funcpy durable …` commands, run as the real entry point against Azurite, checked against the store."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import timedelta

import pytest

from durable_mgmt.models import InstanceQuery, RuntimeStatus
from durable_mgmt.taskhub.events import EventType
from durable_mgmt.taskhub.timefmt import to_iso

from .test_cli_support import MODULE, T0, Cli, cli, hostlike_instance  # noqa: F401 (fixture)

# A hub as the host leaves it: one instance per id, status, orchestrator and creation time.
FILLED = [
    ("done-1", "Completed", "HelloCities", 0),
    ("done-2", "Completed", "HelloCities", 1),
    ("bad-1", "Failed", "HelloCities", 2),
    ("stop-1", "Terminated", "HelloCities", 3),
    ("live-1", "Running", "Approval", 4),
    ("live-2", "Running", "Approval", 5),
]


@pytest.fixture
async def filled(hub):
    await asyncio.gather(*(hostlike_instance(hub, iid, status, name=name, created=T0 + timedelta(hours=h),
                                             input={"n": h}) for iid, status, name, h in FILLED))
    return hub


async def control_messages(hub, instance_id):
    """The messages for ``instance_id`` on its control queue (which other instances share)."""
    queue = hub.control_queue_for(instance_id)
    messages = [await hub.large.decode_message(m.content)
                async for m in queue.receive_messages(messages_per_page=32, visibility_timeout=1)]
    return [m for m in messages if m.instance_id == instance_id]


# --- queries -----------------------------------------------------------------------------------


async def test_get_instances_reads_every_status_of_a_host_filled_hub(cli, filled, client):
    body = await cli.json("get-instances", "--all", "--show-input", "--show-output")
    assert body["continuationToken"] is None
    listed = {i["instanceId"]: i for i in body["instances"]}
    assert sorted(listed) == sorted(iid for iid, *_ in FILLED)
    for iid, status, name, _ in FILLED:
        stored = await client.get_status(iid, show_input=True, show_output=True)
        assert listed[iid] == stored.to_json()  # same body as the HTTP management API
        assert listed[iid]["runtimeStatus"] == status and listed[iid]["name"] == name
        assert listed[iid]["createdTime"].endswith("Z")


@pytest.mark.parametrize("args, expected", [
    (["--runtime-status", "completed FAILED"], {"done-1", "done-2", "bad-1"}),
    (["--runtime-status", "running", "--runtime-status", "terminated"], {"live-1", "live-2", "stop-1"}),
    (["--created-after", to_iso(T0 + timedelta(hours=2)), "--created-before", "2026-03-01T16:00:00+01:00"],
     {"bad-1", "stop-1"}),  # 16:00+01:00 is 15:00 UTC, the creation time of stop-1
    (["--instance-id-prefix", "live-"], {"live-1", "live-2"}),
    (["--name", "HelloCities", "--runtime-status", "Completed Terminated"], {"done-1", "done-2", "stop-1"}),
])
async def test_get_instances_filters(cli, filled, client, args, expected):
    body = await cli.json("get-instances", "--all", *args)
    assert {i["instanceId"] for i in body["instances"]} == expected
    assert all("input" not in i and "output" not in i for i in body["instances"])


async def test_get_instances_pages_with_top_and_continuation_token(cli, filled):
    seen, token, pages = [], None, 0
    while True:
        body = await cli.json("get-instances", "--top", "4", *(["--continuation-token", token] if token else []))
        assert len(body["instances"]) <= 4
        seen += [i["instanceId"] for i in body["instances"]]
        token, pages = body["continuationToken"], pages + 1
        if not token:
            break
    assert pages == 2 and sorted(seen) == sorted(iid for iid, *_ in FILLED) and len(seen) == len(set(seen))


async def test_count_per_status_matches_the_store(cli, filled, client):
    body = await cli.json("count")
    stored = await client.count()
    assert body == {**{s.value: stored[s] for s in RuntimeStatus}, "Total": len(FILLED)}
    assert body["Completed"] == 2 and body["Running"] == 2 and body["Failed"] == 1 and body["Terminated"] == 1
    named = await cli.json("count", "--name", "Approval", "--created-after", to_iso(T0 + timedelta(hours=5)))
    assert named["Running"] == 1 and named["Total"] == 1


async def test_status_and_history_of_every_runtime_status(cli, filled, client):
    ids = [iid for iid, *_ in FILLED]
    statuses = await asyncio.gather(*(cli.json("get-runtime-status", "--id", iid, "--show-input", "--show-output")
                                      for iid in ids))
    histories = await asyncio.gather(*(cli.json("get-history", "--id", iid) for iid in ids))
    for (iid, status, *_), shown, history in zip(FILLED, statuses, histories):
        assert shown == (await client.get_status(iid)).to_json() and shown["runtimeStatus"] == status
        stored = await client.get_history(iid)
        assert [(e["EventType"], e["EventId"]) for e in history] == [(e.type.name, e.event_id) for e in stored]
    last = {iid: h[-2]["EventType"] for iid, h in zip(ids, histories)}  # the event before OrchestratorCompleted
    assert last == {"done-1": "ExecutionCompleted", "done-2": "ExecutionCompleted", "bad-1": "ExecutionCompleted",
                    "stop-1": "ExecutionCompleted", "live-1": "TaskScheduled", "live-2": "TaskScheduled"}


async def test_get_runtime_status_shows_input_and_output_only_when_asked(cli, filled, client):
    full = await cli.json("get-runtime-status", "--id", "bad-1", "--show-input", "--show-output", "true")
    assert full == (await client.get_status("bad-1")).to_json()
    assert full["runtimeStatus"] == "Failed" and full["input"] == {"n": 2}
    plain = await cli.json("get-runtime-status", "--id", "bad-1", "--show-input", "false")
    assert "input" not in plain and "output" not in plain and plain["runtimeStatus"] == "Failed"


async def test_get_history_lists_stored_events_by_name(cli, filled, client):
    body = await cli.json("get-history", "--id", "done-1")
    stored = await client.get_history("done-1")
    assert [e["EventType"] for e in body] == [e.type.name for e in stored]
    assert [e["Timestamp"] for e in body] == [to_iso(e.timestamp) for e in stored]
    completed = next(e for e in body if e["EventType"] == "ExecutionCompleted")
    assert completed["OrchestrationStatus"] == "Completed" and completed["Result"] == '"Hello {\'n\': 0}!"'


async def test_table_output_prints_status_names_and_iso_times(cli, filled):
    listing = await cli.ok("get-instances", "--all", "--output", "table")
    for iid, status, *_ in FILLED:
        assert iid in listing.stdout and status in listing.stdout
    assert "2026-03-01T12:00:00Z" in listing.stdout and "6 instances." in listing.stdout
    counts = await cli.ok("count", "--output", "table")
    assert "Completed" in counts.stdout and "Total" in counts.stdout
    status = await cli.ok("get-runtime-status", "--id", "stop-1", "--output", "table")
    assert "Terminated" in status.stdout and "runtimeStatus" in status.stdout


async def test_json_is_the_default_when_piped(cli, filled):
    result = await cli.ok("get-runtime-status", "--id", "live-1")
    assert json.loads(result.stdout)["runtimeStatus"] == "Running"
    assert result.stderr.startswith(f"Task hub '{filled.name}' (") and result.stderr.count("\n") == 1


async def test_a_reader_that_goes_away_stops_the_output_quietly(cli, filled):
    """`get-instances --all | head`: no traceback, and the shell's SIGPIPE code rather than 'refused'."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte
    try:
        proc = await asyncio.create_subprocess_exec(
            *cli.entry, "get-instances", "--all", "--output", "json", cwd=cli.root, env=cli.env,
            stdout=write_end, stderr=asyncio.subprocess.PIPE)
    finally:
        os.close(write_end)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 141 and err.decode().startswith("Task hub '") and err.decode().count("\n") == 1


async def test_settings_from_script_root_local_settings_and_host_json(cli, filled, connection_string, tmp_path):
    # No AzureWebJobsStorage and no hub setting in the environment: everything comes from --script-root.
    root = tmp_path / "elsewhere"
    root.mkdir()
    (root / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"durableTask": {
        "hubName": "%MyHub%", "storageProvider": {"connectionName": "MyStorage"}}}}))
    (root / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": {
        "MyStorage": connection_string, "MyHub": filled.name}}))
    env = {"AzureWebJobsStorage": None, "CLI_TEST_HUB": None}
    body = await cli.json("count", "--script-root", str(root), env=env)
    assert body["Total"] == len(FILLED)
    explicit = await cli.json("count", "--task-hub-name", filled.name, "--connection-string-setting", "MyStorage",
                              "--script-root", str(root), env=env)
    assert explicit == body


async def test_module_entry_point_runs_the_same_commands(cli, filled):
    module = Cli(cli.root, cli.env, MODULE)
    body = await module.json("count", "--runtime-status", "running")
    assert body["Running"] == 2 and body["Total"] == 2


# --- start, steer ----------------------------------------------------------------------------


async def test_start_new_with_inline_file_and_text_input(cli, hub, client, tmp_path):
    started = await cli.json("start-new", "--function-name", "HelloCities", "--id", "s-1", "--input", '{"city": "Oslo"}')
    assert started["instanceId"] == "s-1" and started["runtimeStatus"] == "Pending"
    assert started["input"] == {"city": "Oslo"}
    (tmp_path / "in.json").write_text('[1, 2, {"x": null}]')
    from_file = await cli.json("start-new", "--function-name", "HelloCities", "--input", f"@{tmp_path / 'in.json'}")
    text = await cli.ok("start-new", "--function-name", "Greet", "--input", "Tokyo", "--output", "table")
    assert text.stdout.startswith("Started 'Greet' at 20") and "Instance ID: '" in text.stdout
    text_id = text.stdout.split("Instance ID: '")[1].split("'")[0]

    assert (await client.get_status("s-1")).input == {"city": "Oslo"}
    assert len(from_file["instanceId"]) == 32
    assert (await client.get_status(from_file["instanceId"])).input == [1, 2, {"x": None}]
    assert (await client.get_status(text_id)).input == "Tokyo"
    msgs = await control_messages(hub, "s-1")
    assert [m.event.type for m in msgs] == [EventType.ExecutionStarted]
    assert msgs[0].event.name == "HelloCities" and json.loads(msgs[0].event.input) == {"city": "Oslo"}


async def test_raise_event_suspend_resume_queue_messages(cli, filled, tmp_path):
    (tmp_path / "event.json").write_text('{"approved": true}')
    raised = await cli.json("raise-event", "--id", "live-1", "--event-name", "Approval",
                            "--event-data", f"@{tmp_path / 'event.json'}")
    assert raised == {"instanceId": "live-1", "eventName": "Approval", "eventData": {"approved": True}}
    table = await cli.ok("raise-event", "--id", "live-1", "--event-name", "Ping", "--output", "table")
    assert table.stdout.strip() == "Raised event 'Ping' to instance 'live-1'."
    await cli.json("suspend", "--id", "live-1", "--reason", "hold")
    await cli.json("resume", "--id", "live-1", "--reason", "go")
    msgs = await control_messages(filled, "live-1")
    assert [(m.event.type, m.event.get("Name"), m.event.get("Reason")) for m in msgs] == [
        (EventType.EventRaised, "Approval", None), (EventType.EventRaised, "Ping", None),
        (EventType.ExecutionSuspended, None, "hold"), (EventType.ExecutionResumed, None, "go")]
    assert json.loads(msgs[0].event.input) == {"approved": True} and msgs[1].event.input == "null"


async def test_terminate_waits_until_a_host_terminates_the_instance(cli, filled, client):
    async def host():
        # Play the host's part: take the terminate request off the control queue and carry it out.
        queue = filled.control_queue_for("live-2")
        while True:
            async for m in queue.receive_messages(visibility_timeout=5):
                msg = await filled.large.decode_message(m.content)
                if msg.event.type == EventType.ExecutionTerminated:
                    row = await filled.instances.get("live-2")
                    row.update(RuntimeStatus="Terminated", Output=json.dumps(msg.event.input))
                    row.pop("etag")
                    await filled.instances.upsert(row)
                    return msg.event.input
            await asyncio.sleep(0.1)

    playing = asyncio.create_task(host())
    result = await cli.ok("terminate", "--id", "live-2", "--reason", "operator", "--output", "json")
    assert await playing == "operator"
    assert result.json["runtimeStatus"] == "Terminated" and result.json["output"] == "operator"
    assert "Waiting up to 30 seconds" in result.stderr
    assert (await client.get_status("live-2")).runtime_status == RuntimeStatus.TERMINATED


async def test_terminate_without_waiting_and_timing_out(cli, filled):
    refused = await cli("terminate", "--id", "live-1", "--timeout", "nan")  # refused before anything is sent
    assert refused.code == 2 and "nan is not a number of seconds" in refused.stderr, str(refused)
    queued = await cli.json("terminate", "--id", "live-1", "--timeout", "0")
    assert queued == {"instanceId": "live-1", "request": "terminate", "reason": None}
    late = await cli("terminate", "--id", "live-1", "--timeout", "0.5")
    assert late.code == 1
    assert late.stderr.strip().splitlines()[-1].startswith("Error: Instance 'live-1' is still Running after 0.5 s")
    msgs = await control_messages(filled, "live-1")
    assert [m.event.type for m in msgs] == [EventType.ExecutionTerminated] * 2


async def test_rewind_a_failed_instance(cli, filled, client):
    body = await cli.json("rewind", "--id", "bad-1", "--reason", "fixed")
    assert body == {"instanceId": "bad-1", "statusBefore": "Failed", "statusAfter": "Pending",
                    "replayedInstanceIds": ["bad-1"]}
    assert (await client.get_status("bad-1")).runtime_status == RuntimeStatus.PENDING
    types = [e.type for e in await client.get_history("bad-1")]
    assert EventType.TaskFailed not in types and EventType.GenericEvent in types


# --- delete -----------------------------------------------------------------------------------


async def test_purge_instance(cli, filled, client):
    body = await cli.json("purge-instance", "--id", "done-2")
    assert body == {"instanceId": "done-2", "instancesDeleted": 1, "rowsDeleted": 9, "blobsDeleted": 0}
    assert await filled.instances.get("done-2") is None and await filled.history.rows("done-2") == []
    assert len([s async for s in client.iter_instances(InstanceQuery())]) == len(FILLED) - 1


async def test_delete_task_hub_asks_then_deletes(cli, filled):
    refused = await cli("delete-task-hub", input="n\n")
    assert refused.code == 1 and "Task hub not deleted: not confirmed" in refused.stderr
    assert "with its 6 instances" in refused.stderr and await filled.exists()
    body = await cli.json("delete-task-hub", input="y\n")
    assert body == {"taskHub": filled.name, "deleted": True, "instancesDeleted": 6}
    assert not await filled.exists()
    assert await filled.read_info() is None
