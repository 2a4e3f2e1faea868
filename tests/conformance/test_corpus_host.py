"""`funcpy start` takes over a hub the real provider wrote (v2: Base64 messages and blob leases; v3: UTF-8
messages and the Partitions table) and finishes what it left: a client's pending start, a start too large for
the queue (wrapper + blob), a work item an orchestration scheduled, an event another orchestration raised.
What the host writes while doing so is checked by validator.py (History rows, Instances rows).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid

import pytest

from durable_mgmt.models import RuntimeStatus
from durable_mgmt.taskhub import TaskHub, TaskHubClient
from tests.apps.support import APPS, funcpy_process

from . import provider as p
from .corpus import PARTITION_COUNT, load_corpus
from .validator import check_rows

HELLO = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


@pytest.mark.parametrize("generation", p.GENERATIONS)
async def test_funcpy_start_finishes_what_the_provider_left(generation, account, connection_string, tmp_path):
    hub_name = f"Host{generation}{uuid.uuid4().hex[:8]}"
    corpus = await load_corpus(account, hub_name, generation)
    root = tmp_path / "app"
    root.mkdir()
    shutil.copy(APPS / "engine_app" / "function_app.py", root / "function_app.py")
    (root / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"durableTask": {
        "hubName": hub_name, "storageProvider": {"partitionCount": PARTITION_COUNT}}}}))
    (tmp_path / "state").mkdir()  # the test app's activities record their calls there
    env = {"AzureWebJobsStorage": connection_string, "ENGINE_TEST_STATE": str(tmp_path / "state")}
    want = {"corpus-pending": HELLO, "corpus-bigstart": HELLO, "corpus-activity": HELLO,
            "corpus-running": {"approval": True}}
    async with TaskHub(account, hub_name, PARTITION_COUNT) as hub:
        client = TaskHubClient(hub)
        try:
            with funcpy_process(root, env, timeout=60) as (_, _, log):
                deadline = time.monotonic() + 90
                while True:
                    statuses = {iid: await client.get_status(iid) for iid in want}
                    if all(s.runtime_status == RuntimeStatus.COMPLETED for s in statuses.values()):
                        break
                    assert time.monotonic() < deadline, (
                        f"not finished: {[(i, s.runtime_status) for i, s in statuses.items()]}\n{log.read_text()}")
                    await asyncio.sleep(0.5)
            for iid, output in want.items():
                assert statuses[iid].output == output, iid
                await check_rows(account, hub_name, iid)  # what our engine wrote, as the provider reads it
            assert statuses["corpus-bigstart"].input == corpus.expected["corpus-bigstart"]["input"]
            # Finished instances the provider wrote stay as they were.
            assert (await client.get_status("corpus-completed")).output == "Hello Tokyo!"
        finally:
            await hub.delete()
