"""``InstanceManager`` over both transports: the same cases, the same results, the same errors.

Every test runs twice, once per transport, against ONE running host and task
hub (the engine test app, so instances really run):

* ``storage``: ``StorageTransport`` on the host's task hub (what the CLI uses);
* ``binding``: ``BindingTransport`` on the host's internal ``rpcBaseUrl``
  (what a client function in the app uses).

Results are checked against the task hub itself (``store``, the storage-level
``TaskHubClient``), so passing for both transports means both return the same
thing. The HTTP API renders times in whole seconds, so times are compared at
second precision. Error messages are also compared across the two runs of a
case (``same_error``). Bulk instances for the listing tests are seeded
directly with a far-future scheduled start, so they stay Pending and cost the
engine nothing.
"""

from __future__ import annotations

import abc
import asyncio
import json
import re
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from durable_mgmt.errors import (DurableError, InstanceAlreadyExists, InstanceNotFailed, InstanceNotFound,
                                 InstanceNotRunning, InstanceNotTerminal, InvalidFilter, InvalidInput,
                                 InvalidInstanceId, WaitTimeout)
from durable_mgmt.errors import NotSupportedByTransport
from durable_mgmt.manager import InstanceManager
from durable_mgmt.models import EntityState, InstanceQuery, InstanceStatus, ManagementUrls, RuntimeStatus
from durable_mgmt.query import Query
from durable_mgmt.taskhub import TaskHubClient
from durable_mgmt.taskhub.names import escape_key
from durable_mgmt.taskhub.timefmt import as_utc, utcnow
from durable_mgmt.transports import OPERATIONS, BindingTransport, StorageTransport, Transport
from tests.apps.support import running_host
from tests.engine_support import wait_for

TRANSPORTS = ["storage", "binding"]
HELLO = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
# Later than the module runs, within the 7 days a queue can hold a start back (check_scheduled_start).
FAR_FUTURE = datetime.now(timezone.utc) + timedelta(days=6)


# --- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
async def host(connection_string, tmp_path_factory):
    """One host running the engine test app on a fresh hub, for the whole module."""
    state = tmp_path_factory.mktemp("manager-state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ENGINE_TEST_STATE", str(state))  # activities read it at run time
        async with running_host("engine_app", connection_string, f"Mgr{uuid.uuid4().hex[:10]}") as h:
            yield h


@pytest.fixture(scope="module")
def store(host) -> TaskHubClient:
    """The task hub itself: the ground truth both transports are checked against."""
    return TaskHubClient(host.hub)


