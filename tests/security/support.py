"""The hostile-input corpus's tools: the real host on free ports, raw HTTP, and storage snapshots.

Each case sends one request as an attacker would (raw paths, forged headers, odd bytes), asserts the
exact refusal (status and the key words of the message), and compares a snapshot of the storage
account taken before and after: no queue message, Instances row, history row, blob, or new task hub.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Mapping

import aiohttp
from yarl import URL

from funchost.host import LocalHost

REPO = Path(__file__).resolve().parent.parent.parent
APPS = Path(__file__).resolve().parent / "apps"
WEBHOOKS = "/runtime/webhooks/durabletask"
APP_SETTINGS = {"APPROVAL_RECORD_TABLE": "ApprovalRecords", "PURGE_OLDER_THAN_DAYS": "30",
                "PURGE_RUNTIME_STATUSES": "Completed"}


@dataclass
class Door:
    """One way in: a running host, and what a caller that passes its key checks sends (nothing if anonymous)."""

    name: str
    host: LocalHost
    key: str | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.host.port}"

    def url(self, path: str, query: str = "", *, keyed: bool = True) -> URL:
        """An already-encoded URL (no normalisation: '..' and '%2E' reach the host as written)."""
        q = query
        if keyed and self.key:
            q = f"{q}&code={self.key}" if q else f"code={self.key}"
        return URL(f"{self.origin}{path}" + (f"?{q}" if q else ""), encoded=True)


@contextlib.asynccontextmanager
async def serving(app_root: Path, connection_string: str, hub_name: str, *,
                  settings: Mapping[str, str] | None = None, **kwargs: Any) -> AsyncIterator[LocalHost]:
    """A LocalHost on free ports serving ``app_root``; its task hub is deleted after."""
    environ = {**os.environ, **APP_SETTINGS, **(settings or {})}
    kwargs.setdefault("drain_timeout", 2.0)
    kwargs.setdefault("run_orchestrations", False)  # messages stay where a refused start would have put them
    host = LocalHost(app_root, port=0, connection_string=connection_string, hub_name=hub_name, environ=environ,
                     **kwargs)
    await host.start()
    try:
        yield host
    finally:
        await host.stop()
        from durable_mgmt.taskhub import TaskHub

        async with TaskHub(host.hub.account, host.hub.name) as hub:
            await hub.delete()


@dataclass
class Answer:
    status: int
    text: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        import json

        return json.loads(self.text)


async def send(method: str, url: URL | str, *, headers: Mapping[str, Any] | None = None, data: Any = None,
               timeout: float = 60) -> Answer:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout),
                                     skip_auto_headers=("Content-Type",)) as s:
        async with s.request(method, url, headers=headers, data=data, allow_redirects=False) as r:
            return Answer(r.status, await r.text(errors="replace"), dict(r.headers))


async def snapshot(host: LocalHost) -> dict[str, Any]:
    """What the storage account holds that a request could have added: rows, messages, blobs, hubs."""
    hub = host.hub
    tables = sorted([t.name async for t in hub.table_service.list_tables()])
    instances = sorted([e["PartitionKey"] async for e in hub.instances.client.list_entities(
        select=["PartitionKey", "RowKey", "ExecutionId"])])
    history = len([e async for e in hub.history.client.list_entities(select=["PartitionKey", "RowKey"])])
    queues = {}
    for name in [*hub.names.control_queues, hub.names.workitem_queue]:
        props = await hub.queue(name).get_queue_properties()
        queues[name] = props.approximate_message_count
    blobs = await _blobs(hub)
    return {"tables": tables, "instances": instances, "history": history, "queues": queues, "blobs": blobs}


async def _blobs(hub) -> list[str]:
    from azure.core.exceptions import ResourceNotFoundError

    container = hub.container(hub.names.large_messages_container)
    try:
        return sorted([b.name async for b in container.list_blobs()])
    except ResourceNotFoundError:
        return []


def refused(answer: Answer, status: int, *words: str) -> None:
    """``answer`` is the refusal expected: this status, and a message naming each of ``words``."""
    assert answer.status == status, f"expected {status}, got {answer.status}: {answer.text[:500]}"
    text = answer.text
    try:  # the message as a person reads it (JSON escapes undone)
        body = answer.json()
        text = " ".join(str(v) for v in body.values()) if isinstance(body, dict) else text
    except ValueError:
        pass
    for word in words:
        assert word.lower() in text.lower(), f"{word!r} not in the message: {text[:500]}"
