"""Every error of `funcpy durable …`: one line saying what was wrong and what to do, the mapped exit code,
no traceback, and nothing changed in the store."""

from __future__ import annotations

import asyncio

import pytest

from durable_mgmt.models import RuntimeStatus

from .test_cli_support import HUB_SETTING, cli, hostlike_instance, one_error_line  # noqa: F401 (fixture)


@pytest.fixture
async def small_hub(hub):
    await hostlike_instance(hub, "done-1", "Completed")
    await hostlike_instance(hub, "live-1", "Running")
    return hub


USAGE_ERRORS = [  # (args, environment changes, exit code, words the one line must hold)
    (["count", "--connection-string-setting", "MyStorage"], {}, 2,
     ["No connection string in app setting 'MyStorage'", "local.settings.json"]),
    (["count"], {"AzureWebJobsStorage": None}, 2,
     ["No connection string in app setting 'AzureWebJobsStorage'", "UseDevelopmentStorage=true"]),
    (["count"], {HUB_SETTING: None}, 2, [f"%{HUB_SETTING}%", "no app setting"]),
    (["count", "--task-hub-name", "Bad_Name"], {}, 2, ["Invalid task hub name 'Bad_Name'", "letters and digits"]),
    (["count", "--task-hub-name", "NoSuchHub0"], {}, 1, ["Task hub 'NoSuchHub0' does not exist", "--task-hub-name"]),
    (["get-instances", "--created-after", "yesterday"], {}, 2, ["'yesterday' is not an ISO 8601 time", "2024-05-01"]),
    (["purge-history", "--created-before", "2024-13-01"], {}, 2, ["'2024-13-01' is not an ISO 8601 time"]),
    (["get-instances", "--created-after", "2024-05-02", "--created-before", "2024-05-01"], {}, 2,
     ["is after createdTimeTo"]),
    (["count", "--runtime-status", "running finished"], {}, 2, ["Unknown runtime status 'finished'", "Allowed"]),
    (["purge-history", "--runtime-status", "running"], {}, 2, ["Cannot purge instances that are Running"]),
    (["get-instances", "--continuation-token", "not-a-token"], {}, 2, ["Invalid continuation token"]),
    (["get-instances", "--top", "0"], {}, 2, ["'--top'", "--help"]),
    (["start-new"], {}, 2, ["Missing option '--function-name'", "funcpy durable start-new --help"]),
    (["start-new", "--function-name", "F", "--input", "@missing.json"], {}, 2, ["'missing.json' does not exist"]),
    (["start-new", "--function-name", "F", "--id", "a/b"], {}, 2, ["Invalid instance id 'a/b'"]),
    (["no-such-command"], {}, 2, ["No such command 'no-such-command'"]),

]


async def run_all(cases, check):
    """Run the cases' subprocesses a few at a time (start-up dominates), then report every failure at once."""
    sem = asyncio.Semaphore(4)

    async def one(case):
        async with sem:
            try:
                await check(*case)
            except AssertionError as err:
                return f"{case[0]}: {err}"

    failures = [f for f in await asyncio.gather(*(one(c) for c in cases)) if f]
    assert not failures, "\n".join(failures)


async def test_usage_and_setting_errors(cli, small_hub):
    async def check(args, env, code, words):
        result = await cli(*args, env=env)
        line = one_error_line(result)
        assert result.code == code, str(result)
        assert all(word in line for word in words), line
        assert result.stdout == ""

    await run_all(USAGE_ERRORS, check)


UNKNOWN_INSTANCE = [
    ["get-runtime-status", "--id", "nope"], ["get-history", "--id", "nope"], ["terminate", "--id", "nope"],
    ["raise-event", "--id", "nope", "--event-name", "E"], ["suspend", "--id", "nope"], ["resume", "--id", "nope"],
    ["rewind", "--id", "nope"], ["purge-instance", "--id", "nope"],
]


async def test_unknown_instance(cli, small_hub):
    async def check(*args):
        result = await cli(*args)
        line = one_error_line(result)
        assert result.code == 1, str(result)
        assert "No orchestration instance with id 'nope'" in line and "get-instances" in line, line

    await run_all([tuple(a) for a in UNKNOWN_INSTANCE], check)


async def test_wrong_state_is_refused_and_changes_nothing(cli, small_hub, client):
    rewind, terminate, purge, start = await asyncio.gather(
        cli("rewind", "--id", "done-1"), cli("terminate", "--id", "done-1"), cli("purge-instance", "--id", "live-1"),
        cli("start-new", "--function-name", "HelloCities", "--id", "live-1"))
    line = one_error_line(rewind)
    assert rewind.code == 1 and "is Completed; only Failed instances can be rewound" in line
    assert "get-runtime-status" in line
    assert terminate.code == 1 and "already Completed" in one_error_line(terminate)
    assert purge.code == 1 and "Terminate it first" in one_error_line(purge)
    assert start.code == 1 and "already Running" in one_error_line(start)
    assert (await client.get_status("done-1")).runtime_status == RuntimeStatus.COMPLETED
    assert (await client.get_status("live-1")).runtime_status == RuntimeStatus.RUNNING
    assert await small_hub.control_queue_for("live-1").peek_messages(max_messages=32) == []