class CountingTransport(Transport):
    """Passes every operation on and remembers its input, to prove bad input never reaches a transport."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.requests: list[Any] = []

    def pages(self, input: Any) -> Any:
        self.requests.append(input)
        return self.inner.pages(input)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _forward(name: str) -> Any:
    async def operation(self: CountingTransport, input: Any) -> Any:
        self.requests.append(input)
        return await getattr(self.inner, name)(input)
    return operation


for _name in OPERATIONS - {"pages"}:
    setattr(CountingTransport, _name, _forward(_name))
abc.update_abstractmethods(CountingTransport)


@dataclass
class Managed:
    kind: str
    manager: InstanceManager
    transport: CountingTransport


@pytest.fixture(scope="module", params=TRANSPORTS)
async def managed(request, host) -> Managed:
    if request.param == "storage":
        inner = StorageTransport(host.hub, webhook_base=host.webhook_base_url, webhook_query=host.links.query())
    else:
        inner = BindingTransport(host.rpc_base_url, management_payload=lambda iid: host.links.management_payload(iid))
    transport = CountingTransport(inner)
    manager = InstanceManager(transport)
    yield Managed(request.param, manager, transport)
    await manager.aclose()


@pytest.fixture
def manager(managed) -> InstanceManager:
    return managed.manager


@pytest.fixture(scope="module")
async def finished(store) -> str:
    """A Completed HelloSequence, shared by the error cases (which must leave it as it is)."""
    iid = await store.start("HelloSequence", {"shared": True}, instance_id=f"done-{uuid.uuid4().hex[:8]}")
    await wait_for(store, iid, RuntimeStatus.COMPLETED)
    return iid


@pytest.fixture(scope="module")
async def waiting(store) -> str:
    """A WaitForApproval that waits for its event the whole module (Running, never finishing)."""
    iid = await store.start("WaitForApproval", instance_id=f"waiting-{uuid.uuid4().hex[:8]}")
    await wait_until(store, iid, lambda s: s.custom_status == "waiting for approval")
    return iid


@dataclass(frozen=True)
class Bulk:
    prefix: str
    alpha: list[str]           # first batch, name BulkAlpha
    beta: list[str]            # second batch, name BulkBeta
    t0: datetime               # before the first batch
    t_mid: datetime            # between the batches
    t_end: datetime            # after the second batch
    completed: list[str]
    failed: list[str]

    @property
    def all(self) -> list[str]:
        return self.alpha + self.beta


@pytest.fixture(scope="module")
async def bulk(store) -> Bulk:
    """120 Pending instances (scheduled in the far future), in two batches of 60 with distinct names
    and creation times; 10 are then marked Completed and 5 Failed, for the status filter."""
    prefix = f"bulk{uuid.uuid4().hex[:6]}-"
    alpha = [f"{prefix}a{i:03d}" for i in range(60)]
    beta = [f"{prefix}b{i:03d}" for i in range(60)]

    async def seed(ids: list[str], name: str) -> None:
        sem = asyncio.Semaphore(20)

        async def one(i: int, iid: str) -> None:
            async with sem:
                await store.start(name, {"n": i}, instance_id=iid, scheduled_start=FAR_FUTURE)

        await asyncio.gather(*(one(i, iid) for i, iid in enumerate(ids)))

    t0 = utcnow()
    await seed(alpha, "BulkAlpha")
    await asyncio.sleep(0.01)
    t_mid = utcnow()
    await asyncio.sleep(0.01)
    await seed(beta, "BulkBeta")
    t_end = utcnow()
    completed, failed = alpha[:10], beta[:5]
    for ids, status in ((completed, RuntimeStatus.COMPLETED), (failed, RuntimeStatus.FAILED)):
        for iid in ids:
            await store.hub.instances.merge({"PartitionKey": escape_key(iid), "RowKey": "",
                                             "RuntimeStatus": status.value})
    return Bulk(prefix, alpha, beta, t0, t_mid, t_end, completed, failed)


# Error messages seen per case: the second transport must give the first one's message.
_ERRORS: dict[str, tuple[type, str]] = {}


def same_error(case: str, err: DurableError, *ids: str) -> None:
    """``err`` has the class and message (ids aside) the other transport gave for ``case``."""
    message = str(err)
    for iid in ids:
        message = message.replace(iid, "<id>")
    seen = _ERRORS.setdefault(case, (type(err), message))
    assert (type(err), message) == seen, f"{case}: the transports differ"


# --- helpers -------------------------------------------------------------------


def seconds(value: datetime | None) -> datetime | None:
    return as_utc(value).replace(microsecond=0) if value is not None else None


def view(s: InstanceStatus) -> dict[str, Any]:
    """What both transports report about an instance: the HTTP API's status body, times in seconds."""
    return {"instance_id": s.instance_id, "name": s.name, "runtime_status": s.runtime_status,
            "created_time": seconds(s.created_time), "last_updated_time": seconds(s.last_updated_time),
            "input": s.input, "output": s.output, "custom_status": s.custom_status,
            "history": list(s.history) if s.history is not None else None}


async def snapshot(store: TaskHubClient, iid: str) -> Any:
    """Everything stored about one instance (row and history), or None when there is none."""
    try:
        status = await store.get_status(iid, show_history=True, show_history_output=True)
    except InstanceNotFound:
        return None
    return status, await store.hub.history.rows(iid)


async def wait_until(store: TaskHubClient, iid: str, check, timeout: float = 15.0) -> InstanceStatus:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = await store.get_status(iid)
        if check(status):
            return status
        assert asyncio.get_running_loop().time() < deadline, f"{iid}: condition not met; last {status}"
        await asyncio.sleep(0.05)


def new_id(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}"


# --- start and status ------------------------------------------------------------


@pytest.mark.parametrize("value", [None, {"city": "Zürich", "n": [1, 2.5, None, True]}, "plain text", [1, 2, 3],
                                   '{"looks": "like JSON"}', "null"],
                         ids=["none", "dict", "string", "list", "json-text-string", "null-string"])
