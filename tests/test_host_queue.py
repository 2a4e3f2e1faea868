"""Queue triggers: Base64 messages, retries then the poison queue, exactly-once success, outputs."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest
from azure.data.tables.aio import TableClient
from azure.storage.blob.aio import ContainerClient
from azure.storage.queue.aio import QueueClient

from tests.apps.support import read_queue, running_host, unique


@pytest.fixture
def names():
    return {"InQueue": unique("in"), "OutQueue": unique("out"), "StoreQueue": unique("store"),
            "StoreTable": "T" + unique("t").replace("-", ""), "StoreContainer": unique("docs")}


@pytest.fixture
async def host(connection_string, hub_name, names):
    async with running_host("queue_app", connection_string, hub_name, settings=names) as h:
        yield h


async def send(connection_string: str, queue: str, text: str, *, encode: bool = True) -> None:
    async with QueueClient.from_connection_string(connection_string, queue) as q:
        await q.send_message(base64.b64encode(text.encode()).decode() if encode else text)


async def raw_messages(connection_string: str, queue: str, *, at_least: int, timeout: float = 20.0) -> list[str]:
    async with QueueClient.from_connection_string(connection_string, queue) as q:
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = [m.content for m in await q.peek_messages(max_messages=32)]
            except Exception:
                found = []
            if len(found) >= at_least or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.1)


async def test_failing_message_goes_to_poison_intact_and_good_one_runs_once(host, connection_string, names):
    await send(connection_string, names["InQueue"], "bad")
    await send(connection_string, names["InQueue"], "good")
    poison = await raw_messages(connection_string, names["InQueue"] + "-poison", at_least=1)
    assert poison == [base64.b64encode(b"bad").decode()]  # the body exactly as it was sent
    await asyncio.sleep(0.5)  # room for any duplicate run to show up
    done = [json.loads(m) for m in await read_queue(connection_string, names["OutQueue"], at_least=1)]
    assert done == [{"body": "good", "id": True, "dequeue_count": 1, "inserted": True, "pop_receipt": True}]
    assert await raw_messages(connection_string, names["InQueue"], at_least=0, timeout=0) == []


async def test_message_that_is_not_base64_is_poisoned_at_once(host, connection_string, names, caplog):
    await send(connection_string, names["InQueue"], "not base64 !", encode=False)
    poison = await raw_messages(connection_string, names["InQueue"] + "-poison", at_least=1, timeout=10)
    assert poison == ["not base64 !"]
    assert "messageEncoding" in caplog.text
    assert await read_queue(connection_string, names["OutQueue"]) == []


async def test_table_and_blob_outputs(host, connection_string, names):
    await send(connection_string, names["StoreQueue"], json.dumps({"name": "o-1", "quantity": 3}))
    async with TableClient.from_connection_string(connection_string, names["StoreTable"]) as table:
        deadline = time.monotonic() + 10
        while True:
            try:
                entity = await table.get_entity("orders", "o-1")
                break
            except Exception:
                assert time.monotonic() < deadline, "the table output was not written"
                await asyncio.sleep(0.1)
    assert entity["Quantity"] == 3
    async with ContainerClient.from_connection_string(connection_string, names["StoreContainer"]) as container:
        data = await (await container.download_blob("o-1.json")).readall()
    assert json.loads(data) == {"name": "o-1", "quantity": 3}
