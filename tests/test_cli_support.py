"""Support for the CLI tests: run the real ``funcpy`` as a subprocess, and fill task hubs.

``hostlike_instance`` writes an instance the way the host's engine leaves it
(Instances row + history rows of the current execution) with the task hub
layer, for each runtime status a query must read: Completed, Failed,
Terminated, Running. It holds no tests; the fixtures are imported by the
test modules.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from durable_mgmt.taskhub.events import (EventType, OrchestrationStatus, event, execution_started, failure_details)
from durable_mgmt.taskhub.history import History
from durable_mgmt.taskhub.names import escape_key

BIN = Path(sys.executable).parent
FUNCPY = [str(BIN / "funcpy"), "durable"]
MODULE = [sys.executable, "-m", "durable_mgmt.cli"]
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
HUB_SETTING = "CLI_TEST_HUB"  # host.json names the hub as %CLI_TEST_HUB%: every run exercises the expansion


@dataclass
class CliResult:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return f"funcpy durable {' '.join(self.args)} -> {self.code}\nstdout: {self.stdout}\nstderr: {self.stderr}"


class Cli:
    """Runs ``funcpy durable ...`` in a script root whose host.json and environment point at the test hub."""

    def __init__(self, root: Path, env: dict[str, str], entry: list[str] = FUNCPY):
        self.root = root
        self.env = env
        self.entry = entry
        self.last_process: asyncio.subprocess.Process | None = None

    async def __call__(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
                       timeout: float = 120) -> CliResult:
        full_env = {**self.env, **(env or {})}
        full_env = {k: v for k, v in full_env.items() if v is not None}
        proc = self.last_process = await asyncio.create_subprocess_exec(
            *self.entry, *args, cwd=self.root, env=full_env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out: list[bytes] = []
        err: list[bytes] = []
        try:
            await asyncio.wait_for(_talk(proc, input.encode() if input is not None else b"", out, err), timeout)
        except asyncio.TimeoutError:
            # Kill it: left running, the command would outlive its test and go on against a hub the test's
            # clean-up deletes (a purge then fails with "HTTP 404" on a table that is gone).
            proc.kill()
            await proc.wait()
            raise AssertionError(f"funcpy durable {' '.join(args)} did not finish in {timeout:g} s and was killed; "
                                 f"stderr so far:\n{b''.join(err).decode(errors='replace')}") from None
        return CliResult(args, proc.returncode, b"".join(out).decode(), b"".join(err).decode())

    async def ok(self, *args: str, **kw) -> CliResult:
        result = await self(*args, **kw)
        assert result.code == 0, str(result)
        return result

    async def json(self, *args: str, **kw) -> Any:
        result = await self.ok(*args, "--output", "json", **kw)
        return result.json


async def _talk(proc: asyncio.subprocess.Process, data: bytes, out: list[bytes], err: list[bytes]) -> None:
    """Send ``data`` on stdin, then read stdout and stderr into ``out``/``err`` (kept if this is cancelled)."""

    async def read(stream: asyncio.StreamReader, into: list[bytes]) -> None:
        while chunk := await stream.read(65536):
            into.append(chunk)

    async def write() -> None:
        try:
            proc.stdin.write(data)
            await proc.stdin.drain()
            proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # it exited without reading its input

    await asyncio.gather(write(), read(proc.stdout, out), read(proc.stderr, err))
    await proc.wait()


def write_script_root(root: Path, hub_ref: str = f"%{HUB_SETTING}%") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "host.json").write_text(json.dumps(
        {"version": "2.0", "extensions": {"durableTask": {"hubName": hub_ref}}}))
    return root


@pytest.fixture
def cli(tmp_path, connection_string, hub_name) -> Cli:
    root = write_script_root(tmp_path / "app")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AzureWebJobs")}
    env.update({"AzureWebJobsStorage": connection_string, HUB_SETTING: hub_name, "COLUMNS": "200"})
    return Cli(root, env)


# --- filling a hub as the host does ---------------------------------------------------------


async def hostlike_instance(hub, instance_id: str, status: str, *, name: str = "HelloCities",
                            created: datetime = T0, input: Any = "Tokyo", events: int | None = None) -> dict[str, Any]:
    """Write ``instance_id`` as the engine leaves it in ``status``; returns the Instances row written.

    ``events`` keeps only the first that many history events (None: all of them), to seed big hubs fast.
    """
    execution_id = uuid.uuid5(uuid.NAMESPACE_URL, instance_id).hex
    t = created
    step = timedelta(seconds=1)
    row: dict[str, Any] = {
        "PartitionKey": escape_key(instance_id), "RowKey": "", "Name": name, "Version": "",
        "Input": json.dumps(input), "RuntimeStatus": status, "CreatedTime": created,
        "LastUpdatedTime": created + 4 * step, "ExecutionId": execution_id, "Generation": 0,
        "TaskHubName": hub.name, "CustomStatus": "null",
    }
    history = [event(EventType.OrchestratorStarted, timestamp=t),
               execution_started(instance_id, execution_id, name, json.dumps(input), generation=0, timestamp=t),
               event(EventType.TaskScheduled, 0, t, Name="SayHello", Version="", Input=json.dumps(input)),
               event(EventType.OrchestratorCompleted, timestamp=t)]
    done = created + 3 * step
    if status == "Completed":
        result = json.dumps(f"Hello {input}!")
        row.update(Output=result, CompletedTime=done)
        history += [event(EventType.OrchestratorStarted, timestamp=done),
                    event(EventType.TaskCompleted, -1, done, TaskScheduledId=0, Result=result),
                    event(EventType.ExecutionCompleted, 1, done, OrchestrationStatus=OrchestrationStatus.Completed,
                          Result=result),
                    event(EventType.OrchestratorCompleted, timestamp=done)]
    elif status == "Failed":
        details = failure_details("ValueError", "boom")
        output = json.dumps("Orchestrator function 'HelloCities' failed: boom")
        row.update(Output=output, CompletedTime=done)
        history += [event(EventType.OrchestratorStarted, timestamp=done),
                    event(EventType.TaskFailed, -1, done, TaskScheduledId=0, Reason="boom", Details="trace",
                          FailureDetails=details),
                    event(EventType.ExecutionCompleted, 1, done, OrchestrationStatus=OrchestrationStatus.Failed,
                          Result=output, FailureDetails=details),
                    event(EventType.OrchestratorCompleted, timestamp=done)]
    elif status == "Terminated":
        row.update(Output=json.dumps("stopped by operator"), CompletedTime=done)
        history += [event(EventType.OrchestratorStarted, timestamp=done),
                    event(EventType.ExecutionTerminated, -1, done, Input="stopped by operator"),
                    event(EventType.ExecutionCompleted, 1, done, OrchestrationStatus=OrchestrationStatus.Terminated,
                          Result=json.dumps("stopped by operator")),
                    event(EventType.OrchestratorCompleted, timestamp=done)]
    await hub.instances.upsert(row)
    history = history if events is None else history[:events]
    if history:
        await hub.history.append(History(instance_id), history, execution_id)
    return row


async def gather_limited(coros, limit: int = 24):
    sem = asyncio.Semaphore(limit)

    async def one(c):
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))


def one_error_line(result: CliResult) -> str:
    """The error output of a failed run, checked to be one line with no traceback."""
    assert result.code != 0, str(result)
    # Commands that reach storage say first which hub they use (durable_mgmt.cli.context.Target.run).
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("Task hub '")]
    assert len(lines) == 1, str(result)
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("Error: "), str(result)
    return lines[0]