async def test_start_with_id_round_trips_the_input(manager, store, value):
    iid = new_id("start")
    assert await manager.start("HelloSequence", value, instance_id=iid) == iid
    status = await manager.status(iid)
    assert status.instance_id == iid and status.name == "HelloSequence" and status.input == value
    assert (await store.get_status(iid)).input == value


async def test_start_without_id_gets_a_new_one(manager, store):
    first = await manager.start("HelloSequence")
    second = await manager.start("HelloSequence", 7)
    assert re.fullmatch(r"[0-9a-f]{32}", first) and re.fullmatch(r"[0-9a-f]{32}", second) and first != second
    assert (await store.get_status(second)).input == 7
    assert (await manager.wait_for_completion(first, timeout=15, retry_interval=0.1)).output == HELLO


async def test_status_with_history_output_and_input(manager, store):
    iid = await store.start("HelloSequence", {"who": "me"})
    await wait_for(store, iid, RuntimeStatus.COMPLETED)

    plain = await manager.status(iid)
    assert plain.runtime_status == RuntimeStatus.COMPLETED and plain.output == HELLO and plain.history is None
    assert view(plain) == view(await store.get_status(iid))

    history = await manager.status(iid, show_history=True)
    assert [e["EventType"] for e in history.history] == ["ExecutionStarted", "TaskCompleted", "TaskCompleted",
                                                         "TaskCompleted", "ExecutionCompleted"]
    assert all("Result" not in e for e in history.history)
    assert view(history) == view(await store.get_status(iid, show_history=True))

    outputs = await manager.status(iid, show_history=True, show_history_output=True)
    assert [e.get("Result") for e in outputs.history[1:]] == [*HELLO, HELLO]
    assert view(outputs) == view(await store.get_status(iid, show_history=True, show_history_output=True))

    hidden = await manager.status(iid, show_input=False)
    assert hidden.input is None and hidden.output == HELLO
    assert view(hidden) == view(await store.get_status(iid, show_input=False))


async def test_exists(manager, finished):
    assert await manager.exists(finished) is True
    assert await manager.exists(new_id("nobody")) is False


async def test_management_urls_are_the_hosts(manager, host):
    for iid in (new_id("urls"), "with space+plus&ü"):
        urls = await manager.management_urls(iid)
        assert urls == ManagementUrls.from_json(host.links.management_payload(iid))
        assert urls.id == iid and urls.status_query_get_uri.startswith(host.webhook_base_url + "/instances/")


async def test_get_entity_reads_the_state_the_extension_stores(manager, store):
    # An entity's Instances row holds its SchedulerState as input: "exists" and "state", the state's JSON
    # text (azure-functions-durable-extension, EntityScheduler/SchedulerState.cs).
    key = new_id("k")
    for entity_key, scheduler in ((key, {"exists": True, "state": json.dumps({"n": 5})}),
                                  (key + "-gone", {"exists": False})):
        await store.hub.instances.upsert({
            "PartitionKey": f"@counter@{entity_key}", "RowKey": "", "Name": "@counter@", "RuntimeStatus": "Running",
            "CreatedTime": utcnow(), "LastUpdatedTime": utcnow(), "CustomStatus": "null",
            "Input": json.dumps(scheduler)})
    assert await manager.get_entity("Counter", key) == EntityState(f"@counter@{key}", True, {"n": 5})
    assert await manager.get_entity("counter", key + "-gone") == EntityState(f"@counter@{key}-gone", False)
    assert await manager.get_entity("counter", key + "-never") == EntityState(f"@counter@{key}-never", False)


async def test_get_entity_with_an_empty_key_reads_that_entity_over_both_transports(manager, store):
    # The management API addresses the empty key as '$' (HttpApiHandler.EmptyEntityKeySymbol, in
    # HandleGetEntityRequestAsync); 'entities/{name}/' with nothing after it is the route that LISTS entities.
    name = f"single{uuid.uuid4().hex[:8]}"
    await store.hub.instances.upsert({
        "PartitionKey": f"@{name}@", "RowKey": "", "Name": f"@{name}@", "RuntimeStatus": "Running",
        "CreatedTime": utcnow(), "LastUpdatedTime": utcnow(), "CustomStatus": "null",
        "Input": json.dumps({"exists": True, "state": json.dumps({"only": 1})})})
    assert await manager.get_entity(name.upper(), "") == EntityState(f"@{name}@", True, {"only": 1})


