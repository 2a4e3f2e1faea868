"""Helpers for the host tests: test apps, an in-process host, and `funcpy start` as a subprocess."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import AsyncIterator, Iterator, Mapping

import aiohttp

from funchost.azurite import free_port
from funchost.host import LocalHost

APPS = Path(__file__).resolve().parent
REPO = APPS.parent.parent


def unique(prefix: str) -> str:
    """A queue/container-safe unique name."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@contextlib.asynccontextmanager
async def running_host(app: str, connection_string: str, hub_name: str, *, settings: Mapping[str, str] | None = None,
                       delete_hub: bool = True, **kwargs) -> AsyncIterator[LocalHost]:
    """An in-process LocalHost on a free port serving tests/apps/<app>; its task hub is deleted after."""
    environ = {**os.environ, **(settings or {})}
    kwargs.setdefault("drain_timeout", 2.0)
    host = LocalHost(APPS / app, port=0, connection_string=connection_string, hub_name=hub_name, environ=environ,
                     **kwargs)
    await host.start()
    try:
        yield host
    finally:
        await host.stop()
        if delete_hub:  # after the stop: the engine must not find its queues gone under it
            from durable_mgmt.taskhub import TaskHub

            async with TaskHub(host.hub.account, host.hub.name) as hub:
                await hub.delete()


def funcpy_command(*args: str) -> list[str]:
    """`funcpy start ...` through the real entry point (funchost/__main__.py)."""
    return [sys.executable, "-m", "funchost", "start", *args]


# How long a test waits for `funcpy start` to exit after SIGTERM. The host drains in stages (triggers and
# HTTP, then running episodes, then activities: up to 10 s each, funchost/host.py LocalHost.stop), so on a
# loaded 2-core machine 30 s was once not enough; the tests assert a clean exit, not its speed.
STOP_SECONDS = 90


@contextlib.contextmanager
def funcpy_process(script_root: Path, env: Mapping[str, str], *args: str,
                   timeout: float = 30.0) -> Iterator[tuple[subprocess.Popen, int, Path]]:
    """`funcpy start` as a subprocess on a free port; yields (process, port, log file) once it answers."""
    port = free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"funcpy-{uuid.uuid4().hex[:8]}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(funcpy_command("--script-root", str(script_root), "--port", str(port), *args),
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}, cwd=REPO)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"funcpy start exited with {proc.returncode}:\n{log.read_text()}")
            if _answers(port):
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"funcpy start did not answer within {timeout} s:\n{log.read_text()}")
        yield proc, port, log
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _answers(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/host/ping", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


async def read_queue(connection_string: str, queue: str, *, at_least: int = 0, timeout: float = 10.0,
                     settle: float = 0.0) -> list[str]:
    """Every message body of ``queue`` (Base64 decoded), waiting until ``at_least`` are there."""
    import asyncio
    import base64

    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.queue.aio import QueueClient

    async with QueueClient.from_connection_string(connection_string, queue) as q:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                props = await q.get_queue_properties()
                count = props.approximate_message_count
            except ResourceNotFoundError:
                count = 0
            if count >= at_least or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.1)
        if settle:
            await asyncio.sleep(settle)
        try:
            messages = await q.peek_messages(max_messages=32)
        except ResourceNotFoundError:
            return []
        return [base64.b64decode(m.content).decode() for m in messages]


@contextlib.asynccontextmanager
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session
