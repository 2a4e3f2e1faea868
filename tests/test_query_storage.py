"""The filter language over a real Instances table (Azurite): pushdown + client filter == plain Python.

Rows are written directly (as older tools and other hosts wrote them), with
ids that need key escaping, entity rows that must never show, and a large
input kept in a blob. Random queries are generated together with an
independent Python predicate (no code of durable_mgmt.query), and the two
must select the same instances, in id order.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from durable_mgmt import CountRequest, InstanceManager
from durable_mgmt.errors import InvalidInput
from durable_mgmt.query import Field, Query
from durable_mgmt.page_tokens import PageToken
from durable_mgmt.taskhub import TaskHub, escape_key
from durable_mgmt.transports import StorageTransport

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
NAMES = ["A", "Ab", "B", "Order", "OrderLine", "it's"]
STATUSES = ["Pending", "Running", "Completed", "Failed", "Terminated", "Suspended", "ContinuedAsNew", "Canceled"]
CUSTOM = [None, "waiting", "waiting for approval", {"step": 1}, {"step": 2}, 7, "it's done"]
NEEDLE = "needle-in-a-blob"


def _text(value):
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def make_truth(rng: random.Random) -> list[dict]:
    ids = {"x#001", "q?002", "Ord^003", "back\\004"}  # every character that PartitionKeys escape
    while len(ids) < 220:
        stem = rng.choice(["ord-", "ord/", "Ord^", "x#", "q?", "back\\", "z-", "Order"])
        ids.add(f"{stem}{rng.randrange(1000):03d}")
    rows = []
    for iid in sorted(ids):
        created = NOW - timedelta(minutes=rng.randrange(0, 60 * 24 * 10))
        rows.append({"id": iid, "name": rng.choice(NAMES), "status": rng.choice(STATUSES), "created": created,
                     "updated": created + timedelta(minutes=rng.randrange(0, 600)),
                     "custom": rng.choice(CUSTOM), "input": {"n": rng.randrange(50), "tag": rng.choice("abc")},
                     "output": rng.choice([None, "ok", {"total": rng.randrange(5)}])})
    rows[7]["input"] = {"big": "x" * 70_000, "mark": NEEDLE}  # over 60 KiB: kept in a blob
    return rows


@pytest.fixture(scope="module")
async def seeded(account):
    rng = random.Random(1301)
    truth = make_truth(rng)
    name = f"Q{rng.randrange(10**9)}x{random.randrange(10**6)}"
    async with TaskHub(account, name) as hub:
        await hub.create_if_not_exists()

        import asyncio

        sem = asyncio.Semaphore(16)

        async def put(r):
            async with sem:
                await hub.instances.upsert({
                    "PartitionKey": escape_key(r["id"]), "RowKey": "", "Name": r["name"], "RuntimeStatus": r["status"],
                    "CreatedTime": r["created"], "LastUpdatedTime": r["updated"],
                    "CustomStatus": json.dumps(r["custom"]), "Input": json.dumps(r["input"]),
                    "Output": json.dumps(r["output"]), "ExecutionId": "e", "TaskHubName": name})

        await asyncio.gather(*(put(r) for r in truth))
        # Entity rows share the table ("@name@key") and must never be listed or counted.
        for key in ("@counter@k1", "@order@A"):
            await hub.instances.upsert({"PartitionKey": key, "RowKey": "", "Name": "A", "RuntimeStatus": "Running",
                                        "CreatedTime": NOW, "LastUpdatedTime": NOW, "CustomStatus": "null"})
        yield InstanceManager(StorageTransport(hub)), truth
        await hub.delete()


# --- a random query and its independent Python predicate ----------------------

def _lit(v):
    return "'" + v.replace("'", "''") + "'"


def _iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def random_predicate(rng: random.Random, truth: list[dict]):
    row = rng.choice(truth)
    kind = rng.choice(["id", "name", "status", "created", "updated", "custom", "input", "output"])
    if kind == "id":
        v = row["id"]
        op = rng.choice(["=", "!=", "IN", "NOT IN", "STARTS_WITH", "NOT STARTS_WITH", "<", ">=", "CONTAINS"])
        if op in ("STARTS_WITH", "NOT STARTS_WITH", "CONTAINS"):
            v = v[:rng.randrange(1, 5)] if op != "CONTAINS" else v[1:3]
        if op in ("IN", "NOT IN"):
            vs = [v, rng.choice(truth)["id"], "nope"]
            text = f"instanceId {op} ({', '.join(_lit(x) for x in vs)})"
            return text, (lambda r: (r["id"] in vs) == (op == "IN"))
        fn = {"=": lambda x: x == v, "!=": lambda x: x != v, "<": lambda x: x < v, ">=": lambda x: x >= v,
              "STARTS_WITH": lambda x: x.startswith(v), "NOT STARTS_WITH": lambda x: not x.startswith(v),
              "CONTAINS": lambda x: v in x}[op]
        return f"instanceId {op} {_lit(v)}", (lambda r: fn(r["id"]))
    if kind == "name":
        v = rng.choice(NAMES + ["Or", "C"])
        op = rng.choice(["=", "!=", "<", "<=", ">", ">=", "STARTS_WITH", "NOT STARTS_WITH", "CONTAINS", "BETWEEN"])
        if op == "BETWEEN":
            lo, hi = sorted([v, rng.choice(NAMES)])
            return f"name BETWEEN {_lit(lo)} AND {_lit(hi)}", (lambda r: lo <= r["name"] <= hi)
        fn = {"=": lambda x: x == v, "!=": lambda x: x != v, "<": lambda x: x < v, "<=": lambda x: x <= v,
              ">": lambda x: x > v, ">=": lambda x: x >= v, "STARTS_WITH": lambda x: x.startswith(v),
              "NOT STARTS_WITH": lambda x: not x.startswith(v), "CONTAINS": lambda x: v in x}[op]
        return f"name {op} {_lit(v)}", (lambda r: fn(r["name"]))
    if kind == "status":
        vs = rng.sample(STATUSES, rng.randrange(1, 4))
        op = rng.choice(["=", "!=", "IN", "NOT IN"])
        if op in ("=", "!="):
            v = vs[0]
            word = rng.choice([v, v.lower(), _lit(v.upper())])
            return f"status {op} {word}", (lambda r: (r["status"] == v) == (op == "="))
        return f"status {op} ({', '.join(vs)})", (lambda r: (r["status"] in vs) == (op == "IN"))
    if kind in ("created", "updated"):
        col = "createdTime" if kind == "created" else "lastUpdatedTime"
        if rng.random() < 0.5:
            hours = rng.randrange(1, 240)
            t, word = NOW - timedelta(hours=hours), f"-{hours}h"
        else:
            t = row[kind] + timedelta(microseconds=rng.choice([0, 1, -1]))
            word = _iso(t)
        op = rng.choice(["<", "<=", ">", ">=", "BETWEEN", "NOT BETWEEN"])
        if "BETWEEN" in op:
            t2 = t + timedelta(hours=rng.randrange(1, 72))
            inside = lambda r: t <= r[kind] <= t2  # noqa: E731
            return (f"{col} {op} {word} AND {_iso(t2)}",
                    (lambda r: inside(r) == (op == "BETWEEN")))
        fn = {"<": lambda x: x < t, "<=": lambda x: x <= t, ">": lambda x: x > t, ">=": lambda x: x >= t}[op]
        return f"{col} {op} {word}", (lambda r: fn(r[kind]))
    col = {"custom": "customStatus", "input": "input", "output": "output"}[kind]
    value = _text(row[kind])
    op = rng.choice(["=", "!=", "CONTAINS", "NOT CONTAINS", "STARTS_WITH", "IN"])
    if kind == "input" and rng.random() < 0.2:
        op, value = "CONTAINS", NEEDLE
    if op in ("CONTAINS", "NOT CONTAINS", "STARTS_WITH") and len(value) > 3:
        value = value[1:5] if op != "STARTS_WITH" else value[:4]
    if op == "IN":
        vs = [value, _text(rng.choice(truth)[kind])]
        return f"{col} IN ({', '.join(_lit(x) for x in vs)})", (lambda r: _text(r[kind]) in vs)
    fn = {"=": lambda x: x == value, "!=": lambda x: x != value, "CONTAINS": lambda x: value in x,
          "NOT CONTAINS": lambda x: value not in x, "STARTS_WITH": lambda x: x.startswith(value)}[op]
    return f"{col} {op} {_lit(value)}", (lambda r: fn(_text(r[kind])))


def random_query(rng: random.Random, truth: list[dict], depth: int = 0):
    roll = rng.random()
    if depth >= 2 or roll < 0.4:
        return random_predicate(rng, truth)
    if roll < 0.5:
        text, fn = random_query(rng, truth, depth + 1)
        return f"NOT ({text})", (lambda r: not fn(r))
    word = "AND" if roll < 0.8 else "OR"
    parts = [random_query(rng, truth, depth + 1) for _ in range(rng.randrange(2, 4))]
    text = f" {word} ".join(f"({t})" for t, _ in parts)
    if word == "AND":
        return text, (lambda r: all(f(r) for _, f in parts))
    return text, (lambda r: any(f(r) for _, f in parts))


async def _found(manager, query) -> list[str]:
    return [s.instance_id async for s in manager.find(query, fields=(Field.CUSTOM_STATUS,))]


async def test_random_queries_select_what_plain_python_selects(seeded):
    manager, truth = seeded
    rng = random.Random(7)
    pushed_some = client_some = 0
    for _ in range(90):
        text, predicate = random_query(rng, truth)
        query = Query.parse(text, now=NOW)
        pushed_some += query.pushed is not None
        client_some += query.client is not None
        expected = sorted((r["id"] for r in truth if predicate(r)), key=escape_key)
        assert await _found(manager, query) == expected, f"query: {text}\nplan: {manager.explain(query)}"
    assert pushed_some > 30 and client_some > 30  # both halves of the plan were exercised


@pytest.mark.parametrize("text,predicate", [
    ("", lambda r: True),
    ("instanceId STARTS_WITH 'ord/'", lambda r: r["id"].startswith("ord/")),
    ("instanceId IN ('x#001', 'q?002', 'Ord^003', 'back\\004')",
     lambda r: r["id"] in ("x#001", "q?002", "Ord^003", "back\\004")),
    ("instanceId NOT STARTS_WITH 'ord' AND name = 'it''s'", lambda r: not r["id"].startswith("ord") and r["name"] == "it's"),
    (f"input CONTAINS '{NEEDLE}'", lambda r: NEEDLE in _text(r["input"])),
    ("customStatus = ''", lambda r: r["custom"] is None),
    ("customStatus = 'waiting'", lambda r: r["custom"] == "waiting"),
    ("name = 'A'", lambda r: r["name"] == "A"),  # the entity rows named A stay out
])
async def test_escaped_ids_entities_and_blobs(seeded, text, predicate):
    manager, truth = seeded
    expected = sorted((r["id"] for r in truth if predicate(r)), key=escape_key)
    assert expected, "the case must select something"
    assert await _found(manager, Query.parse(text, now=NOW)) == expected


@pytest.mark.parametrize("group_by,key", [("status", lambda r: r["status"]), ("name", lambda r: r["name"]),
                                          ("customStatus", lambda r: _text(r["custom"]))])
@pytest.mark.parametrize("text,predicate", [("", lambda r: True),
                                            ("createdTime > -5d AND customStatus != 'waiting'",
                                             lambda r: r["created"] > NOW - timedelta(days=5) and r["custom"] != "waiting"),
                                            # client-side only: the inputs (one in a blob) and an id substring
                                            (f"input CONTAINS '\"tag\":\"a\"' OR input CONTAINS '{NEEDLE}' "
                                             "OR instanceId CONTAINS '#'",
                                             lambda r: '"tag":"a"' in _text(r["input"]) or NEEDLE in _text(r["input"])
                                             or "#" in r["id"]),
                                            ("lastUpdatedTime > -2d",
                                             lambda r: r["updated"] > NOW - timedelta(days=2))])
async def test_grouped_counts_equal_a_plain_tally(seeded, group_by, key, text, predicate):
    manager, truth = seeded
    result = await manager.count(CountRequest(Query.parse(text, now=NOW), group_by))
    tally = Counter(key(r) for r in truth if predicate(r))
    assert result.groups == dict(tally)
    assert result.total == sum(tally.values())
    assert list(result.groups.values()) == sorted(result.groups.values(), reverse=True)


@pytest.mark.parametrize("fields", [(), (Field.CUSTOM_STATUS,), (Field.INPUT, Field.OUTPUT)])
async def test_find_gives_every_value_as_written_and_as_reading_one_row_does(seeded, fields):
    # find converts storage's entities straight to statuses (no plain copy, no InstanceRow): every value
    # must still be the one written, and equal to what the single-row read (InstanceRow) gives.
    manager, truth = seeded
    hub = manager.transport.hub
    by_id = {r["id"]: r for r in truth}
    found = [s async for s in manager.find(None, fields=fields)]
    assert [s.instance_id for s in found] == sorted(by_id, key=escape_key)
    for s in found:
        r = by_id[s.instance_id]
        assert (s.name, s.runtime_status.value, s.created_time, s.last_updated_time) == (
            r["name"], r["status"], r["created"], r["updated"])
        assert s.created_time.tzinfo is timezone.utc and s.last_updated_time.tzinfo is timezone.utc
        assert s.custom_status == (r["custom"] if Field.CUSTOM_STATUS in fields else None)
        assert s.input == (r["input"] if Field.INPUT in fields else None)  # row 7's input comes from its blob
        assert s.output == (r["output"] if Field.OUTPUT in fields else None)
    for s in found[::25] + [found[[s.instance_id for s in found].index(truth[7]["id"])]]:
        row = await hub.instances.read(s.instance_id, with_input=Field.INPUT in fields,
                                       with_output=Field.OUTPUT in fields)
        one = row.to_status(show_input=Field.INPUT in fields)  # every column: compare those find selected
        assert (s.instance_id, s.name, s.runtime_status, s.created_time, s.last_updated_time, s.input,
                s.output) == (one.instance_id, one.name, one.runtime_status, one.created_time,
                              one.last_updated_time, one.input, one.output)


async def test_a_status_converted_from_an_entity_is_the_one_reading_the_row_gives(seeded):
    # status_from_entity fills the frozen dataclass directly (instance_row._status, skipping its __init__
    # for speed): the object must be the one the single-row read (InstanceRow.to_status) builds, every
    # field set, equal and printed alike.
    from dataclasses import fields

    from durable_mgmt.models import InstanceStatus
    from durable_mgmt.taskhub.instance_row import status_from_entity

    manager, truth = seeded
    hub = manager.transport.hub
    for r in [t for t in truth if t is not truth[7]][:25]:  # row 7's input is in a blob: not in its entity
        entity = await hub.instances.client.get_entity(escape_key(r["id"]), "")
        fast = status_from_entity(entity)
        assert set(vars(fast)) == {f.name for f in fields(InstanceStatus)}
        one = (await hub.instances.read(r["id"], with_input=True, with_output=True)).to_status(show_input=True)
        assert fast == one and repr(fast) == repr(one)
        assert fast == InstanceStatus(**vars(fast))


async def test_the_next_page_is_requested_before_the_caller_works_on_this_one(seeded):
    # plain_pages' prefetch: the request for page n+1 must leave before the caller's (synchronous) work on
    # page n, not when the caller comes back for page n+1 (it did, so nothing overlapped).
    from durable_mgmt.taskhub.instances import plain_pages

    manager, _ = seeded
    events: list[str] = []
    pager = manager.transport.hub.instances.client.query_entities(
        "RuntimeStatus ne @s", parameters={"s": "-"}, select=["PartitionKey"], results_per_page=50,
        raw_request_hook=lambda _: events.append("request")).by_page()
    async for rows, _ in plain_pages(pager, plain=False):
        events.append("work")
    pages = events.count("work")
    assert pages >= 4
    # Page 1 asked for; then each next page asked for before the work on the one before it.
    assert events == ["request"] + ["request", "work"] * (pages - 1) + ["work"]


def test_count_refuses_an_unknown_grouping():
    from durable_mgmt import InvalidInput

    with pytest.raises(InvalidInput, match="Cannot group by 'color': group by one of status, name, customStatus"):
        CountRequest("", "color")


def test_explain_says_what_is_pushed_down_and_what_is_filtered_here(seeded):
    manager, _ = seeded
    plan = manager.explain("status = Failed AND output CONTAINS 'boom' AND instanceId STARTS_WITH 'a/'",
                           fields=[Field.CUSTOM_STATUS])
    assert plan.pushed_down == "status = Failed AND instanceId STARTS_WITH 'a/'"
    assert plan.filtered_here == "output CONTAINS 'boom' AND instanceId STARTS_WITH 'a/'"  # prefixes re-checked
    assert plan.storage_filter == ("( RuntimeStatus eq 'Failed' and ( PartitionKey ge 'a^0' and PartitionKey lt 'a^1' ) )"
                                   " and (PartitionKey lt '@' or PartitionKey ge 'A')")
    assert plan.columns == ("PartitionKey", "Name", "RuntimeStatus", "CreatedTime", "LastUpdatedTime",
                            "CustomStatus", "Output")


# --- hostile review of issue 13 -------------------------------------------------------------------

async def test_a_two_thousand_id_in_list_works_and_equals_plain_python(seeded):
    manager, truth = seeded
    wanted = [r["id"] for r in truth[::3]] + [f"absent-{i}" for i in range(2000 - len(truth[::3]))]
    text = "instanceId IN (" + ", ".join("'" + i.replace("'", "''") + "'" for i in wanted) + ") AND name != 'B'"
    query = Query.parse(text, now=NOW)
    expected = sorted((r["id"] for r in truth if r["id"] in set(wanted) and r["name"] != "B"), key=escape_key)
    assert expected and await _found(manager, query) == expected  # was HTTP 431 (the whole list in the URL)
    plan = manager.explain(query)
    assert plan.pushed_down == "name != 'B'" and plan.filtered_here.startswith("instanceId IN (")


ASTRAL = {"e\U0001F600x": "n\U0001F600a", "e\U0001F601y": "n\U0001F601b", "e\ue000z": "n\ue000c",
          "e\ud7fez": "n\ud7fed", "ez": "nz"}


@pytest.fixture(scope="module")
async def astral(account):
    name = f"Qa{random.randrange(10**9)}"
    async with TaskHub(account, name) as hub:
        await hub.create_if_not_exists()
        for iid, nm in ASTRAL.items():
            await hub.instances.upsert({"PartitionKey": escape_key(iid), "RowKey": "", "Name": nm,
                                        "RuntimeStatus": "Running", "CreatedTime": NOW, "LastUpdatedTime": NOW,
                                        "CustomStatus": "null", "ExecutionId": "e", "TaskHubName": name})
        yield InstanceManager(StorageTransport(hub))
        await hub.delete()


@pytest.mark.parametrize("field,op,value", [
    (f, op, v) for f in ("instanceId", "name") for op in ("STARTS_WITH", "NOT STARTS_WITH", ">", "<", ">=")
    for v in ("\U0001F600", "\ue000", "\ud7fe", "\uffff", "\U0001F600x")])
async def test_prefixes_and_orders_with_astral_characters_match_exactly(astral, field, op, value):
    # Storage orders by UTF-16 code unit, Python by code point: an astral prefix once matched e😁y as well.
    col = 0 if field == "instanceId" else 1
    prefix = ("e" if field == "instanceId" else "n") + value
    tests = {"STARTS_WITH": lambda s: s.startswith(prefix), "NOT STARTS_WITH": lambda s: not s.startswith(prefix),
             ">": lambda s: s > prefix, "<": lambda s: s < prefix, ">=": lambda s: s >= prefix}
    expected = {iid for iid, nm in ASTRAL.items() if tests[op]((iid, nm)[col])}
    found = {s.instance_id async for s in astral.find(Query.parse(f"{field} {op} '{prefix}'", now=NOW))}
    assert found == expected


@pytest.mark.parametrize("page_size,max_scanned", [(9, 5000), (50, 60)])
async def test_find_page_pages_concatenate_to_find(seeded, page_size, max_scanned):
    # InstanceManager.find_page (the dashboard's list): following its tokens yields exactly what find
    # streams, in the same order, whatever the page size and however early a page stops scanning.
    manager, truth = seeded
    rng = random.Random(page_size)
    for _ in range(4):
        text, _ = random_query(rng, truth)
        query = Query.parse(text, now=NOW)
        expected = await _found(manager, query)
        got, token, pages = [], None, 0
        while True:
            page = await manager.find_page(query, page_size=page_size, after=token, max_scanned=max_scanned)
            assert len(page) <= page_size
            got.extend(s.instance_id for s in page)
            pages += 1
            token = page.continuation_token
            if token is None:
                break
            assert pages < 400, f"paging does not end: {text}"
        assert got == expected, f"query: {text}\npage size {page_size}"


@pytest.mark.parametrize("after", ["'", "x' or true", "\x00", "~" * 3000, "\ud800", "", "@counter@k1",
                                   "fp1.0123456789abcdef.99999999999999999999.k", "fp1.zz23456789abcdef.0.k"])
async def test_find_page_survives_hostile_tokens(seeded, after):
    # A token is client text (a dashboard URL): garbage is refused with what to do, never crashes or injects.
    manager, truth = seeded
    with pytest.raises(InvalidInput, match="surrogate" if after == "\ud800" else "start from the first page"):
        await manager.find_page(None, page_size=5, after=after)


async def test_a_well_formed_token_around_a_hostile_position_pages_on_safely(seeded):
    # The position inside a token is client text too: it is only ever compared as a key, never spliced.
    manager, truth = seeded
    for position in ("'", "x' or true", "~" * 3000, "@counter@k1"):
        token = str(PageToken.of(Query.parse(None), position))
        page = await manager.find_page(None, page_size=5, after=token)
        assert all(escape_key(s.instance_id) > position for s in page)