async def test_an_entity_whose_key_is_dollar_is_never_answered_for_by_another(managed, store):
    # The management API reads the key '$' as the empty key (HttpApiHandler.HandleGetEntityRequestAsync,
    # EmptyEntityKeySymbol): over the binding the entity '@name@$' cannot be addressed, and asking must be
    # refused, not answered with the state of '@name@'. Over storage it is read as any other key.
    manager, name = managed.manager, f"dollar{uuid.uuid4().hex[:8]}"
    for key, state in (("", {"empty": True}), ("$", {"dollar": True})):
        await store.hub.instances.upsert({
            "PartitionKey": f"@{name}@{key}", "RowKey": "", "Name": f"@{name}@", "RuntimeStatus": "Running",
            "CreatedTime": utcnow(), "LastUpdatedTime": utcnow(), "CustomStatus": "null",
            "Input": json.dumps({"exists": True, "state": json.dumps(state)})})
    assert await manager.get_entity(name, "") == EntityState(f"@{name}@", True, {"empty": True})
    if managed.kind == "storage":
        assert await manager.get_entity(name, "$") == EntityState(f"@{name}@$", True, {"dollar": True})
    else:
        with pytest.raises(NotSupportedByTransport, match=r"reads the key '\$' as the empty key.*connect"):
            await manager.get_entity(name, "$")


async def test_an_empty_reason_reaches_the_history_as_an_empty_reason_over_both_transports(manager, store):
    # The extension reads ?reason= as "" (HttpRequestMessageExtensions.GetQueryNameValuePairs) and passes it
    # to SuspendAsync/ResumeAsync/TerminateAsync (HttpApiHandler.Handle{Suspend,Resume,Terminate}Instance-
    # RequestAsync); the storage transport writes "" as given: an empty reason is not "no reason" on either.
    iid = await store.start("WaitForApproval")
    await wait_until(store, iid, lambda s: s.custom_status == "waiting for approval")
    await manager.suspend(iid, "")
    await wait_for(store, iid, RuntimeStatus.SUSPENDED)
    await manager.resume(iid, "")
    await wait_for(store, iid, RuntimeStatus.RUNNING)
    await manager.terminate(iid, "")
    await wait_for(store, iid, RuntimeStatus.TERMINATED)
    events = {e.type.name: e for e in (await store.hub.history.read(iid)).events}
    reasons = {t: events[t].get(prop) for t, prop in (("ExecutionSuspended", "Reason"),
                                                      ("ExecutionResumed", "Reason"),
                                                      ("ExecutionTerminated", "Input"))}
    assert reasons == {"ExecutionSuspended": "", "ExecutionResumed": "", "ExecutionTerminated": ""}


# --- listing ---------------------------------------------------------------------


async def test_pages_follow_continuation_tokens(manager, store, bulk):
    query = InstanceQuery(instance_id_prefix=bulk.prefix, page_size=50, show_input=True)
    pages = [page async for page in manager.pages(query)]
    assert [len(p) for p in pages] == [50, 50, 20]
    assert [bool(p.continuation_token) for p in pages] == [True, True, False]
    listed = [s for p in pages for s in p]
    assert sorted(s.instance_id for s in listed) == sorted(bulk.all)
    by_id = {s.instance_id: s for s in listed}
    assert by_id[bulk.alpha[3]].input == {"n": 3} and by_id[bulk.beta[7]].name == "BulkBeta"
    expected = [s async for s in store.iter_instances(query)]
    assert sorted(map(view, listed), key=_by_id) == sorted(map(view, expected), key=_by_id)


async def test_page_gives_one_page_and_its_token(manager, bulk):
    query = InstanceQuery(instance_id_prefix=bulk.prefix, page_size=50)
    first = await manager.page(query)
    assert len(first) == 50 and first.continuation_token
    second = await manager.page(replace(query, continuation_token=first.continuation_token))
    assert len(second) == 50 and not {s.instance_id for s in first} & {s.instance_id for s in second}


async def test_find_and_find_page_match_the_same_instances_over_both_transports(manager, bulk):
    # Over the binding the query language is evaluated here on the management API's listing; over storage
    # it is pushed down: both must return exactly the Failed instances of the BulkBeta batch, in id order.
    query = f"instanceId STARTS_WITH '{bulk.prefix}' AND name = 'BulkBeta' AND status = Failed"
    expected = sorted(bulk.failed)
    assert expected and set(expected) <= set(bulk.beta)
    assert [s.instance_id async for s in manager.find(query)] == expected
    listed, token = [], None
    for _ in range(1000):  # bounded: a token that never ends would fail here, not hang
        page = await manager.find_page(query, page_size=2, after=token)
        listed += [s.instance_id for s in page]
        token = page.continuation_token
        if token is None:
            break
    assert listed == expected


