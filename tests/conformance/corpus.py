"""The conformance corpus: a task hub exactly as the real provider leaves it, for a v2 and a v3 hub.

Built only from ``provider.py`` (the provider's source, cited per builder) and
written with the plain Azure SDK clients, never through ``durable_mgmt``, so
our readers are tested against what DurableTask.AzureStorage writes, not
against what our writers write. ``load_corpus(account, hub_name, generation)``
fills Azurite; ``CORPUS`` (per generation, via ``corpus_for``) says what is
there, for the tests to check against.

The instances (orchestrator names are those of tests/apps/engine_app, so a
``funcpy start`` on the hub can run them):

========================  =========================  ==========================================================
id                        status                     shows
========================  =========================  ==========================================================
corpus-completed          Completed                  full history + sentinel, CustomStatus, Tags
corpus-failed             Failed                     TaskFailed history: rewind
corpus-running            Running                    waiting for "Approval"; an EventRaised from another
                                                     orchestration waits in its control queue
corpus-activity           Running                    a TaskScheduled work item from the orchestration waits
                                                     in the work-item queue
corpus-pending            Pending                    client start: Instances row + ExecutionStarted message
corpus-bigstart           Pending                    start too large for the queue: wrapper message, message
                                                     blob, Input = the blob's URL (…ExecutionStarted.json.gz)
corpus^odd/id             Completed                  escaped key; large Input/Output: ``…BlobName`` history
                                                     columns + blobs under the escaped key, message blob under
                                                     the raw id
corpus-terminated         Terminated                 ExecutionTerminated history
========================  =========================  ==========================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from azure.core.exceptions import ResourceExistsError

from . import provider as p

PARTITION_COUNT = 6  # not the default 4: routing by the wrong count shows
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
S = timedelta(seconds=1)
BIG_INPUT = json.dumps("x" * 50_000)  # > 45 KB as a message, > 60 KB as UTF-16 in a table


@dataclass
class Corpus:
    """What ``load_corpus`` writes for one generation."""

    generation: str
    hub: str
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)      # id -> Instances row
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # id -> History rows (sentinel last)
    messages: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (queue, body, MessageData)
    blobs: dict[str, str] = field(default_factory=dict)                     # blob name -> text (gzipped on load)
    # What a reader must return for each instance (the provider's OrchestrationState, ConvertFromAsync).
    expected: dict[str, dict[str, Any]] = field(default_factory=dict)

    def container_url(self, account) -> str:
        return f"{account.blob_endpoint.rstrip('/')}/{p.large_messages_container(self.hub)}"


def _activity(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012x}"


class _Builder:
    def __init__(self, account, hub: str, generation: str):
        self.c = Corpus(generation, hub)
        self.account = account
        self.seq = 0

    @property
    def g(self) -> str:
        return self.c.generation

    def next_seq(self) -> int:
        self.seq += 1  # TaskHubQueue.messageSequenceNumber: Interlocked.Increment, per process
        return self.seq

    def send(self, queue: str, data: dict[str, Any]) -> None:
        self.c.messages.append((queue, p.queue_body(self.g, data), data))

    def control(self, instance_id: str) -> str:
        return p.control_queue(self.c.hub, instance_id, PARTITION_COUNT)

    def instance_row(self, instance_id: str, name: str, status: str, *, input: str | None, created: datetime,
                     execution_id: str, output: str | None = None, custom_status: str = "null",
                     tags: dict[str, str] | None = None, completed: datetime | None = None) -> dict[str, Any]:
        """AzureTableTrackingStore.UpdateStateAsync's instanceEntity after the episodes ran: CustomStatus is
        ``Status ?? "null"``, Tags from TagsSerializer, Input/Output inline or the URL of the history blob."""
        row = {"PartitionKey": p.escape_partition_key(instance_id), "RowKey": "", "CustomStatus": custom_status,
               "ExecutionId": execution_id, "LastUpdatedTime": completed or created + 2 * S,
               "TaskHubName": self.c.hub, "Name": name, "Version": "", "CreatedTime": created,
               "RuntimeStatus": status, "Tags": p.tags_column(tags), "Generation": 0, "Input": input}
        if output is not None:
            row["Output"] = output
        if completed is not None:
            row["CompletedTime"] = completed
        return row

    def pending_row(self, instance_id: str, name: str, input: str | None, execution_id: str,
                    created: datetime) -> dict[str, Any]:
        """AzureTableTrackingStore.SetNewExecutionAsync (Pending, before any worker ran it)."""
        return {"PartitionKey": p.escape_partition_key(instance_id), "RowKey": "", "Input": input,
                "CreatedTime": created, "Name": name, "Version": "", "RuntimeStatus": "Pending",
                "LastUpdatedTime": created, "TaskHubName": self.c.hub, "ExecutionId": execution_id,
                "Generation": 0, "Tags": p.tags_column(None)}

    def add(self, instance_id: str, row: dict[str, Any], events: list[tuple], execution_id: str,
            expected: dict[str, Any]) -> list[dict[str, Any]]:
        pk = p.escape_partition_key(instance_id)
        rows = [p.history_row(pk, i, execution_id, etype, ts, eid, **members)
                for i, (etype, ts, eid, members) in enumerate(events)]
        if rows:
            rows.append(p.sentinel_row(pk, execution_id, rows[-1]["_Timestamp"]))
        self.c.instances[instance_id] = {k: v for k, v in row.items() if v is not None}
        self.c.history[instance_id] = rows
        self.c.expected[instance_id] = expected
        return rows


def _started(instance_id: str, execution_id: str, name: str, input: str | None, tags=None) -> dict[str, Any]:
    # The ExecutionStarted history row's own members (ExecutionStartedEvent.cs); OrchestrationInstance as JSON.
    return {"OrchestrationInstance": {"InstanceId": instance_id, "ExecutionId": execution_id}, "Name": name,
            "Version": "", "Input": input, "Tags": tags, "Generation": 0}


def corpus_for(account, hub: str, generation: str) -> Corpus:
    """The corpus of one generation ("v2" or "v3") for hub ``hub`` in ``account`` (used for blob URLs)."""
    if generation not in p.GENERATIONS:
        raise ValueError(f"generation must be one of {p.GENERATIONS}, not {generation!r}")
    b = _Builder(account, hub, generation)
    extra = {"GenerateNewTrace": False} if generation == "v3" else {}

    # corpus-completed: HelloSequence ran one activity and completed; CustomStatus and Tags set.
    iid, ex, t = "corpus-completed", "e0000000000000000000000000000001", T0
    tags = {"team": "corpus"}
    b.add(iid, b.instance_row(iid, "HelloSequence", "Completed", input="null", created=t, execution_id=ex,
                              output='"Hello Tokyo!"', custom_status='"all done"', tags=tags, completed=t + 3 * S),
          [("OrchestratorStarted", t, -1, {}),
           ("ExecutionStarted", t, -1, {**_started(iid, ex, "HelloSequence", "null", tags), **extra}),
           ("TaskScheduled", t, 0, {"Name": "SayHello", "Version": "", "Input": '"Tokyo"'}),
           ("OrchestratorCompleted", t, -1, {}),
           ("OrchestratorStarted", t + 2 * S, -1, {}),
           ("TaskCompleted", t + 2 * S, -1, {"TaskScheduledId": 0, "Result": '"Hello Tokyo!"'}),
           ("ExecutionCompleted", t + 2 * S, 1, {"OrchestrationStatus": "Completed", "Result": '"Hello Tokyo!"'}),
           ("OrchestratorCompleted", t + 2 * S, -1, {})], ex,
          {"status": "Completed", "input": None, "output": "Hello Tokyo!", "custom_status": "all done",
           "name": "HelloSequence"})

    # corpus-failed: RewindableSequence failed in its second activity.
    iid, ex, t = "corpus-failed", "e0000000000000000000000000000002", T0 + 10 * S
    reason = "Activity function 'FailsUntilFixed' failed: RuntimeError: not fixed yet"
    b.add(iid, b.instance_row(iid, "RewindableSequence", "Failed", input="null", created=t, execution_id=ex,
                              output=json.dumps(reason), completed=t + 4 * S),
          [("OrchestratorStarted", t, -1, {}),
           ("ExecutionStarted", t, -1, {**_started(iid, ex, "RewindableSequence", "null"), **extra}),
           ("TaskScheduled", t, 0, {"Name": "SayHello", "Version": "", "Input": '"first"'}),
           ("OrchestratorCompleted", t, -1, {}),
           ("OrchestratorStarted", t + 2 * S, -1, {}),
           ("TaskCompleted", t + 2 * S, -1, {"TaskScheduledId": 0, "Result": '"Hello first!"'}),
           ("TaskScheduled", t + 2 * S, 1, {"Name": "FailsUntilFixed", "Version": "", "Input": '"corpus-failed"'}),
           ("OrchestratorCompleted", t + 2 * S, -1, {}),
           ("OrchestratorStarted", t + 4 * S, -1, {}),
           ("TaskFailed", t + 4 * S, -1, {"TaskScheduledId": 1, "Reason": reason, "Details": "trace"}),
           ("ExecutionCompleted", t + 4 * S, 2, {"OrchestrationStatus": "Failed", "Result": json.dumps(reason)}),
           ("OrchestratorCompleted", t + 4 * S, -1, {})], ex,
          {"status": "Failed", "output": reason, "name": "RewindableSequence"})

    # corpus-running: WaitForApproval waits; another orchestration's EventRaised (EventSent → EventRaised,
    # TaskOrchestrationDispatcher) waits for it in its control queue, Sender = that orchestration, with Episode.
    iid, ex, t = "corpus-running", "e0000000000000000000000000000003", T0 + 20 * S
    b.add(iid, b.instance_row(iid, "WaitForApproval", "Running", input="null", created=t, execution_id=ex,
                              custom_status='"waiting for approval"'),
          [("OrchestratorStarted", t, -1, {}),
           ("ExecutionStarted", t, -1, {**_started(iid, ex, "WaitForApproval", "null"), **extra}),
           ("OrchestratorCompleted", t, -1, {})], ex,
          {"status": "Running", "custom_status": "waiting for approval", "name": "WaitForApproval"})
    raised = p.history_event("EventRaisedEvent", 15, t + 5 * S, Name="Approval", Input="true", ParentTraceContext=None)
    b.send(b.control(iid), p.message_data(raised, iid, None, activity_id=_activity(1), sequence_number=b.next_seq(),
                                          sender={"InstanceId": "corpus-approver", "ExecutionId": "a" * 32},
                                          episode=2))

    # corpus-activity: HelloSequence scheduled SayHello("Tokyo"); the work item waits in the work-item queue,
    # sent with the orchestration session (Sender = the orchestration, Episode = its OrchestratorStarted count).
    iid, ex, t = "corpus-activity", "e0000000000000000000000000000004", T0 + 30 * S
    b.add(iid, b.instance_row(iid, "HelloSequence", "Running", input="null", created=t, execution_id=ex),
          [("OrchestratorStarted", t, -1, {}),
           ("ExecutionStarted", t, -1, {**_started(iid, ex, "HelloSequence", "null"), **extra}),
           ("TaskScheduled", t, 0, {"Name": "SayHello", "Version": "", "Input": '"Tokyo"'}),
           ("OrchestratorCompleted", t, -1, {})], ex,
          {"status": "Running", "name": "HelloSequence"})
    scheduled = p.history_event("TaskScheduledEvent", 4, t, 0, Name="SayHello", Version="", Input='"Tokyo"',
                                ParentTraceContext=None, **({"Tags": None} if generation == "v3" else {}))
    b.send(p.workitem_queue(hub), p.message_data(scheduled, iid, ex, activity_id=_activity(2),
                                                 sequence_number=b.next_seq(),
                                                 sender={"InstanceId": iid, "ExecutionId": ex}, episode=1))

    # corpus-pending: a client's start (CreateTaskOrchestrationAsync): message first, then SetNewExecutionAsync.
    iid, ex, t = "corpus-pending", "e0000000000000000000000000000005", T0 + 40 * S
    b.add(iid, b.pending_row(iid, "HelloSequence", '"pending input"', ex, t), [], ex,
          {"status": "Pending", "input": "pending input", "name": "HelloSequence"})
    b.send(b.control(iid), p.message_data(p.execution_started(generation, iid, ex, "HelloSequence",
                                                              '"pending input"', t),
                                          iid, ex, activity_id=_activity(3), sequence_number=b.next_seq(),
                                          sender=p.CLIENT))

    # corpus-bigstart: the start message is over 45 KB (MessageManager.MaxStorageQueuePayloadSizeInBytes): the whole
    # message goes to a blob (serialized BEFORE CompressedBlobName is set), the queue holds the wrapper, and the
    # Instances row's Input is the blob's URL (CreateTaskOrchestrationAsync's inputPayloadOverride).
    iid, ex, t = "corpus-bigstart", "e0000000000000000000000000000006", T0 + 50 * S
    act = _activity(4)
    start = p.message_data(p.execution_started(generation, iid, ex, "HelloSequence", BIG_INPUT, t), iid, ex,
                           activity_id=act, sequence_number=b.next_seq(), sender=p.CLIENT)
    blob = p.message_blob_name(iid, act, "ExecutionStarted")
    b.c.blobs[blob] = json.dumps(start, separators=(",", ":"))
    b.c.messages.append((b.control(iid), p.queue_body(generation, p.compressed_wrapper(blob)), start))
    b.add(iid, b.pending_row(iid, "HelloSequence", p.blob_url(b.c.container_url(account), blob), ex, t), [], ex,
          {"status": "Pending", "input": json.loads(BIG_INPUT), "name": "HelloSequence"})

    # corpus^odd/id: the key is escaped (KeySanitation), large values: the start message went to a blob under the
    # RAW id; the ExecutionStarted Input and the ExecutionCompleted Result went to history blobs under the ESCAPED
    # key (CompressLargeMessageAsync: "" + {Prop}BlobName), and the Instances row holds those blobs' URLs
    # (SetInstancesTablePropertyFromHistoryProperty).
    iid, ex, t = "corpus^odd/id", "e0000000000000000000000000000007", T0 + 60 * S
    pk = p.escape_partition_key(iid)
    act = _activity(5)
    start = p.message_data(p.execution_started(generation, iid, ex, "HelloSequence", BIG_INPUT, t), iid, ex,
                           activity_id=act, sequence_number=b.next_seq(), sender=p.CLIENT)
    b.c.blobs[p.message_blob_name(iid, act, "ExecutionStarted")] = json.dumps(start, separators=(",", ":"))
    big_output = json.dumps(["Hello " + "y" * 40_000 + "!"])
    input_blob = p.history_blob_name(pk, f"{1:016X}", "ExecutionStarted", "Input", 0x1A2B3C4D)
    output_blob = p.history_blob_name(pk, f"{5:016X}", "ExecutionCompleted", "Result", 0x5E6F7081)
    b.c.blobs[input_blob] = BIG_INPUT
    b.c.blobs[output_blob] = big_output
    url = b.c.container_url(account)
    b.add(iid, b.instance_row(iid, "HelloSequence", "Completed", input=p.blob_url(url, input_blob), created=t,
                              execution_id=ex, output=p.blob_url(url, output_blob), completed=t + 3 * S),
          [("OrchestratorStarted", t, -1, {}),
           ("ExecutionStarted", t, -1, {**_started(iid, ex, "HelloSequence", ""), "InputBlobName": input_blob,
                                        **extra}),
           ("TaskScheduled", t, 0, {"Name": "SayHello", "Version": "", "Input": '"Tokyo"'}),
           ("OrchestratorCompleted", t, -1, {}),
           ("OrchestratorStarted", t + 2 * S, -1, {}),
           ("ExecutionCompleted", t + 2 * S, 1, {"OrchestrationStatus": "Completed", "Result": "",
                                                 "ResultBlobName": output_blob}),
           ("OrchestratorCompleted", t + 2 * S, -1, {})], ex,
          {"status": "Completed", "input": json.loads(BIG_INPUT), "output": json.loads(big_output),
           "name": "HelloSequence"})

    # corpus-terminated: terminated by a client while it waited.
    iid, ex, t = "corpus-terminated", "e0000000000000000000000000000008", T0 + 70 * S
    b.add(iid, b.instance_row(iid, "WaitForApproval", "Terminated", input="null", created=t, execution_id=ex,
                              output='"stopped by operator"', completed=t + 3 * S),
          [("OrchestratorStarted", t, -1, {}),
           ("ExecutionStarted", t, -1, {**_started(iid, ex, "WaitForApproval", "null"), **extra}),
           ("OrchestratorCompleted", t, -1, {}),
           ("OrchestratorStarted", t + 3 * S, -1, {}),
           ("ExecutionTerminated", t + 3 * S, -1, {"Input": '"stopped by operator"'}),
           ("ExecutionCompleted", t + 3 * S, 3, {"OrchestrationStatus": "Terminated",
                                                 "Result": '"stopped by operator"'}),
           ("OrchestratorCompleted", t + 3 * S, -1, {})], ex,
          {"status": "Terminated", "output": "stopped by operator", "name": "WaitForApproval"})
    return b.c


async def load_corpus(account, hub_name: str, generation: str) -> Corpus:
    """Write the corpus of ``generation`` ("v2" or "v3") as task hub ``hub_name`` into ``account``.

    Creates what the provider's CreateIfNotExistsAsync creates (Instances, History, control queues, work-item
    queue, large-messages container) and the partition layout of that generation (``layouts.write_layout``).
    Returns the ``Corpus`` written.
    """
    from .layouts import write_layout

    corpus = corpus_for(account, hub_name, generation)
    tables, queues, blobs = account.table_service(), account.queue_service(), account.blob_service()
    async with tables, queues, blobs:
        for name in (f"{hub_name}Instances", f"{hub_name}History"):
            try:
                await tables.create_table(name)
            except ResourceExistsError:
                pass
        for q in [f"{hub_name.lower()}-control-{i:02d}" for i in range(PARTITION_COUNT)] + [p.workitem_queue(hub_name)]:
            try:
                await queues.get_queue_client(q).create_queue()
            except ResourceExistsError:
                pass
        container = blobs.get_container_client(p.large_messages_container(hub_name))
        try:
            await container.create_container()
        except ResourceExistsError:
            pass
        for name, text in corpus.blobs.items():
            await container.upload_blob(name, p.gzip_text(text), overwrite=True)
        instances = tables.get_table_client(f"{hub_name}Instances")
        history = tables.get_table_client(f"{hub_name}History")
        for row in corpus.instances.values():
            await instances.upsert_entity(row)
        for rows in corpus.history.values():
            if rows:
                await history.submit_transaction([("upsert", r) for r in rows])
        for queue, body, _ in corpus.messages:
            await queues.get_queue_client(queue).send_message(body, time_to_live=-1)
    await write_layout(account, hub_name, generation, PARTITION_COUNT)
    return corpus
