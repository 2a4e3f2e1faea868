"""Instance management at the storage level: what works with no host running.

``TaskHubClient`` starts, inspects, steers and purges orchestration instances
by reading and writing the task hub directly, exactly as the Azure Storage
provider's client does. Every check happens before the first write, so a
refused operation changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping

from azure.core import MatchConditions
from azure.data.tables import TransactionOperation

from ..limits import check_existing_id, check_json_text, check_reason, dumps_checked, json_default
from ..errors import (ConcurrencyConflict, InstanceAlreadyExists, InstanceNotFailed, InstanceNotFound,
                      InstanceNotRunning, InstanceNotTerminal, InvalidInput, StorageUnavailable, TaskHubNotFound)
from ..models import (InstanceQuery, InstanceStatus, Page, PurgeProgress, PurgeResult, RuntimeStatus,
                      purgeable_statuses)
from .events import EventType, HistoryEvent, event, execution_started
from .history import SENTINEL_ROW_KEY
from .history_view import render_history
from .hub import TaskHub
from .entities import plain_value
from .instance_row import InstanceRow, status_from_entity
from .messages import TaskMessage, check_scheduled_start
from .events import serialize_tags
from .names import (escape_key, new_execution_id, new_instance_id, service_order, unescape_key, validate_event_name,
                    validate_instance_id, validate_orchestrator_name)
from .odata import Filter
from .primitives import get_or_none
from .storage import HttpResponseError, map_storage_errors, status_of
from .timefmt import as_utc, utcnow

NO_INPUT = object()
ProgressCallback = Callable[[PurgeProgress], "Awaitable[None] | None"]


_json_default = json_default  # one rule for every door (limits.json_default)


PURGE_RUN = 50  # instances whose history keys are read with one range query


class TaskHubClient:
    """Management operations over one task hub (an opened ``TaskHub``)."""

    def __init__(self, hub: TaskHub):
        self.hub = hub

    # --- start ---------------------------------------------------------------

    async def start(self, name: str, input: Any = NO_INPUT, *, instance_id: str | None = None,
                    scheduled_start: datetime | None = None, input_json: str | None = None) -> str:
        """Schedule a new instance of orchestrator ``name``; returns its id.

        ``input`` is any JSON-serializable value (or give ``input_json``, the
        JSON text itself). A new id is 32 hex digits. Starting an id whose
        instance is Pending, Running, Suspended or ContinuedAsNew raises
        InstanceAlreadyExists; a finished one is replaced (a new generation).
        """
        validate_orchestrator_name(name)
        instance_id = validate_instance_id(instance_id) if instance_id is not None else new_instance_id()
        if input_json is None:
            input_json = None if input is NO_INPUT else dumps_checked(input, "orchestration input", _json_default)
        else:
            check_json_text(input_json, "orchestration input")
        if scheduled_start is not None:
            scheduled_start = as_utc(scheduled_start)
            try:
                check_scheduled_start(scheduled_start)
            except ValueError as e:
                raise InvalidInput(str(e)) from None

        await self.hub.ensure_created()
        existing = await self.hub.instances.read(instance_id, with_input=False, with_output=False)
        if existing is not None:
            status = existing.status
            if status.is_active:
                raise InstanceAlreadyExists(
                    instance_id, status,
                    f"An instance with id {instance_id!r} is already {status.value}. Instance ids must be unique "
                    "among running instances: wait for it to finish, terminate it, or use another id.")
        generation = (existing.generation or 0) + 1 if existing else 0
        execution_id = new_execution_id()
        started = execution_started(instance_id, execution_id, name, input_json, scheduled_start=scheduled_start,
                                    generation=generation)
        # Shielded: a caller that goes away (a cancelled request) must not stop this between the message and
        # the row, which would leave a run nobody can see.
        await asyncio.shield(self._send_start(started, instance_id, execution_id, name, input_json,
                                              scheduled_start, generation, existing))
        return instance_id

    async def _send_start(self, started: HistoryEvent, instance_id: str, execution_id: str, name: str,
                          input_json: str | None, scheduled_start: datetime | None, generation: int,
                          existing: InstanceRow | None) -> None:
        """The start message, then the Instances row (the provider's order: CreateTaskOrchestrationAsync).

        If the row cannot be written, the message is taken back, so a failed start leaves nothing running;
        if even that fails, the engine writes the row when it runs the message, so the run is visible.
        """
        sent = await self.hub.send_to_orchestration(TaskMessage(started, instance_id, execution_id))
        # As AzureTableTrackingStore.SetNewExecutionAsync: a start message too large for the queue went to a
        # blob, and the row's Input is that blob's URL (readers take the start event's Input from it).
        # Tags is TagsSerializer.Serialize(event.Tags): the text "null" when there are none.
        row_input = self.hub.large.url_of(sent.compressed_blob_name) if sent.compressed_blob_name else input_json
        row = InstanceRow(instance_id, input=row_input, created_time=started.timestamp, name=name, version="",
                          runtime_status=RuntimeStatus.PENDING, last_updated_time=utcnow(),
                          task_hub_name=self.hub.name, scheduled_start_time=scheduled_start,
                          execution_id=execution_id, generation=generation, tags=serialize_tags(None))
        try:
            if existing is None:
                await self.hub.instances.insert(row)
            else:
                await self.hub.instances.replace(row, existing.etag)
        except ConcurrencyConflict:
            # A host may already have picked up the start message and written the row: fine.
            current = await self.hub.instances.read(instance_id, with_input=False, with_output=False)
            if not current or current.execution_id != execution_id:
                # Someone else's start (or a purge) won: take ours back so it never runs.
                await self.hub.delete_message(sent.queue_name, sent.message_id, sent.pop_receipt)
                raise InstanceAlreadyExists(
                    instance_id, RuntimeStatus.PENDING,
                    f"Instance {instance_id!r} was started or purged by someone else at the same moment; "
                    "try again, or use another id.")
        except BaseException:
            with contextlib.suppress(Exception):
                await self.hub.delete_message(sent.queue_name, sent.message_id, sent.pop_receipt)
            raise

    async def restart(self, instance_id: str, *, new_instance_id: bool = True) -> str:
        """Start the orchestration of ``instance_id`` again with the same input; returns the new id.

        With ``new_instance_id=False`` the same id is reused, which requires the
        instance to have finished (else InstanceAlreadyExists).
        """
        row = await self._row(instance_id, with_input=True, with_output=False)
        return await self.start(row.name or "", input_json=row.input,
                                instance_id=None if new_instance_id else instance_id)

    # --- read ----------------------------------------------------------------

    async def get_status(self, instance_id: str, *, show_input: bool = True, show_output: bool = True,
                         show_history: bool = False, show_history_output: bool = False) -> InstanceStatus:
        """The status of one instance; InstanceNotFound if there is none."""
        row = await self._row(instance_id, with_input=show_input, with_output=show_output)
        history = None
        if show_history:
            events = (await self.hub.history.read(instance_id)).events
            history = tuple(render_history(events, show_output=show_history_output, show_input=show_input))
        return row.to_status(history=history, show_input=show_input)

    async def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The raw events of the instance's current execution."""
        await self._row(instance_id, with_input=False, with_output=False)
        return (await self.hub.history.read(instance_id)).events

    async def query(self, query: InstanceQuery) -> Page[InstanceStatus]:
        """One page of instances matching ``query`` and the token of the next page."""
        await self.hub.require()
        rows, token = await self.hub.instances.query(query)
        return Page(tuple(status_from_entity(r, show_input=query.show_input) for r in rows), token)

    async def iter_instances(self, query: InstanceQuery) -> AsyncIterator[InstanceStatus]:
        """Every instance matching ``query``, following continuation tokens; one page in memory at a time."""
        async for page in self.pages(query):
            for status in page:
                yield status

    async def pages(self, query: InstanceQuery) -> AsyncIterator[Page[InstanceStatus]]:
        """Every page of instances matching ``query``, to the last one.

        The next page is requested while the caller handles the current one
        (at most two pages in memory), so listing a large hub keeps storage
        and this process busy at the same time.
        """
        await self.hub.require()
        # The SDK's entities, converted once by status_from_entity (no plain copy of each row first).
        async for rows, token in self.hub.instances.pages(query, prefetch=True, plain=False):
            yield Page(tuple(status_from_entity(r, show_input=query.show_input) for r in rows), token)

    async def count(self, query: InstanceQuery | None = None) -> dict[RuntimeStatus, int]:
        """How many instances match, per runtime status (a scan of status columns only)."""
        await self.hub.require()
        q = query or InstanceQuery()
        q = InstanceQuery(q.created_from, q.created_to, q.statuses, q.instance_id_prefix, q.name,
                          show_input=False, show_output=False, page_size=1000)
        # Tally the stored texts and parse each distinct one once: per-row parsing was a sixth of the time.
        texts: Counter[str] = Counter()
        async for rows, _ in self.hub.instances.pages(q, columns=["PartitionKey", "RuntimeStatus"], prefetch=True,
                                                      plain=False):  # two plain strings: no copy needed
            texts.update(r.get("RuntimeStatus") or "Pending" for r in rows)
        counts = {s: 0 for s in RuntimeStatus}
        for text, n in texts.items():
            counts[RuntimeStatus.parse(text)] += n
        return counts

    # --- steer ---------------------------------------------------------------

    async def terminate(self, instance_id: str, reason: str | None = None) -> None:
        """Ask a Pending, Running or Suspended instance to stop; a host carries it out."""
        check_reason(reason)
        await self._require_active(instance_id, "terminate")
        await self._send(instance_id, event(EventType.ExecutionTerminated, Input=reason))

    async def raise_event(self, instance_id: str, event_name: str, data: Any = None, *,
                          data_json: str | None = None) -> None:
        """Send event ``event_name`` with JSON ``data`` to a running instance (kept until it waits)."""
        validate_event_name(event_name)
        if data_json is not None:
            check_json_text(data_json, "event data")
        payload = data_json if data_json is not None else dumps_checked(data, "event data", _json_default)
        await self._require_active(instance_id, f"raise event {event_name!r} to")
        await self._send(instance_id, event(EventType.EventRaised, Name=event_name, Input=payload))

    async def suspend(self, instance_id: str, reason: str | None = None) -> None:
        check_reason(reason)
        await self._require_active(instance_id, "suspend")
        await self._send(instance_id, event(EventType.ExecutionSuspended, Reason=reason))

    async def resume(self, instance_id: str, reason: str | None = None) -> None:
        check_reason(reason)
        await self._require_active(instance_id, "resume")
        await self._send(instance_id, event(EventType.ExecutionResumed, Reason=reason))

    async def rewind(self, instance_id: str, reason: str | None = None) -> list[str]:
        """Rewind a Failed instance: its failed work runs again, earlier results are replayed.

        The legacy rewrite used by Core Tools and extension 2.x: the failure
        rows of the current execution become ``GenericEvent`` rows, failed
        sub-orchestrations are rewound recursively, each deepest failed
        instance gets a message to replay, and the rewound instances are set
        Pending. Returns the ids that were sent that message.

        The order makes a crash harmless: until the messages are sent every
        row still says Failed, so the rewind can simply be asked for again
        (the rewrite is idempotent), and a row the engine has already moved on
        is never set back to Pending.
        """
        check_reason(reason)
        row = await self._row(instance_id, with_input=False, with_output=False)
        status = row.status
        if status != RuntimeStatus.FAILED:
            raise InstanceNotFailed(
                instance_id, status,
                f"Instance {instance_id!r} is {status.value}; only Failed instances can be rewound.")
        rewound: dict[str, str | None] = {instance_id: row.etag}
        leaves: list[str] = []
        await self._rewind_history(instance_id, rewound, leaves)
        for leaf in leaves:
            await self._send(leaf, event(EventType.GenericEvent, Data=reason or ""))
        for iid, etag in rewound.items():
            with contextlib.suppress(ConcurrencyConflict):  # the engine got there first: keep its status
                await self.hub.instances.merge(InstanceRow(iid, runtime_status=RuntimeStatus.PENDING,
                                                           last_updated_time=utcnow()), etag=etag)
        return leaves

    async def _rewind_history(self, instance_id: str, rewound: dict[str, str | None], leaves: list[str]) -> None:
        """Rewrite the failure rows of ``instance_id`` and of its failed children; collect the leaves.

        A child is rewound when its parent recorded its failure, whatever the
        child's own row says, as ``AzureTableTrackingStore.RewindHistoryAsync``
        recurses for every SubOrchestrationInstanceFailed row (a Terminated
        child also sends one: TaskOrchestrationDispatcher); or when its own row
        says Failed and the parent has no result from it: a rewind interrupted
        after the parent's rows were rewritten, asked for again.
        """
        rows = await self.hub.history.rows(instance_id)
        sentinel = next((r for r in rows if r["RowKey"] == SENTINEL_ROW_KEY), None)
        execution_id = (sentinel or {}).get("ExecutionId") or (rows[0].get("ExecutionId") if rows else None)
        current = [r for r in rows if r["RowKey"] != SENTINEL_ROW_KEY and r.get("ExecutionId") == execution_id]
        by_id = {(r.get("EventType"), r.get("EventId")): r for r in current}
        answered = {r.get("TaskScheduledId") for r in current if r.get("EventType") == "SubOrchestrationInstanceCompleted"}
        reported_failed: set[str] = set()
        for r in current:
            etype = r.get("EventType")
            if etype == "TaskFailed":
                scheduled = by_id.get(("TaskScheduled", r.get("TaskScheduledId")))
                if scheduled:
                    await self._mark_rewound(scheduled, to_generic=True)
            elif etype == "SubOrchestrationInstanceFailed":
                created = by_id.get(("SubOrchestrationInstanceCreated", r.get("TaskScheduledId")))
                if created:
                    # The creation stays valid (the child is rewound in place); it is only marked.
                    reported_failed.add(created.get("InstanceId"))
                    await self._mark_rewound(created, to_generic=False)
            elif not (etype == "ExecutionCompleted" and r.get("OrchestrationStatus") == "Failed"):
                continue
            await self._mark_rewound(r, to_generic=True)
        children = [r["InstanceId"] for r in current
                    if r.get("EventType") == "SubOrchestrationInstanceCreated" and r.get("InstanceId")
                    and r.get("EventId") not in answered]
        failed_children = False
        for child in children:
            child_row = await self.hub.instances.read(child, with_input=False, with_output=False)
            if child_row is None:  # purged: nothing to rewind (the provider's rewind would throw here)
                continue
            if child not in reported_failed and child_row.runtime_status != RuntimeStatus.FAILED:
                continue
            failed_children = True
            rewound[child] = child_row.etag
            await self._rewind_history(child, rewound, leaves)
        if not failed_children:
            leaves.append(instance_id)

    async def _mark_rewound(self, row: dict[str, Any], *, to_generic: bool) -> None:
        row["Reason"] = "Rewound: " + row["EventType"]
        if to_generic:
            row["EventType"] = EventType.GenericEvent.name
        await self.hub.history.replace_row(row)

    # --- purge ---------------------------------------------------------------

    async def purge_instance(self, instance_id: str) -> PurgeResult:
        """Delete one finished instance: its history, then its row (if unchanged), then its large values.

        Raises ConcurrencyConflict when the instance was started again while being purged: its new run
        is kept whole.
        """
        row = await self._row(instance_id, with_input=False, with_output=False)
        status = row.status
        if not status.is_terminal:
            raise InstanceNotTerminal(
                instance_id, status,
                f"Instance {instance_id!r} is {status.value}; only Completed, Failed, Terminated or Canceled "
                "instances can be purged. Terminate it first, or wait for it to finish.")
        pk = escape_key(row.instance_id)
        history = (await self._history_keys([pk]))[pk]
        result = await self._purge_keys(ListedInstance(pk, row.etag, row.execution_id), history, blobs=True)
        if not result.instances_deleted:
            raise ConcurrencyConflict(
                f"Instance {instance_id!r} changed while it was being purged (it was started again, or purged by "
                "someone else); its current run was left as it is. Check its status, and purge again if wanted.")
        return result

    async def purge(self, query: InstanceQuery, *, progress: ProgressCallback | None = None,
                    concurrency: int = 32) -> PurgeResult:
        """Delete every finished instance matching ``query`` (created-time range, statuses, prefix, name).

        Only Completed, Failed, Terminated and Canceled instances are purged;
        asking for another status is an InvalidFilter error. Pages through the
        Instances table reading only keys, ETags and execution ids, finds the
        history rows of runs of consecutive instances with range queries
        (``_history_keys``), and deletes ``concurrency`` instances at a time,
        each history before its row, so an interrupted purge can simply be run
        again. An instance started again after it was listed is skipped, its
        new run untouched (``_purge_keys``). ``progress`` is called after each
        run of at most ``PURGE_RUN`` instances.
        """
        statuses = purgeable_statuses(query.statuses)
        await self.hub.require()
        q = InstanceQuery(query.created_from, query.created_to, statuses, query.instance_id_prefix, query.name,
                          show_input=False, show_output=False, page_size=1000)
        with_blobs = await self.has_large_values()
        sem = asyncio.Semaphore(concurrency)
        totals = {"scanned": 0, "deleted": 0, "rows": 0, "blobs": 0}

        async def one(listed: ListedInstance, rows: list[_HistoryKey]) -> PurgeResult:
            async with sem:
                return await self._purge_keys(listed, rows, blobs=with_blobs)

        async def run(listed: list[ListedInstance]) -> None:
            async with sem:
                keys = await self._history_keys([x.pk for x in listed])
            results = await asyncio.gather(*(one(x, keys[x.pk]) for x in listed))
            totals["deleted"] += sum(r.instances_deleted for r in results)
            totals["rows"] += sum(r.rows_deleted for r in results)
            totals["blobs"] += sum(r.blobs_deleted for r in results)
            if progress is not None:
                maybe = progress(PurgeProgress(totals["scanned"], totals["deleted"], totals["rows"]))
                if asyncio.iscoroutine(maybe):
                    await maybe

        try:
            async for page, _ in self.hub.instances.pages(q, columns=["PartitionKey", "ExecutionId"]):
                totals["scanned"] += len(page)
                listed = sorted((ListedInstance.of(r) for r in page), key=lambda x: service_order(x.pk))
                await asyncio.gather(*(run(listed[i:i + PURGE_RUN]) for i in range(0, len(listed), PURGE_RUN)))
        except (TaskHubNotFound, StorageUnavailable) as e:
            # A 404 mid-purge is a table gone (the hub deleted under the purge), wherever it surfaced (the
            # instances' next page, a history range query): say that, and how far the purge got.
            if (isinstance(e, StorageUnavailable) and status_of(e.__cause__) != 404) or await self.hub.exists():
                raise
            raise TaskHubNotFound(self.hub.name, (
                f"Task hub {self.hub.name!r} was deleted while it was being purged, after {totals['deleted']:,} "
                "instances were purged: nothing is left to purge.")) from e
        return PurgeResult(totals["deleted"], totals["rows"], totals["blobs"])

    async def history_keys(self, pks: list[str]) -> dict[str, list["_HistoryKey"]]:
        """The history rows of each partition key in ``pks`` (sorted), as a purge deletes them (ETag-checked)."""
        return await self._history_keys(pks)

    async def purge_listed(self, listed: "ListedInstance", history: list["_HistoryKey"], *,
                           blobs: bool) -> PurgeResult:
        """Purge one instance as listed (key, ETag, execution id) with the history rows read for it: nothing
        is deleted of a run started after it was listed (see ``_purge_keys``)."""
        return await self._purge_keys(listed, history, blobs=blobs)

    async def _history_keys(self, pks: list[str]) -> dict[str, list[_HistoryKey]]:
        """The history rows (key, ETag, execution id) of each partition in ``pks`` (sorted), in as few
        queries as possible.

        One query per instance would cost a round trip each (and, on Azurite,
        a scan of the whole History table each). Instead the key range
        ``pks[0]..pks[-1]`` is read in pages of 1000 keys; rows of instances
        that are not being purged are skipped. When the range turns out to be
        mostly other instances (a page touching fewer than two wanted
        partitions), the remaining partitions are read one by one.
        """
        wanted = set(pks)
        found: dict[str, list[_HistoryKey]] = {pk: [] for pk in pks}
        columns = ["PartitionKey", "RowKey", "ExecutionId"]
        f = Filter().ge("PartitionKey", pks[0]).le("PartitionKey", pks[-1])
        rest: list[str] = []
        with map_storage_errors("reading history keys"):
            pager = self.hub.history.client.query_entities(
                f.text, parameters=f.parameters, select=columns, results_per_page=1000).by_page()
            async for page in pager:
                touched: set[str] = set()
                last = None
                async for e in page:
                    last = e["PartitionKey"]
                    if last in wanted:
                        found[last].append(_HistoryKey.of(e))
                        touched.add(last)
                if pager.continuation_token and last is not None and len(touched) < 2:
                    rest = [pk for pk in pks if service_order(pk) >= service_order(last)]
                    break
        for pk in rest:
            found[pk] = [_HistoryKey.of(r) for r in await self.hub.history.rows(unescape_key(pk), select=columns)]
        return found

    async def _purge_keys(self, listed: ListedInstance, history: list[_HistoryKey], *, blobs: bool) -> PurgeResult:
        """Delete one listed instance: the history rows read (``history``), its row, then its large values.

        Every delete is ETag-checked, as the engine's history writes are, so a restart of the same id
        between listing and deleting never loses the new run: a history whose sentinel names another
        execution than the listed row is left alone; a history row rewritten since it was read is kept;
        the Instances row is deleted only if it still has the listed ETag; and the large values (listed
        before that delete) are deleted only after it, so the new run's blobs are never among them.
        """
        instance_id = unescape_key(listed.pk)
        sentinel = next((h for h in history if h.row_key == SENTINEL_ROW_KEY), None)
        if sentinel is not None and listed.execution_id and sentinel.execution_id not in (None, listed.execution_id):
            return PurgeResult(0)  # started again, and the new run has written history: not ours to purge
        blob_names = await self.hub.large.list_instance(instance_id, listed.pk) if blobs else []
        rows = await self._delete_history_rows(instance_id, listed.pk, history)
        with map_storage_errors(f"deleting instance {instance_id!r}"):
            try:
                ours = await _delete_row(
                    self.hub.instances.client, listed.pk, "", etag=listed.etag,
                    match_condition=MatchConditions.IfNotModified if listed.etag else MatchConditions.Unconditionally)
            except HttpResponseError as e:
                if status_of(e) != 412:
                    raise
                return PurgeResult(0, rows, 0)  # changed since listed (a restart): its row and blobs stay
            if not ours:  # gone already (another purge, or the hub deleted): not counted, its blobs are theirs
                return PurgeResult(0, rows, 0)
        n_blobs = await self.hub.large.delete_names(blob_names)
        return PurgeResult(1, rows, n_blobs)

    async def _delete_history_rows(self, instance_id: str, pk: str, history: list[_HistoryKey]) -> int:
        """Delete these history rows if unchanged since read, 100 per transaction; returns how many went.

        A transaction fails whole when one row changed or went (412/404); then its rows are deleted one
        by one, keeping the changed ones.
        """
        deleted = 0
        client = self.hub.history.client
        for i in range(0, len(history), 100):
            chunk = history[i:i + 100]
            ops = [(TransactionOperation.DELETE, {"PartitionKey": pk, "RowKey": h.row_key}, h.condition())
                   for h in chunk]
            with map_storage_errors(f"deleting the history of {instance_id!r}"):
                try:
                    await client.submit_transaction(ops)
                    deleted += len(chunk)
                    continue
                except HttpResponseError as e:
                    if status_of(e) not in (404, 412):
                        raise
                for h in chunk:
                    try:
                        deleted += await _delete_row(client, pk, h.row_key, **h.condition())
                    except HttpResponseError as e:
                        if status_of(e) != 412:
                            raise
        return deleted

    async def has_large_values(self) -> bool:
        container = self.hub.container(self.hub.names.large_messages_container)

        async def first_blob() -> bool:
            async for _ in container.list_blobs(results_per_page=1):
                return True
            return False

        return bool(await get_or_none(first_blob, "looking for large values"))

    async def delete_hub(self) -> None:
        """Delete every table, queue and container of the task hub."""
        await self.hub.require()
        await self.hub.delete()

    # --- helpers -------------------------------------------------------------

    async def _row(self, instance_id: str, *, with_input: bool, with_output: bool) -> InstanceRow:
        check_existing_id(instance_id)
        await self.hub.require()
        row = await self.hub.instances.read(instance_id, with_input=with_input, with_output=with_output)
        if row is None:
            raise InstanceNotFound(instance_id)
        return row

    async def _require_active(self, instance_id: str, action: str) -> InstanceRow:
        row = await self._row(instance_id, with_input=False, with_output=False)
        status = row.status
        if status.is_terminal:
            raise InstanceNotRunning(
                instance_id, status,
                f"Cannot {action} instance {instance_id!r}: it is already {status.value}.")
        return row

    async def _send(self, instance_id: str, ev: HistoryEvent) -> None:
        await self.hub.send_to_orchestration(TaskMessage(ev, instance_id, None))


@dataclass(frozen=True)
class ListedInstance:
    """An Instances row as listed for a purge: its key, ETag and execution id (what the ETag-checked
    delete needs to leave a later run of the same id alone)."""

    pk: str
    etag: str | None
    execution_id: str | None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> "ListedInstance":
        """From a plain row (its ETag as ``etag``) or an SDK entity as read (its ETag in ``metadata``: no plain
        copy of the row needed)."""
        etag = row.get("etag") or (getattr(row, "metadata", None) or {}).get("etag")
        return cls(row["PartitionKey"], etag, plain_value(row.get("ExecutionId")))


async def _delete_row(client: Any, pk: str, row_key: str, **condition: Any) -> bool:
    """Delete one row; whether this call deleted it. The SDK's ``delete_entity`` returns quietly when the
    row is already gone (a 404), so the status is read from the response itself: a row another purge (or a
    hub deletion) took first is not counted as deleted by this one."""
    statuses: list[int] = []
    await client.delete_entity(pk, row_key, raw_response_hook=lambda r: statuses.append(r.http_response.status_code),
                               **condition)
    return bool(statuses) and statuses[-1] != 404


@dataclass(frozen=True)
class _HistoryKey:
    """A history row as read for a purge: enough to delete it only if it did not change."""

    row_key: str
    etag: str | None
    execution_id: str | None

    @classmethod
    def of(cls, entity: Any) -> "_HistoryKey":
        meta = getattr(entity, "metadata", None) or {}
        return cls(entity["RowKey"], meta.get("etag") or entity.get("etag"), entity.get("ExecutionId"))

    def condition(self) -> dict[str, Any]:
        if not self.etag:
            return {}
        return {"etag": self.etag, "match_condition": MatchConditions.IfNotModified}