async def _follow(manager, query, after: str | None, want: int) -> tuple[list[str], str | None]:
    """Follow find_page from ``after`` until ``want`` matches (pages may be short, over the binding)."""
    listed: list[str] = []
    for _ in range(1000):
        page = await manager.find_page(query, page_size=5, after=after)
        listed += [s.instance_id for s in page]
        after = page.continuation_token
        if len(listed) >= want or after is None:
            break
    return listed, after


async def test_find_page_tokens_are_tied_to_their_query(manager, bulk):
    # A token of query A given with query B is refused (InvalidInput, what to do), never continued at A's
    # position under B (durable_mgmt/page_tokens.py).
    alpha = f"instanceId STARTS_WITH '{bulk.prefix}a'"
    beta = f"instanceId STARTS_WITH '{bulk.prefix}b'"
    first, token = await _follow(manager, alpha, None, 5)
    assert first == bulk.alpha[:len(first)] and token  # over the binding a page may hold more than 5 by then
    with pytest.raises(InvalidInput, match="belongs to another query.*start from the first page"):
        await manager.find_page(beta, page_size=5, after=token)
    # The same query given as a Query (parsed at another moment; no relative times) continues.
    rest, _ = await _follow(manager, Query.parse(alpha), token, 5)
    assert first + rest == bulk.alpha[:len(first) + len(rest)] and rest

    # Relative times: as text, later pages are parsed at the first page's moment (the token carries it), so
    # the pages continue; a Query parsed at another moment means other times and is refused.
    recent = f"{alpha} AND createdTime >= -1h"
    first, token = await _follow(manager, recent, None, 5)
    rest, _ = await _follow(manager, recent, token, 5)
    assert first + rest == bulk.alpha[:len(first) + len(rest)] and first and rest
    with pytest.raises(InvalidInput, match="another query"):
        await manager.find_page(Query.parse(recent, now=utcnow() + timedelta(minutes=5)), page_size=5, after=token)
    with pytest.raises(InvalidInput, match="is not one find_page returned"):
        await manager.find_page(alpha, page_size=5, after=escape_key(bulk.alpha[4]))  # a bare key: old style


async def test_instances_without_filter_lists_the_whole_hub(manager, store, bulk):
    listed = [s.instance_id async for s in manager.instances(InstanceQuery(page_size=50))]
    assert len(listed) == len(set(listed)) and set(bulk.all) <= set(listed)
    assert sorted(listed) == sorted([s.instance_id async for s in store.iter_instances(InstanceQuery())])


def _by_id(v: dict[str, Any]) -> str:
    return v["instance_id"]


@pytest.mark.parametrize("case", ["created_range", "later_batch", "statuses", "status_strings", "prefix",
                                  "name", "combined", "combined_none"])
async def test_query_filters(manager, store, bulk, case):
    b = bulk
    cases = {
        "created_range": (dict(created_from=b.t0, created_to=b.t_mid), set(b.alpha)),
        "later_batch": (dict(created_from=b.t_mid, created_to=b.t_end, instance_id_prefix=b.prefix),
                                set(b.beta)),
        "statuses": (dict(statuses=[RuntimeStatus.COMPLETED, RuntimeStatus.FAILED], instance_id_prefix=b.prefix),
                     set(b.completed + b.failed)),
        "status_strings": (dict(statuses=["pending"], instance_id_prefix=b.prefix),
                           set(b.all) - set(b.completed + b.failed)),
        "prefix": (dict(instance_id_prefix=b.prefix + "b00"), set(b.beta[:10])),
        "name": (dict(name="BulkBeta"), set(b.beta)),
        "combined": (dict(created_from=b.t0, created_to=b.t_end, statuses=["Pending"], name="BulkAlpha",
                          instance_id_prefix=b.prefix + "a01"), set(b.alpha[10:20])),
        "combined_none": (dict(created_from=b.t_mid, created_to=b.t_end, name="BulkAlpha"), set()),
    }
    filters, expected = cases[case]
    found = await manager.query(**filters, page_size=50)
    assert {s.instance_id for s in found} == expected and len(found) == len(expected)
    truth = [s async for s in store.iter_instances(InstanceQuery(**filters))]
    assert sorted(map(view, found), key=_by_id) == sorted(map(view, truth), key=_by_id)


