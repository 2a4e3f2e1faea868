"""Class 11: binding expressions filled from request data never steer an output elsewhere.

A route or query value goes into a blob path, a queue name: values that would add a folder, climb out
('..'), or make an invalid name are refused with a 400 naming the value and the rule, before the
function runs (it never counts a run) and with nothing written (no blob, no queue).
"""

from __future__ import annotations

import inspect
import uuid

import pytest
from azure.storage.blob.aio import ContainerClient

from .support import APPS, Door, refused, send, serving


@pytest.fixture(scope="module")
async def bindings(connection_string):
    container = f"secnotes-{uuid.uuid4().hex[:10]}"
    async with serving(APPS / "bindings_app", connection_string, f"SecB{uuid.uuid4().hex[:10]}",
                       settings={"NotesContainer": container}) as host:
        yield Door("anonymous", host), container


def _runs(host) -> list[str]:
    return inspect.unwrap(host.index.find("save_note").user_function).__globals__["RUNS"]


async def _blobs(connection_string: str, container: str) -> list[str]:
    from azure.core.exceptions import ResourceNotFoundError

    async with ContainerClient.from_connection_string(connection_string, container) as c:
        try:
            return sorted([b.name async for b in c.list_blobs()])
        except ResourceNotFoundError:
            return []


async def _queues(connection_string: str) -> list[str]:
    from azure.storage.queue.aio import QueueServiceClient

    async with QueueServiceClient.from_connection_string(connection_string) as q:
        return sorted([x.name async for x in q.list_queues(name_starts_with="jobs-")])


CASES = [  # (case, path, query, words)
    ("route ..", "/api/notes/..", "", ["'..'", "{name}"]),
    ("route %2E%2E", "/api/notes/%2E%2E", "", ["'..'"]),
    ("route .", "/api/notes/.", "", ["'.'"]),
    ("route backslash", "/api/notes/a%5C..%5Cb", "", ["/ \\ ? # %"]),
    ("route NUL", "/api/notes/a%00b", "", ["control characters"]),
    ("route percent", "/api/notes/a%2525b", "", ["a%25b"]),
    ("route too long", "/api/notes/" + "n" * 300, "", ["1-256 characters"]),
    ("query folder climbs", "/api/files", "folder=..&file=x", ["{folder}"]),
    ("query folder with slash", "/api/files", "folder=other%2Fplace&file=x", ["'other/place'"]),
    ("query file with slash", "/api/files", "folder=f&file=..%2F..%2Fsecrets", ["{file}"]),
    ("query hash", "/api/files", "folder=f&file=a%23b", ["{file}"]),
    ("query missing value", "/api/files", "file=x", ["{folder}", "has no value"]),
    ("queue upper-case", "/api/queue/UPPER", "", ["queue name", "lower-case"]),
    ("queue double dash", "/api/queue/a--b", "", ["queue name"]),
    ("queue ..", "/api/queue/..", "", ["'..'"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
async def test_request_data_cannot_steer_outputs(bindings, connection_string, case):
    door, container = bindings
    _, path, query, words = case
    runs = list(_runs(door.host))
    blobs, queues = await _blobs(connection_string, container), await _queues(connection_string)
    answer = await send("POST", door.url(path, query), data="content")
    refused(answer, 400, *words)
    assert container not in answer.text  # the setting's value is never shown: the template is
    assert _runs(door.host) == runs, "the function ran"
    assert await _blobs(connection_string, container) == blobs
    assert await _queues(connection_string) == queues


async def test_plain_values_still_work(bindings, connection_string):
    door, container = bindings
    assert (await send("POST", door.url("/api/notes/meeting-2024.05"), data="hello")).status == 200
    assert (await send("POST", door.url("/api/files", "folder=f1&file=a.txt"), data="x")).status == 200
    assert "notes/meeting-2024.05.txt" in await _blobs(connection_string, container)
    assert "f1/a.txt" in await _blobs(connection_string, container)
