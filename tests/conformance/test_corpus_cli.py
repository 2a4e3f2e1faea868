"""`funcpy durable ...` over a provider-written hub (v2 and v3): every seed operation, results checked
against the corpus (what DurableTask.AzureStorage wrote), what the commands write checked by validator.py.

host.json names the hub's partition count (6, as a real app with ``storageProvider.partitionCount: 6`` does),
so messages are routed as the provider routes them (GetControlQueueAsync).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import pytest

from durable_mgmt.taskhub import TaskHub

from ..test_cli_support import Cli
from . import provider as p
from .corpus import BIG_INPUT, PARTITION_COUNT, load_corpus
from .validator import check_queues, check_rows


@pytest.fixture(params=p.GENERATIONS)
async def loaded(request, account, connection_string, tmp_path):
    hub_name = f"Cli{request.param}{uuid.uuid4().hex[:8]}"
    corpus = await load_corpus(account, hub_name, request.param)
    root = tmp_path / "app"
    root.mkdir()
    (root / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"durableTask": {
        "hubName": hub_name, "storageProvider": {"partitionCount": PARTITION_COUNT}}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AzureWebJobs")}
    env.update({"AzureWebJobsStorage": connection_string, "COLUMNS": "200"})
    yield corpus, Cli(root, env)
    async with TaskHub(account, hub_name, PARTITION_COUNT) as hub:
        await hub.delete()


async def test_every_cli_command_over_a_provider_hub(loaded, account):
    corpus, cli = loaded
    hub = corpus.hub
    # Read: status (escaped id, large values by URL, the large start), list, history. Independent: run together.
    odd, big, listed, failed, history = await asyncio.gather(
        cli.json("get-runtime-status", "--id", "corpus^odd/id", "--show-input", "--show-output", "true"),
        cli.json("get-runtime-status", "--id", "corpus-bigstart", "--show-input"),
        cli.json("get-instances", "--all"),
        cli.json("get-instances", "--runtime-status", "failed"),
        cli.json("get-history", "--id", "corpus-completed"))
    assert odd["runtimeStatus"] == "Completed" and odd["input"] == json.loads(BIG_INPUT)
    assert odd["output"] == corpus.expected["corpus^odd/id"]["output"]
    assert big["runtimeStatus"] == "Pending" and big["input"] == json.loads(BIG_INPUT)
    assert sorted(s["instanceId"] for s in listed["instances"]) == sorted(corpus.instances)
    assert [s["instanceId"] for s in failed["instances"]] == ["corpus-failed"]
    assert [e["EventType"] for e in history] == [r["EventType"] for r in corpus.history["corpus-completed"][:-1]]

    # Steer: what the commands send must be what a worker reads, on the queue it reads.
    *_, start = await asyncio.gather(
        cli.json("raise-event", "--id", "corpus-running", "--event-name", "Approval", "--event-data", "true"),
        cli.json("suspend", "--id", "corpus-running", "--reason", "hold"),
        cli.json("resume", "--id", "corpus-running", "--reason", "go"),
        cli.json("terminate", "--id", "corpus-running", "--reason", "stop", "--timeout", "0"),
        cli.json("rewind", "--id", "corpus-failed", "--reason", "fixed"),
        cli.json("start-new", "--function-name", "HelloSequence", "--input", "[1,2]"))
    datas = await check_queues(account, hub, PARTITION_COUNT, expect=len(corpus.messages) + 6)
    types = sorted(d["TaskMessage"]["Event"]["$type"].rsplit(".", 1)[1] for d in datas
                   if d["ActivityId"] not in {m[2]["ActivityId"] for m in corpus.messages})
    assert types == ["EventRaisedEvent", "ExecutionResumedEvent", "ExecutionStartedEvent", "ExecutionSuspendedEvent",
                     "ExecutionTerminatedEvent", "GenericEvent"]
    await check_rows(account, hub, "corpus-failed")
    await check_rows(account, hub, start["instanceId"], with_history=False)

    # Delete: one instance (blobs under the raw id and the escaped key), by filter, the whole hub.
    one = await cli.json("purge-instance", "--id", "corpus^odd/id")
    assert (one["instancesDeleted"], one["blobsDeleted"]) == (1, 3)
    some = await cli.json("purge-history", "--yes", "--runtime-status", "completed", "--runtime-status", "terminated")
    assert some["instancesDeleted"] == 2  # corpus-completed, corpus-terminated
    gone = await cli.json("delete-task-hub", input="y\n")
    assert gone["deleted"] is True
    assert (await cli("get-instances")).code != 0