# --- waiting and steering --------------------------------------------------------


async def test_wait_for_completion_returns_the_final_status(manager, store):
    iid = await store.start("HelloSequence")
    status = await manager.wait_for_completion(iid, timeout=15, retry_interval=0.1)
    assert status.runtime_status == RuntimeStatus.COMPLETED and status.output == HELLO
    assert view(status) == view(await store.get_status(iid, show_input=False))


async def test_wait_for_completion_times_out_with_the_last_status(manager, waiting):
    with pytest.raises(WaitTimeout) as caught:
        await manager.wait_for_completion(waiting, timeout=0.3, retry_interval=0.1)
    err = caught.value
    assert err.instance_id == waiting and err.timeout == 0.3
    assert err.status.runtime_status == RuntimeStatus.RUNNING
    assert err.status.custom_status == "waiting for approval"
    assert waiting in str(err) and "Running" in str(err)
    same_error("wait timeout", err, waiting)


async def test_terminate(manager, store):
    iid = await store.start("WaitForApproval")
    await wait_for(store, iid, RuntimeStatus.RUNNING)
    assert await manager.terminate(iid, "no longer needed") is None
    status = await manager.wait_for_completion(iid, timeout=15, retry_interval=0.1)
    assert status.runtime_status == RuntimeStatus.TERMINATED and status.output == "no longer needed"
    assert view(status) == view(await store.get_status(iid, show_input=False))


async def test_raise_event(manager, store):
    iid = await store.start("WaitForApproval")
    await wait_until(store, iid, lambda s: s.custom_status == "waiting for approval")
    await manager.raise_event(iid, "Approval", {"by": "boss", "ok": True})
    status = await manager.wait_for_completion(iid, timeout=15, retry_interval=0.1)
    assert status.output == {"approval": {"by": "boss", "ok": True}}
    assert status.custom_status == {"approved": {"by": "boss", "ok": True}}


async def test_suspend_and_resume(manager, store):
    iid = await store.start("WaitForApproval")
    await wait_until(store, iid, lambda s: s.custom_status == "waiting for approval")
    await manager.suspend(iid, "hold on")
    await wait_for(store, iid, RuntimeStatus.SUSPENDED)
    assert (await manager.status(iid)).runtime_status == RuntimeStatus.SUSPENDED
    await manager.raise_event(iid, "Approval", "while suspended")  # kept until resumed
    await manager.resume(iid, "go on")
    status = await manager.wait_for_completion(iid, timeout=15, retry_interval=0.1)
    assert status.runtime_status == RuntimeStatus.COMPLETED and status.output == {"approval": "while suspended"}


async def test_rewind_a_failed_instance(manager, store, tmp_path, monkeypatch):
    monkeypatch.setenv("ENGINE_TEST_STATE", str(tmp_path))  # this run's own "fixed" file
    iid = await manager.start("RewindableSequence")
    failed = await manager.wait_for_completion(iid, timeout=15, retry_interval=0.1)
    assert failed.runtime_status == RuntimeStatus.FAILED and "the setting is wrong" in str(failed.output)
    assert view(failed) == view(await store.get_status(iid, show_input=False))
    (tmp_path / "fixed").write_text("")
    await manager.rewind(iid, "setting fixed")
    status = await manager.wait_for_completion(iid, timeout=15, retry_interval=0.1)
    assert status.runtime_status == RuntimeStatus.COMPLETED
    assert status.output == ["Hello first!", f"fixed {iid}", "Hello third!"]
    assert (tmp_path / "SayHello.log").read_text().splitlines() == ['"first"', '"third"']  # "first" replayed


