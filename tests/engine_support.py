"""Helpers shared by the engine tests: the test app, an engine on a fresh hub, waiting."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from durable_mgmt.models import RuntimeStatus
from durable_mgmt.taskhub import TaskHubClient

ENGINE_APP = Path(__file__).parent / "apps" / "engine_app"


async def wait_for(client: TaskHubClient, instance_id: str, *statuses: RuntimeStatus, timeout: float = 20.0,
                   show_history: bool = False):
    """Poll until the instance reaches one of ``statuses`` (default: any terminal one)."""
    wanted = set(statuses) or {RuntimeStatus.COMPLETED, RuntimeStatus.FAILED, RuntimeStatus.TERMINATED}
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = await client.get_status(instance_id, show_history=show_history, show_history_output=True)
            if last.runtime_status in wanted:
                return last
        except Exception:  # not created yet
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"{instance_id} did not reach {wanted} in {timeout}s; last status: {last}")
