"""``funcpy monitor``: the standalone dashboard as a command, with the same hub options as ``funcpy durable``."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp

FUNCPY = Path(sys.executable).parent / "funcpy"


async def _start(*args: str, env: dict[str, str]) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(str(FUNCPY), "monitor", *args, env=env, cwd="/",
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    return proc, line


async def test_monitor_prints_its_url_serves_read_only_and_stops_on_ctrl_c(dash_hub, connection_string):
    env = {**os.environ, "MY_STORAGE": connection_string}
    proc, line = await _start("--connection-string-setting", "MY_STORAGE", "--task-hub-name",
                              dash_hub.host.hub_name, "--port", "0", "--read-only", env=env)
    try:
        assert f"task hub '{dash_hub.host.hub_name}'" in line and "read-only" in line, line
        url = re.search(r"(http://localhost:\d+/)", line)[1]
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "?range=all&prefix=hello-") as r:
                page = await r.text()
                assert r.status == 200 and "hello-4" in page and 'id="read-only"' in page
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_monitor_without_a_connection_says_which_setting_is_missing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "AzureWebJobsStorage"}
    proc = await asyncio.create_subprocess_exec(str(FUNCPY), "monitor", "--script-root", str(tmp_path),
                                                "--connection-string-setting", "NOPE_STORAGE", "--port", "0",
                                                env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert "No connection string in app setting 'NOPE_STORAGE'" in err.decode()