async def test_restart_with_a_new_id_and_with_the_same_id(manager, store):
    iid = await store.start("HelloSequence", {"again": 1}, instance_id=new_id("restart"))
    first = await wait_for(store, iid, RuntimeStatus.COMPLETED)

    other = await manager.restart(iid)
    assert other != iid and re.fullmatch(r"[0-9a-f]{32}", other)
    done = await manager.wait_for_completion(other, timeout=15, retry_interval=0.1)
    assert done.output == HELLO and (await manager.status(other)).input == {"again": 1}
    assert (await store.get_status(other)).name == "HelloSequence"

    assert await manager.restart(iid, new_instance_id=False) == iid
    again = await wait_until(store, iid, lambda s: s.execution_id != first.execution_id
                             and s.runtime_status == RuntimeStatus.COMPLETED)
    assert again.input == {"again": 1} and again.output == HELLO


# --- purge -----------------------------------------------------------------------


async def test_purge_instance(manager, store):
    iid = await store.start("HelloSequence")
    await wait_for(store, iid, RuntimeStatus.COMPLETED)
    assert await store.hub.history.rows(iid)
    result = await manager.purge_instance(iid)
    assert result.instances_deleted == 1
    assert await snapshot(store, iid) is None and await store.hub.history.rows(iid) == []
    assert await manager.exists(iid) is False


async def test_purge_by_filter(manager, store, waiting):
    t0 = utcnow()
    done = [await store.start("HelloSequence") for _ in range(3)]
    running = await store.start("WaitForApproval")
    t1 = utcnow()
    for iid in done:
        await wait_for(store, iid, RuntimeStatus.COMPLETED)
    # Nothing Failed in the range: nothing purged.
    assert (await manager.purge(created_from=t0, created_to=t1, statuses=["Failed"])).instances_deleted == 0
    result = await manager.purge(created_from=t0, created_to=t1)
    assert result.instances_deleted == 3
    for iid in done:
        assert await snapshot(store, iid) is None
    assert await manager.exists(running) and await manager.exists(waiting)  # not finished: kept
    assert (await manager.purge(created_from=t0, created_to=t1)).instances_deleted == 0
    await store.terminate(running)


async def test_purge_by_a_query_with_an_id_prefix_or_name_purges_only_its_matches(managed, store):
    # The management API's purge by filter has only the creation range and statuses (HttpApiHandler
    # HandleDeleteHistoryWithFiltersRequestAsync -> PurgeInstanceHistoryAsync(from, to, statuses)): a prefix or a
    # name sent to it is dropped, and every finished instance of the range would go.
    t0 = utcnow()
    other = await store.start("HelloSequence", instance_id=new_id("keep"))
    await wait_for(store, other, RuntimeStatus.COMPLETED)
    for narrowed in (InstanceQuery(created_from=t0, instance_id_prefix=new_id("nobody")),
                     InstanceQuery(created_from=t0, name="NoSuchOrchestrator")):
        if managed.kind == "binding":
            with pytest.raises(NotSupportedByTransport, match="InstanceManager.connect"):
                await managed.manager.purge(query=narrowed)
        else:
            assert (await managed.manager.purge(query=narrowed)).instances_deleted == 0
        assert await managed.manager.exists(other), f"{narrowed} purged an instance it does not match"


# --- errors: same class, same message, nothing changed -----------------------------


@pytest.mark.parametrize("operation", ["status", "terminate", "raise_event", "suspend", "resume", "rewind",
                                       "restart", "purge_instance"])
async def test_unknown_instance(managed, store, operation):
    iid = f"missing {operation}/ü?#"  # characters a URL path must carry escaped
    calls = {"status": lambda m: m.status(iid), "terminate": lambda m: m.terminate(iid, "why"),
             "raise_event": lambda m: m.raise_event(iid, "Approval", 1), "suspend": lambda m: m.suspend(iid),
             "resume": lambda m: m.resume(iid), "rewind": lambda m: m.rewind(iid),
             "restart": lambda m: m.restart(iid), "purge_instance": lambda m: m.purge_instance(iid)}
    with pytest.raises(InstanceNotFound) as caught:
        await calls[operation](managed.manager)
    assert type(caught.value) is InstanceNotFound
    assert caught.value.instance_id == iid and repr(iid) in str(caught.value)
    same_error(f"unknown {operation}", caught.value)
    assert await snapshot(store, iid) is None


async def _refused(store: TaskHubClient, iid: str, call, error: type[DurableError], case: str,
                   status: RuntimeStatus) -> DurableError:
    before = await snapshot(store, iid)
    with pytest.raises(error) as caught:
        await call
    err = caught.value
    assert type(err) is error
    assert err.instance_id == iid and repr(iid) in str(err)
    assert err.status == status
    same_error(case, err, iid)
    assert await snapshot(store, iid) == before
    return err


