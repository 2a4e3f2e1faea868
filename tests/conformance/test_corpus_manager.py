"""Every management operation of the seed over a provider-written hub (v2 and v3), through InstanceManager.

The hub is the conformance corpus (``corpus.py``: what DurableTask.AzureStorage writes, from its source).
Reads must return what the provider's own reader returns (AzureTableTrackingStore.ConvertFromAsync);
everything our operations write is read back and checked by ``validator.py`` (the provider's reading
rules), in the same test.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest

from durable_mgmt.errors import InstanceNotRunning, InvalidInput
from durable_mgmt.manager import InstanceManager
from durable_mgmt.models import InstanceQuery, RuntimeStatus
from durable_mgmt.taskhub import TaskHub, TaskHubClient
from durable_mgmt.transports import StorageTransport

from . import provider as p
from .corpus import BIG_INPUT, PARTITION_COUNT, load_corpus
from .validator import check_queues, check_rows

ALL = ["corpus-completed", "corpus-failed", "corpus-running", "corpus-activity", "corpus-pending",
       "corpus-bigstart", "corpus^odd/id", "corpus-terminated"]


@pytest.fixture(params=p.GENERATIONS)
async def corpus(request, account):
    hub_name = f"Corp{request.param}{uuid.uuid4().hex[:8]}"
    loaded = await load_corpus(account, hub_name, request.param)
    async with TaskHub(account, hub_name, PARTITION_COUNT) as hub:
        yield loaded, hub, InstanceManager(StorageTransport(hub))
        await hub.delete()


async def blob_names(hub) -> list[str]:
    container = hub.container(hub.names.large_messages_container)
    return sorted([b.name async for b in container.list_blobs()])


async def test_status_of_every_provider_instance(corpus):
    c, hub, mgr = corpus
    for iid, want in c.expected.items():
        got = await mgr.status(iid)
        assert got.runtime_status.value == want["status"], iid
        assert got.name == want["name"], iid
        for key in ("input", "output", "custom_status"):
            if key in want:
                assert getattr(got, key) == want[key], f"{iid}: {key}"
        assert got.execution_id == c.instances[iid]["ExecutionId"]
    # The large start input: the Instances row holds the URL of the ExecutionStarted message blob, and the
    # reader returns that message's start-event Input (AzureTableTrackingStore.ConvertFromAsync).
    assert c.instances["corpus-bigstart"]["Input"].endswith("ExecutionStarted.json.gz")
    assert (await mgr.status("corpus-bigstart")).input == json.loads(BIG_INPUT)


async def test_list_and_query(corpus):
    c, hub, mgr = corpus
    page = await mgr.page(InstanceQuery(page_size=100))
    assert sorted(s.instance_id for s in page.items) == sorted(ALL)
    done = await mgr.page(InstanceQuery(statuses=frozenset({RuntimeStatus.COMPLETED})))
    assert sorted(s.instance_id for s in done.items) == ["corpus-completed", "corpus^odd/id"]
    named = await mgr.page(InstanceQuery(name="WaitForApproval"))
    assert sorted(s.instance_id for s in named.items) == ["corpus-running", "corpus-terminated"]
    odd = await mgr.page(InstanceQuery(instance_id_prefix="corpus^"))
    assert [s.instance_id for s in odd.items] == ["corpus^odd/id"]


async def test_history_with_large_properties(corpus):
    c, hub, mgr = corpus
    status = await mgr.status("corpus-completed", show_history=True, show_history_output=True)
    kinds = [e["EventType"] for e in status.history]
    assert kinds[0] == "ExecutionStarted" and kinds[-1] == "ExecutionCompleted"
    events = await TaskHubClient(hub).get_history("corpus^odd/id")
    started = next(e for e in events if e.type.name == "ExecutionStarted")
    done = next(e for e in events if e.type.name == "ExecutionCompleted")
    assert started.input == BIG_INPUT  # the InputBlobName blob, under the escaped key
    assert json.loads(done.result) == c.expected["corpus^odd/id"]["output"]


async def test_raise_suspend_resume_terminate_write_what_a_worker_reads(corpus):
    c, hub, mgr = corpus
    await mgr.raise_event("corpus-running", "Approval", {"ok": True})
    await mgr.suspend("corpus-running", "hold")
    await mgr.resume("corpus-running", "go")
    await mgr.terminate("corpus-running", "operator")
    # Every message on the hub: the corpus's own (provider-written) and ours, one set of rules.
    datas = await check_queues(hub.account, hub.name, PARTITION_COUNT, expect=len(c.messages) + 4)
    ours = [d for d in datas if d["TaskMessage"]["OrchestrationInstance"]["InstanceId"] == "corpus-running"
            and d["ActivityId"] not in {m[2]["ActivityId"] for m in c.messages}]
    assert [d["TaskMessage"]["Event"]["$type"].rsplit(".", 1)[1] for d in sorted(ours, key=lambda d: d["SequenceNumber"])] \
        == ["EventRaisedEvent", "ExecutionSuspendedEvent", "ExecutionResumedEvent", "ExecutionTerminatedEvent"]
    # Client messages: MessageData.Sender = EmptySourceInstance (OrchestrationSession.IsOutOfOrderMessage reads it).
    assert all(d["Sender"] == {"InstanceId": "", "ExecutionId": ""} for d in ours)
    with pytest.raises(InstanceNotRunning):
        await mgr.raise_event("corpus-terminated", "Approval", True)


async def test_rewind_a_provider_failed_instance(corpus):
    c, hub, mgr = corpus
    await mgr.rewind("corpus-failed", "fixed")
    assert (await mgr.status("corpus-failed")).runtime_status == RuntimeStatus.PENDING
    datas = await check_queues(hub.account, hub.name, PARTITION_COUNT, expect=len(c.messages) + 1)
    [rewind] = [d for d in datas if d["TaskMessage"]["OrchestrationInstance"]["InstanceId"] == "corpus-failed"]
    # AzureStorageOrchestrationService.RewindTaskOrchestrationAsync: new GenericEvent(-1, reason).
    assert rewind["TaskMessage"]["Event"]["$type"] == "DurableTask.Core.History.GenericEvent"
    assert rewind["TaskMessage"]["Event"]["Data"] == "fixed"
    await check_rows(hub.account, hub.name, "corpus-failed")
    rows = await hub.history.rows("corpus-failed")
    assert [r["EventType"] for r in rows if r.get("Reason", "").startswith("Rewound: ")] == \
        ["GenericEvent", "GenericEvent", "GenericEvent"]


async def test_restart_reuses_the_real_input_of_a_large_start(corpus):
    c, hub, mgr = corpus
    new_id = await mgr.restart("corpus-bigstart")
    assert (await mgr.status(new_id)).input == json.loads(BIG_INPUT)
    row = await hub.instances.client.get_entity(new_id, "")
    # Our start stored the message in a blob and the row names it, as CreateTaskOrchestrationAsync does.
    assert row["Input"].endswith("-ExecutionStarted.json.gz") and new_id in row["Input"]
    await check_rows(hub.account, hub.name, new_id, with_history=False)
    await check_queues(hub.account, hub.name, PARTITION_COUNT, expect=len(c.messages) + 1)
    # The odd id's input is the URL of a history blob (UpdateStateAsync): restarted under a new id (the
    # extension refuses '/' in new ids), the new instance gets the real input.
    again = await mgr.restart("corpus^odd/id")
    assert (await mgr.status(again)).input == json.loads(BIG_INPUT)
    # Same id after it finished: a new generation, Tags written as TagsSerializer does.
    same = await mgr.restart("corpus-completed", new_instance_id=False)
    status = await mgr.status(same)
    assert same == "corpus-completed" and status.runtime_status == RuntimeStatus.PENDING and status.generation == 1
    await check_rows(hub.account, hub.name, same, with_history=False)


async def add_colliding_instance(hub, iid: str) -> str:
    """A Completed instance whose RAW id is another instance's escaped key, with a large start message: its
    message blob lies in the same folder as the other's history blobs (MessageManager.GetNewLargeMessageBlobName
    names by raw id, AzureTableTrackingStore.GetBlobName by escaped key). Written with the plain SDK."""
    blob = p.message_blob_name(iid, "00000000-0000-4000-8000-0000000000ff", "ExecutionStarted")
    container = hub.container(hub.names.large_messages_container)
    await container.upload_blob(blob, p.gzip_text("{}"), overwrite=True)
    await hub.instances.client.create_entity({
        "PartitionKey": p.escape_partition_key(iid), "RowKey": "", "Name": "HelloSequence", "Version": "",
        "RuntimeStatus": "Completed", "ExecutionId": "e00000000000000000000000000000ff", "Input": "null",
        "Output": "null", "CustomStatus": "null", "TaskHubName": hub.name, "Generation": 0,
        "CreatedTime": datetime.now(timezone.utc), "LastUpdatedTime": datetime.now(timezone.utc)})
    return blob


async def test_purge_one_leaves_no_blob_under_either_prefix(corpus):
    c, hub, mgr = corpus
    # "corpus^^odd^0id" is the escaped key of "corpus^odd/id" and a valid id of its own: purging it must
    # delete its own message blob and none of the other's history blobs in the same folder.
    other = await add_colliding_instance(hub, "corpus^^odd^0id")
    before = await blob_names(hub)
    result = await mgr.purge_instance("corpus^^odd^0id")
    assert (result.instances_deleted, result.blobs_deleted) == (1, 1)
    assert await blob_names(hub) == sorted(set(before) - {other})
    assert (await mgr.status("corpus^odd/id")).input == json.loads(BIG_INPUT)
    before = await blob_names(hub)
    assert any(n.startswith("corpus^odd/id/message-") for n in before)          # raw id (message blob)
    assert any(n.startswith("corpus^^odd^0id/history-") for n in before)        # escaped key (history blobs)
    result = await mgr.purge_instance("corpus^odd/id")
    assert (result.instances_deleted, result.rows_deleted, result.blobs_deleted) == (1, 8, 3)
    after = await blob_names(hub)
    assert not [n for n in after if n.startswith(("corpus^odd/id/", "corpus^^odd^0id/"))]
    assert any(n.startswith("corpus-bigstart/") for n in after)  # others untouched
    assert not await mgr.exists("corpus^odd/id")


async def test_purge_by_filter(corpus):
    c, hub, mgr = corpus
    result = await mgr.purge(statuses=["Completed", "Failed", "Terminated"])
    assert result.instances_deleted == 4 and result.blobs_deleted == 3
    left = await mgr.page(InstanceQuery())
    assert sorted(s.instance_id for s in left.items) == sorted(
        ["corpus-running", "corpus-activity", "corpus-pending", "corpus-bigstart"])
    assert [n.split("/")[0] for n in await blob_names(hub)] == ["corpus-bigstart"]


async def test_delete_hub(corpus):
    c, hub, mgr = corpus
    await TaskHubClient(hub).delete_hub()
    tables = [t.name async for t in hub.table_service.list_tables()]
    assert f"{hub.name}Instances" not in tables and f"{hub.name}History" not in tables
    queues = [q.name async for q in hub._queues.list_queues(name_starts_with=hub.name.lower())]
    assert queues == [], queues
    containers = [x.name async for x in hub._blobs.list_containers(name_starts_with=hub.name.lower())]
    assert p.large_messages_container(hub.name) not in containers


async def test_new_reads_and_query_purge_over_the_provider_hub(corpus):
    # history, get_entity, count_by_status, find_page and purge(query=, progress=) on what the provider wrote.
    from durable_mgmt.query import Query

    c, hub, mgr = corpus
    for iid in c.expected:
        events = await mgr.history(iid)
        assert events or c.expected[iid]["status"] == "Pending", iid  # pending: no history rows yet
    assert (await mgr.get_entity("counter", "nope")).exists is False
    counts = await mgr.count_by_status()
    assert sum(counts.values()) == len(c.expected)
    for status, n in counts.items():
        assert n == sum(1 for w in c.expected.values() if w["status"] == status.value), status
    got, token = [], None
    while True:
        page = await mgr.find_page(None, page_size=3, after=token)
        got += [s.instance_id for s in page]
        token = page.continuation_token
        if token is None:
            break
    assert sorted(got) == sorted(c.expected)
    seen = []
    with pytest.raises(InvalidInput):  # a filter Query is not purge's InstanceQuery: refused, not AttributeError
        await mgr.purge(query=Query.parse("status = Failed"))
    result = await mgr.purge(query=InstanceQuery(statuses=frozenset({RuntimeStatus.FAILED, RuntimeStatus.COMPLETED}),
                                                 instance_id_prefix="corpus-"), progress=lambda *a: seen.append(a))
    terminal = [i for i, w in c.expected.items() if i.startswith("corpus-") and w["status"] in ("Completed", "Failed")]
    assert result.instances_deleted == len(terminal)
    for iid in c.expected:
        if iid not in terminal:
            await check_rows(hub.account, hub.name, iid, with_history=c.expected[iid]["status"] != "Pending")
        else:
            assert not await mgr.exists(iid)
    assert seen  # progress was reported
