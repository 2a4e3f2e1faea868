"""`funcpy durable purge-history` at scale: 2,000 matching instances among others that must stay."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from durable_mgmt.models import InstanceQuery, RuntimeStatus

from .test_cli_support import T0, cli, gather_limited, hostlike_instance  # noqa: F401 (fixture)

MATCHING = 2000
EVENTS = 2  # history events per instance (+ the sentinel row): enough to show rows go, cheap to seed


async def test_purge_history_of_2000_instances_with_progress(cli, hub, client):
    in_range = T0 + timedelta(minutes=30)
    seeds = [hostlike_instance(hub, f"old-{i:05d}", "Completed" if i % 4 else "Terminated", created=in_range,
                               events=EVENTS) for i in range(MATCHING)]
    # Interleaved with the matching ids (same prefix), so range reads must skip them.
    keep = {f"old-{i:05d}x": s for i, s in zip(range(0, MATCHING, 40), ["Running", "Failed", "Pending"] * 20)}
    keep |= {f"new-{i:03d}": "Completed" for i in range(30)}  # created after --created-before
    seeds += [hostlike_instance(hub, iid, status, created=in_range, events=EVENTS) for iid, status in keep.items()
              if iid.startswith("old")]
    seeds += [hostlike_instance(hub, iid, "Completed", created=T0 + timedelta(days=2), events=EVENTS)
              for iid in keep if iid.startswith("new")]
    await gather_limited(seeds)
    args = ["purge-history", "--created-after", T0.isoformat(), "--created-before", (T0 + timedelta(days=1)).isoformat(),
            "--runtime-status", "completed terminated failed"]

    declined = await cli(*args, "--output", "json", input="")
    assert declined.code == 1 and declined.stdout == ""
    assert f"Purge {MATCHING + 17:,} finished instances" in declined.stderr  # 17 Failed ones match too
    assert "Error: Nothing purged: not confirmed. Pass --yes" in declined.stderr

    # Most of the test's time (100 s under a loaded xdist run): give it what pytest's 300 s leave, rather than
    # the usual 120 s; past that, it is killed (Cli), never left purging a hub the clean-up deletes.
    result = await cli(*args, "--output", "json", input="y\n", timeout=240)
    assert result.code == 0, str(result)
    purged = MATCHING + 17
    assert result.json == {"instancesDeleted": purged, "rowsDeleted": purged * (EVENTS + 1), "blobsDeleted": 0}
    progress = [int(n.replace(",", "")) for n in re.findall(r"Purging: ([\d,]+)/2,017 instances", result.stderr)]
    assert len(progress) >= 5 and progress == sorted(progress) and progress[-1] == purged, result.stderr

    left = {s.instance_id: s.runtime_status.value async for s in client.iter_instances(InstanceQuery(page_size=1000))}
    assert left == {iid: status for iid, status in keep.items() if status != "Failed"}
    for iid in ("old-00000x", "old-00080x", "new-007"):  # Running, Pending, out of range
        assert len(await hub.history.rows(iid)) == EVENTS + 1
    for iid in ("old-00000", "old-00040x", "old-01999"):
        assert await hub.history.rows(iid) == []
    counts = await client.count()
    assert counts[RuntimeStatus.COMPLETED] == 30 and sum(counts.values()) == len(left)


async def test_purge_history_with_nothing_to_purge_and_table_output(cli, hub):
    await hostlike_instance(hub, "live", "Running")
    result = await cli.ok("purge-history", "--instance-id-prefix", "li", "--output", "table")
    assert result.stdout.strip() == "No finished instances match (id starting with 'li'); nothing purged."
    await hostlike_instance(hub, "done", "Completed")
    table = await cli.ok("purge-history", "--yes", "--name", "HelloCities", "--output", "table")
    assert "Instances deleted: 1\nRows deleted: 9" in table.stdout
    assert "Purging: 1/1 instances (100%)" in table.stderr


async def test_a_command_past_its_timeout_is_killed_not_left_running_against_the_hub(cli, hub):
    # The 2,000-instance purge's flake: its CLI run passed its timeout under load and was left running; the
    # test's clean-up deleted the hub, and the orphan went on purging until the next page of instances
    # failed with "HTTP 404" (the table was gone). Now a timed-out command is killed and reaped.
    await hostlike_instance(hub, "one", "Completed")
    with pytest.raises(AssertionError, match=r"get-instances did not finish in 0.01 s and was killed"):
        await cli("get-instances", timeout=0.01)
    assert cli.last_process is not None and cli.last_process.returncode is not None