async def test_start_of_a_running_id(manager, store, waiting):
    await _refused(store, waiting, manager.start("WaitForApproval", instance_id=waiting), InstanceAlreadyExists,
                   "start running", RuntimeStatus.RUNNING)
    await _refused(store, waiting, manager.restart(waiting, new_instance_id=False), InstanceAlreadyExists,
                   "restart running", RuntimeStatus.RUNNING)


@pytest.mark.parametrize("operation", ["terminate", "raise_event", "suspend", "resume"])
async def test_steering_a_finished_instance(manager, store, finished, operation):
    call = {"terminate": lambda: manager.terminate(finished, "late"),
            "raise_event": lambda: manager.raise_event(finished, "Approval", "late"),
            "suspend": lambda: manager.suspend(finished), "resume": lambda: manager.resume(finished)}[operation]
    err = await _refused(store, finished, call(), InstanceNotRunning, f"{operation} finished",
                         RuntimeStatus.COMPLETED)
    assert "Completed" in str(err)


async def test_rewind_of_a_completed_instance(manager, store, finished):
    err = await _refused(store, finished, manager.rewind(finished, "why"), InstanceNotFailed, "rewind completed",
                         RuntimeStatus.COMPLETED)
    assert "Completed" in str(err) and "Failed" in str(err)


async def test_purge_of_a_running_instance(manager, store, waiting):
    err = await _refused(store, waiting, manager.purge_instance(waiting), InstanceNotTerminal, "purge running",
                         RuntimeStatus.RUNNING)
    assert "Running" in str(err)


# Bad input: refused by InstanceManager before any transport call, so nothing can change.

BAD_CALLS = {
    "start id with slash": (lambda m: m.start("HelloSequence", instance_id="a/b"), InvalidInstanceId, "'a/b'"),
    "start id with @": (lambda m: m.start("HelloSequence", instance_id="@x"), InvalidInstanceId, "'@x'"),
    "start empty id": (lambda m: m.start("HelloSequence", instance_id=""), InvalidInstanceId, "empty"),
    "start empty name": (lambda m: m.start(" "), InvalidInput, "orchestrator name"),
    "start input not JSON": (lambda m: m.start("HelloSequence", {"when": object()}), InvalidInput, "object"),
    "status empty id": (lambda m: m.status(""), InvalidInstanceId, "empty"),
    "terminate empty id": (lambda m: m.terminate(""), InvalidInstanceId, "empty"),
    "purge empty id": (lambda m: m.purge_instance(""), InvalidInstanceId, "empty"),
    "raise empty event name": (lambda m: m.raise_event("someone", ""), InvalidInput, "event name"),
    "raise data not JSON": (lambda m: m.raise_event("someone", "Approval", {1, 2}), InvalidInput, "set"),
    "unknown status": (lambda m: m.query(statuses=["Runing"]), InvalidFilter, "'Runing'"),
    "page size 0": (lambda m: m.query(page_size=0), InvalidFilter, "0"),
    "page size 1001": (lambda m: m.query(page_size=1001), InvalidFilter, "1001"),
    "reversed range": (lambda m: m.query(created_from=datetime(2024, 2, 1, tzinfo=timezone.utc),
                                         created_to=datetime(2024, 1, 1, tzinfo=timezone.utc)), InvalidFilter,
                       "2024-02-01"),
    "purge running status": (lambda m: m.purge(created_from=datetime(2024, 1, 1, tzinfo=timezone.utc),
                                               statuses=["Running"]), InvalidFilter, "Running"),
    "page token with a line break": (lambda m: m.page(InstanceQuery(continuation_token="x\r\nX-Evil: 1")),
                                     InvalidFilter, "continuation token"),
    "wait negative timeout": (lambda m: m.wait_for_completion("someone", timeout=-1), InvalidInput, "-1"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
async def test_bad_input_is_refused_before_the_transport(managed, case):
    call, error, named = BAD_CALLS[case]
    before = len(managed.transport.requests)
    with pytest.raises(error) as caught:
        await call(managed.manager)
    assert type(caught.value) is error, f"{type(caught.value).__name__}: {caught.value}"
    assert named in str(caught.value)
    assert len(managed.transport.requests) == before, "the transport was called"
    same_error(f"bad input: {case}", caught.value)
