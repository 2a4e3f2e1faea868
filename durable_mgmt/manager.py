"""``InstanceManager``: one typed API for every instance-management operation.

The same calls work over two transports:

* ``InstanceManager.from_client(client)`` inside a Functions app, over the
  durable client binding (the management API of the host);
* ``await InstanceManager.connect(account, hub)`` anywhere, over the task hub
  in Azure Storage.

Inputs are validated before the transport is called (see ``requests``), and
every failure is a ``durable_mgmt.errors.DurableError``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from contextlib import aclosing
from datetime import datetime
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterable, Sequence

from . import requests as r
from .requests import ProgressCallback
from .errors import InstanceNotFound, InvalidInput, WaitTimeout
from .jobs.models import BulkRequest, CountRequest, CountResult, JobInfo, QueryPlan
from .limits import check_text, check_wait
from .models import EntityState, InstanceQuery, InstanceStatus, ManagementUrls, Page, PurgeResult, RuntimeStatus
from .page_tokens import PageToken
from .jobs.runner import BulkJob, create_job
from .query import Field, Query, field_text, to_text
from .taskhub import StorageAccount
from .taskhub.jobs_table import JobsTable
from .taskhub.names import escape_key
from .taskhub.scan import columns_for, count_groups, explain_odata, scan
from .transports import BindingTransport, StorageTransport, Transport

if TYPE_CHECKING:
    from .taskhub.events import HistoryEvent


class InstanceManager:
    """Start, query, steer, wait for and clean up orchestration instances of one task hub.

    Make one with ``from_client`` (inside a Functions app, over the durable client binding) or
    ``connect`` (over the task hub in Azure Storage); use it as an async context manager so the
    transport is closed. Every method validates its input before anything is sent and raises a
    ``DurableError`` subclass on failure: ``InvalidInput`` (and its kinds) for bad input,
    ``NotFound`` for a missing instance or hub, ``WrongState`` when the instance's status forbids
    the operation, ``StorageUnavailable``/``StorageRefused`` for storage failures.
    """

    def __init__(self, transport: Transport):
        self.transport = transport

    @classmethod
    def from_client(cls, client: Any) -> "InstanceManager":
        """Over the ``DurableOrchestrationClient`` of a ``durable_client_input`` function."""
        return cls(BindingTransport.from_client(client))

    @classmethod
    async def connect(cls, account: StorageAccount | str, hub_name: str, **kwargs: Any) -> "InstanceManager":
        """Over the task hub ``hub_name`` in a storage account (or connection string)."""
        if isinstance(account, str):
            account = StorageAccount.from_connection_string(account)
        return cls(await StorageTransport.connect(account, hub_name, **kwargs))

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def __aenter__(self) -> "InstanceManager":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    @property
    def hub_name(self) -> str | None:
        """The task hub's name where the transport knows it (storage), else None (the binding's host decides)."""
        hub = self.transport.hub
        return hub.name if hub is not None else None

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the transport noticed about the hub when it opened it, for a person to read (e.g. a
        configured partition count that differs from the hub's)."""
        return self.transport.warnings

    # --- start ---------------------------------------------------------------

    async def start(self, name: str, input: Any = None, *, instance_id: str | None = None) -> str:
        """Start orchestrator ``name`` with a JSON-serializable ``input``; returns the instance id.

        Raises InvalidInput (bad name, id or input), InstanceAlreadyExists (the
        id is Pending, Running or Suspended).
        """
        return await self.transport.start(r.StartInstance(name, input, instance_id))

    async def start_json(self, name: str, input_json: str | None, *, instance_id: str | None = None) -> str:
        """As ``start``, with the input given as JSON text (as a door receives it); None starts it with no
        input at all. Raises as ``start``; InvalidInput when ``input_json`` is not standard JSON."""
        return await self.transport.start(r.StartInstance.of_json(name, input_json, instance_id))

    async def restart(self, instance_id: str, *, new_instance_id: bool = True) -> str:
        """Start the orchestration of ``instance_id`` again with its input; returns the new id.

        Raises InstanceNotFound; InstanceAlreadyExists when reusing the id of an instance still in flight.
        """
        return await self.transport.restart(r.RestartInstance(instance_id, new_instance_id))

    # --- read ----------------------------------------------------------------

    async def status(self, instance_id: str, *, show_history: bool = False, show_history_output: bool = False,
                     show_input: bool = True, show_output: bool = True) -> InstanceStatus:
        """The status of one instance (its history rendered as the HTTP API does, if asked).

        Raises InvalidInstanceId, InstanceNotFound.
        """
        return await self.transport.status(r.GetStatus(instance_id, show_history, show_history_output, show_input,
                                                       show_output))

    async def get_entity(self, name: str, key: str) -> EntityState:
        """The state of durable entity ``name`` (any case) with ``key``: ``exists`` False when it has no
        state, else ``state``, its JSON value (as the SDK's ``read_entity_state``).

        Raises InvalidInput (an empty or malformed name, a key storage cannot hold).
        """
        return await self.transport.get_entity(r.GetEntity(name, key))

    async def history(self, instance_id: str) -> "list[HistoryEvent]":
        """The raw history events of the instance's current execution, in order.

        Raises InvalidInstanceId, InstanceNotFound; NotSupportedByTransport over the binding (use
        ``status(instance_id, show_history=True)`` there).
        """
        return await self.transport.history(r.GetHistory(instance_id))

    async def page(self, query: InstanceQuery | None = None) -> Page[InstanceStatus]:
        """One page of instances (at most ``query.page_size``) and the token of the next."""
        return await self.transport.page(r.QueryInstances(query or InstanceQuery()))

    async def pages(self, query: InstanceQuery | None = None) -> AsyncIterator[Page[InstanceStatus]]:
        """Every page of instances matching ``query``, following continuation tokens (over storage the next
        page is read while the caller handles this one)."""
        async for page in self.transport.pages(r.QueryInstances(query or InstanceQuery())):
            yield page

    async def instances(self, query: InstanceQuery | None = None) -> AsyncIterator[InstanceStatus]:
        """Every instance matching ``query``, one page in memory at a time."""
        async for page in self.pages(query):
            for status in page:
                yield status

    async def query(self, *, created_from: datetime | None = None, created_to: datetime | None = None,
                    statuses: Iterable[RuntimeStatus | str] | None = None, instance_id_prefix: str | None = None,
                    name: str | None = None, show_input: bool = False, page_size: int = 100) -> list[InstanceStatus]:
        """All instances matching the filters (every page, collected). Raises InvalidFilter."""
        q = InstanceQuery(created_from, created_to, statuses, instance_id_prefix, name,
                          show_input=show_input, page_size=page_size)
        return [s async for s in self.instances(q)]

    async def count_by_status(self, query: InstanceQuery | None = None) -> dict[RuntimeStatus, int]:
        """How many instances match ``query``'s filters, per runtime status (every status, zeros included),
        counted in storage reading the status column only.

        Raises InvalidFilter; TaskHubNotFound; NotSupportedByTransport over the binding (use
        ``count(CountRequest(...))`` there, which lists and counts in this process).
        """
        return await self.transport.count(r.CountInstances(query or InstanceQuery()))

    async def wait_for_completion(self, instance_id: str, *, timeout: float = 10.0,
                                  retry_interval: float | Sequence[float] = 1.0, show_input: bool = False,
                                  stop: Callable[[], bool] | None = None) -> InstanceStatus:
        """Poll until the instance is Completed, Failed, Terminated or Canceled; its final status.

        ``retry_interval``: seconds between reads, or a sequence of them (the last one repeats: poll fast
        first, then settle). ``stop``: asked after each read and each pause; when it says True (e.g. the
        caller went away) the wait ends as a timeout does. ``show_input``: include the input in the status.

        Raises InvalidInput (a timeout outside 0..MAX_WAIT_SECONDS, an interval under MIN_POLL_SECONDS),
        InstanceNotFound, WaitTimeout (with the last status) when ``timeout`` seconds pass first or ``stop``
        says so.
        """
        intervals = (retry_interval,) if isinstance(retry_interval, (int, float)) else tuple(retry_interval)
        if not intervals:
            raise InvalidInput("retry_interval is an empty sequence: give at least one number of seconds.")
        for interval in intervals:
            check_wait(timeout, interval, interval_name="retry_interval")
        deadline = time.monotonic() + timeout
        for attempt in itertools.count():
            status = await self.status(instance_id, show_input=show_input)
            if status.runtime_status.is_terminal:
                return status
            left = deadline - time.monotonic()
            if left <= 0 or (stop is not None and stop()):
                raise WaitTimeout(instance_id, timeout, status)
            await asyncio.sleep(min(intervals[min(attempt, len(intervals) - 1)], left))
            if stop is not None and stop():
                raise WaitTimeout(instance_id, timeout, status)

    async def management_urls(self, instance_id: str) -> ManagementUrls:
        """The HTTP management webhooks of ``instance_id`` (the check-status payload).

        Raises InvalidInstanceId; InvalidSetting when the transport was made without the host's address.
        """
        return await self.transport.management_urls(r.GetManagementUrls(instance_id))

    # --- steer ---------------------------------------------------------------

    async def terminate(self, instance_id: str, reason: str | None = None) -> None:
        """Terminate a Pending, Running or Suspended instance. Raises InstanceNotFound, InstanceNotRunning."""
        await self.transport.terminate(r.TerminateInstance(instance_id, reason))

    async def raise_event(self, instance_id: str, event_name: str, data: Any = None, *,
                          data_json: str | None = None) -> None:
        """Send event ``event_name`` with JSON ``data`` (or ``data_json``, its JSON text; None is null).

        Raises InvalidInput (bad name or data), InstanceNotFound, InstanceNotRunning.
        """
        request = (r.RaiseEvent(instance_id, event_name, data) if data_json is None
                   else r.RaiseEvent.of_json(instance_id, event_name, data_json))
        await self.transport.raise_event(request)

    async def suspend(self, instance_id: str, reason: str | None = None) -> None:
        """Suspend a running instance (it stops at its next step). Raises InstanceNotFound, InstanceNotRunning."""
        await self.transport.suspend(r.SuspendInstance(instance_id, reason))

    async def resume(self, instance_id: str, reason: str | None = None) -> None:
        """Resume a suspended instance. Raises InstanceNotFound, InstanceNotRunning."""
        await self.transport.resume(r.ResumeInstance(instance_id, reason))

    async def rewind(self, instance_id: str, reason: str | None = None) -> list[str] | None:
        """Rewind a Failed instance; the ids of the instances sent a replay message (the instance, or its
        failed sub-orchestrations), or None over the binding, whose API does not say.

        Raises InstanceNotFound, InstanceNotFailed.
        """
        return await self.transport.rewind(r.RewindInstance(instance_id, reason))

    # --- purge and the hub ---------------------------------------------------

    async def purge_instance(self, instance_id: str) -> PurgeResult:
        """Delete a finished instance's history. Raises InstanceNotFound, InstanceNotTerminal."""
        return await self.transport.purge_instance(r.PurgeInstance(instance_id))

    async def purge(self, *, created_from: datetime | None = None, created_to: datetime | None = None,
                    statuses: Iterable[RuntimeStatus | str] | None = None, query: InstanceQuery | None = None,
                    progress: ProgressCallback | None = None) -> PurgeResult:
        """Delete the history of every finished instance created in the range (with those statuses), or
        matching ``query`` (creation range, statuses, id prefix, name) instead of the range arguments.

        ``progress`` (sync or async) gets a ``PurgeProgress`` after each batch over storage; the binding's
        API reports nothing until the end. Raises InvalidFilter (a status that is not finished), InvalidInput
        (``query`` given with range arguments).
        """
        if query is None:
            query = InstanceQuery(created_from, created_to, statuses)
        elif created_from is not None or created_to is not None or statuses is not None:
            raise InvalidInput("Give purge() either query= or created_from/created_to/statuses, not both.")
        elif not isinstance(query, InstanceQuery):  # e.g. a filter Query (find's): it would fail deep inside
            raise InvalidInput(f"purge(query=) takes an InstanceQuery (creation range, statuses, id prefix, name), "
                               f"not {type(query).__name__}; to purge what a filter query matches, use "
                               "bulk(BulkRequest('purge', query)).")
        return await self.transport.purge(r.PurgeInstances(query, progress))

    async def exists(self, instance_id: str) -> bool:
        """Whether ``instance_id`` exists. Raises InvalidInstanceId."""
        try:
            await self.status(instance_id, show_input=False)
            return True
        except InstanceNotFound:
            return False

    async def hub_exists(self) -> bool:
        """Whether the task hub exists. NotSupportedByTransport over the binding."""
        return await self.transport.hub_exists(r.HubExists())

    async def delete_hub(self) -> None:
        """Delete the task hub: every instance, table, queue and container of it (hosts on it must be
        stopped). Raises TaskHubNotFound; NotSupportedByTransport over the binding."""
        await self.transport.delete_hub(r.DeleteHub())

    # --- queries, counts, bulk jobs, exports (issue 13) ---------------------------

    def _task_hub(self, what: str):
        hub = self.transport.hub
        if hub is None:
            self.transport.unsupported(what, "it needs the task hub in storage: use InstanceManager.connect("
                                             "account, hub) (jobs are checkpointed in the hub's storage account).")
        return hub

    @staticmethod
    def parse_query(text: str | None, *, now: datetime | None = None) -> Query:
        """Parse a filter query (QuerySyntaxError, an InvalidFilter, points at the failing column)."""
        return Query.parse(text, now=now)

    @staticmethod
    def explain(query: Query | str | None, *, fields: Iterable[Field] = ()) -> QueryPlan:
        """What storage evaluates for ``query`` (the OData filter) and what is filtered here."""
        q = Query.of(query)
        return QueryPlan(q.text, to_text(q.pushed), explain_odata(q), to_text(q.client), tuple(columns_for(q, fields)))

    async def find(self, query: Query | str | None, *, fields: Iterable[Field] = (Field.CUSTOM_STATUS,),
                   ) -> AsyncIterator[InstanceStatus]:
        """Every instance ``query`` matches, streamed in id order; only ``fields`` (and what the query
        needs) are read beyond the summary columns (add Field.INPUT / Field.OUTPUT to get them)."""
        q = Query.of(query)
        hub = self.transport.hub
        if hub is None:
            # Over the binding: list everything, filter here (the management API has no query language).
            async for status in self.instances(_unfiltered(q, fields, page_size=1000)):
                if q.matches(status):
                    yield status
            return

        async for page in scan(hub, q, fields=fields):
            for status in page.items:
                yield status

    async def find_page(self, query: Query | str | None, *, page_size: int = 50, after: str | None = None,
                        fields: Iterable[Field] = (Field.CUSTOM_STATUS,),
                        max_scanned: int = 5000) -> Page[InstanceStatus]:
        """One page of ``find``: at most ``page_size`` matches in id order, and the token of the next page.

        ``after`` is the token of the previous page, for the same query: a token of another query is
        refused (InvalidInput: start from the first page), never continued under this one. Give the query
        as text to keep its relative times (``-2h``) fixed across pages: later pages parse it at the first
        page's moment, which the token carries (``page_tokens``). A page stops early (possibly empty, with
        a token) once ``max_scanned`` rows were read, so a selective client-side filter never makes one
        page scan the whole hub. Over the binding, each page is one page of the management API filtered here.
        """
        if after is not None:  # client text (a dashboard URL): a lone surrogate cannot be sent to storage
            check_text(after, "page token", max_length=max(len(after), 1), allow_control=True)
            token = PageToken.parse(after)
            q, position = token.resolve(query), token.position
        else:
            q, position = Query.of(query), None
        page = await self._find_page(q, page_size, position, fields, max_scanned)
        next_position = page.continuation_token
        return Page(page.items, str(PageToken.of(q, next_position)) if next_position else None)

    async def _find_page(self, q: Query, page_size: int, after: str | None, fields: Iterable[Field],
                         max_scanned: int) -> Page[InstanceStatus]:
        """``find_page`` at a transport's own position (an escaped key, or the management API's token)."""
        hub = self.transport.hub
        if hub is None:
            page = await self.page(_unfiltered(q, fields, page_size=page_size, continuation_token=after))
            return Page(tuple(s for s in page if q.matches(s)), page.continuation_token)

        items: list[InstanceStatus] = []
        scanned, token = 0, None
        # When storage evaluates every field (the part here only re-checks times and ordered text), nearly every
        # row it returns matches: ask for one page's worth. Otherwise read large storage pages.
        size = page_size + 1 if q.fields("client") <= q.fields("pushed") else 1000
        async with aclosing(scan(hub, q, fields=fields, after_key=after, page_size=size)) as pages:
            async for part in pages:
                scanned += part.scanned
                room = page_size - len(items)
                items.extend(part.items[:room])
                if len(part.items) > room:  # more matches on this storage page: resume after the last shown
                    return Page(tuple(items), escape_key(items[-1].instance_id))
                token = part.last_key
                if len(items) >= page_size or scanned >= max_scanned:
                    break
            else:
                token = None  # the scan ended: no next page
        return Page(tuple(items), token)

    async def count(self, request: CountRequest | None = None) -> CountResult:
        """How many instances match, in total and per group (status, name or customStatus), streamed:
        only the columns the query and the grouping need are read."""


        req = request or CountRequest()
        hub = self.transport.hub
        if hub is not None:  # in storage: read only the grouped column (and what the query needs)
            tally = await count_groups(hub, Query.of(req.query), req.group_by.field)
        else:
            key = {Field.STATUS: lambda s: s.runtime_status.value, Field.NAME: lambda s: s.name,
                   Field.CUSTOM_STATUS: lambda s: field_text(s.custom_status)}[req.group_by.field]
            tally = Counter()
            async for status in self.find(req.query, fields=(req.group_by.field,)):
                tally[key(status)] += 1
        groups = dict(sorted(tally.items(), key=lambda kv: (-kv[1], kv[0])))
        return CountResult(sum(tally.values()), req.group_by, groups)

    async def bulk(self, request: BulkRequest) -> "BulkJob":
        """Create a job that applies ``request.action`` to every instance its query matches.

        Nothing is selected or acted on until ``await job.run(progress)``;
        the job is stored first, so it can be listed, resumed and canceled
        from any process (``jobs``, ``job``, ``cancel_job``).
        """

        return await create_job(self, self._task_hub("A bulk job"), request)

    async def export(self, request: BulkRequest) -> "BulkJob":
        """Create an export-history job (``ExportRequest(query, path, gzip=...)``); run it like ``bulk``."""
        return await self.bulk(request)

    async def jobs(self) -> list[JobInfo]:
        """Every bulk job and export of this hub, newest first."""

        return await JobsTable(self._task_hub("Listing jobs")).list()

    async def job(self, job_id: str) -> "BulkJob":
        """A handle on an existing job (JobNotFound): show it, ``run()`` it to resume it, cancel it."""

        hub = self._task_hub("A bulk job")
        jobs = JobsTable(hub)
        info = (await jobs.get(job_id))[0]
        return BulkJob(self, hub, jobs, info)

    async def cancel_job(self, job_id: str) -> JobInfo:
        """Stop a job for good (a running process stops at its next checkpoint)."""
        return await (await self.job(job_id)).cancel()


def _unfiltered(query: Query, fields: Iterable[Field], **listing: Any) -> InstanceQuery:
    """The management API's listing a query is filtered from over the binding (it has no query language):
    everything, with the inputs when the query or the caller needs them."""
    return InstanceQuery(show_input=Field.INPUT in set(fields) | query.fields(), **listing)
