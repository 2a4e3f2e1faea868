"""Classes 1 and 8 (and their neighbours): hostile values in ids, names, filters, tokens, dates and JSON.

Every case is one request to the real host, at both doors; each must be refused with the exact status
and a message naming the value or the rule, and must write nothing (storage snapshot before == after).
"""

from __future__ import annotations

import base64
import re
import contextlib
import json

import pytest

from durable_mgmt.errors import InstanceAlreadyExists, InvalidInput, InvalidInstanceId
from durable_mgmt.limits import MAX_JSON_DEPTH
from durable_mgmt.taskhub import TaskHubClient

from .support import WEBHOOKS, refused, send, snapshot

START = WEBHOOKS + "/orchestrators/E1_HelloSequence"
BIG = json.dumps("x" * 70_000)  # over 60 KiB as UTF-16: the input goes to a blob named after the id


def _token(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


# (case, method, path, query, body, status, words the message must hold)
CASES = [
    # class 1: ids that are not safe path segments, as raw and percent-encoded segments, with small and blob-sized input
    ("id %2E", "POST", START + "/%2E", "", "1", 400, ["made only of dots"]),
    ("id %2E%2E", "POST", START + "/%2E%2E", "", "1", 400, ["made only of dots"]),
    ("id %2e%2E big input", "POST", START + "/%2e%2E", "", BIG, 400, ["made only of dots"]),
    ("id ...", "POST", START + "/...", "", BIG, 400, ["made only of dots"]),
    ("id raw ..", "POST", START + "/..", "", "1", 400, ["made only of dots"]),
    ("id raw .", "POST", START + "/.", "", BIG, 400, ["made only of dots"]),
    ("id slash", "POST", START + "/a%2Fb", "", "1", 400, ["'/'"]),
    ("id backslash", "POST", START + "/a%5Cb", "", BIG, 400, ["'\\\\'"]),
    ("id hash", "POST", START + "/a%23b", "", "1", 400, ["'#'"]),
    ("id question", "POST", START + "/a%3Fb", "", "1", 400, ["'?'"]),
    ("id NUL", "POST", START + "/a%00b", "", "1", 400, ["U+0000"]),
    ("id CRLF (header injection)", "POST", START + "/a%0D%0ALocation:%20evil.example", "", "1", 400, ["U+000D"]),
    ("id DEL", "POST", START + "/a%7Fb", "", "1", 400, ["U+007F"]),
    ("id entity", "POST", START + "/@counter@k", "", "1", 400, ["reserved for durable entities"]),
    ("id too long", "POST", START + "/" + "a" * 257, "", "1", 400, ["257 characters", "at most 256"]),
    # names
    ("orchestrator ..", "POST", WEBHOOKS + "/orchestrators/%2E%2E/x1", "", "1", 400, ["doesn't exist"]),
    ("orchestrator unknown", "POST", WEBHOOKS + "/orchestrators/NoSuch", "", "1", 400,
     ["NoSuch", "Orchestrator functions"]),
    ("event name CR", "POST", WEBHOOKS + "/instances/none1/raiseEvent/a%0Db", "", "1", 400, ["event name", "U+000D"]),
    ("event name too long", "POST", WEBHOOKS + "/instances/none1/raiseEvent/" + "e" * 300, "", "1", 400,
     ["300 characters"]),
    # class 8: JSON bodies
    ("deep JSON array", "POST", START, "", "[" * 100_000 + "]" * 100_000, 400, [f"more than {MAX_JSON_DEPTH} levels"]),
    ("deep JSON object", "POST", START, "", '{"a":' * 5000 + "1" + "}" * 5000, 400, ["levels"]),
    ("deep JSON unbalanced", "POST", START, "", "[" * 200_000, 400, ["levels"]),
    ("deep event data", "POST", WEBHOOKS + "/instances/none1/raiseEvent/E", "", "[" * 50_000 + "]" * 50_000, 400,
     ["levels"]),
    ("NaN", "POST", START, "", '{"a": NaN}', 400, ["NaN", "finite"]),
    ("Infinity", "POST", START, "", "[-Infinity]", 400, ["-Infinity"]),
    ("huge float", "POST", START, "", "1e400", 400, ["too large for a double"]),
    ("huge integer", "POST", START, "", "9" * 5000, 400, ["Invalid JSON content"]),
    ("duplicate keys", "POST", START, "", '{"amount": 1, "amount": 1000000}', 400, ["'amount'", "appears twice"]),
    ("not JSON", "POST", START, "", "{nope", 400, ["Invalid JSON content"]),
    ("not UTF-8", "POST", START, "", b'"\xff\xfe"', 400, ["not UTF-8"]),
    # class 8: filters, tokens, dates, paging
    ("token not base64", "GET", WEBHOOKS + "/instances", "", None, 400, ["continuation token"]),
    ("time before year 1 in UTC", "GET", WEBHOOKS + "/instances", "createdTimeFrom=0001-01-01T00:00:00%2B01:00", None,
     400, ["createdTimeFrom", "outside the calendar"]),
    ("time after 9999 in UTC", "GET", WEBHOOKS + "/instances", "createdTimeTo=9999-12-31T23:59:59-01:00", None,
     400, ["createdTimeTo", "outside the calendar"]),
    ("purge time overflow", "DELETE", WEBHOOKS + "/instances", "createdTimeFrom=0001-01-01T00:00:00%2B14:00", None,
     400, ["createdTimeFrom"]),
    ("time year 10000", "GET", WEBHOOKS + "/instances", "createdTimeFrom=10000-01-01T00:00:00Z", None, 400,
     ["not an ISO 8601 time"]),
    ("top 0", "GET", WEBHOOKS + "/instances", "top=0", None, 400, ["top='0'", "1 to 1000"]),
    ("top huge", "GET", WEBHOOKS + "/instances", "top=99999999999999999999", None, 400, ["1 to 1000"]),
    ("status OData injection", "GET", WEBHOOKS + "/instances", "runtimeStatus=Completed'%20or%20'1'%20eq%20'1",
     None, 400, ["Unknown runtime status"]),
    ("bool not bool", "GET", WEBHOOKS + "/instances/x1", "showHistory=yes", None, 400, ["showHistory='yes'"]),
    ("instance id over 1 KiB", "GET", WEBHOOKS + "/instances/" + "^" * 1100, "", None, 400,
     ["1100 characters", "at most 1024"]),
    ("existing-id lookup, lone surrogate escape", "GET", WEBHOOKS + "/instances/%ED%A0%80", "", None, 404, ["exists"]),
    ("admin run, deep JSON", "POST", "/admin/functions/PurgeOldInstanceHistory", "", "[" * 100_000, 400, ["levels"]),
    ("admin run, duplicate keys", "POST", "/admin/functions/PurgeOldInstanceHistory", "",
     '{"input": "a", "input": 1}', 400, ["appears twice"]),
    # path traversal through an HTTP function's route (HttpStart's {functionName})
    ("HttpStart name ..", "POST", "/api/orchestrators/%2E%2E", "", "1", 400, ["made only of dots"]),
    ("HttpStart name climbing", "POST", "/api/orchestrators/E1_HelloSequence%2F..%2F..%2Fadmin", "", "1", 404, []),
    ("HttpStart deep body", "POST", "/api/orchestrators/E1_HelloSequence", "", "[" * 100_000, 400, ["levels"]),
    ("HttpStart NaN body", "POST", "/api/orchestrators/E1_HelloSequence", "", "NaN", 400, ["NaN"]),
    ("HttpSyncStart duplicate keys", "POST", "/api/orchestrators/E1_HelloSequence/wait", "", '{"a":1,"a":2}', 400,
     ["appears twice"]),
    ("QueryStatus prefix surrogate escape", "GET", "/api/QueryStatus", "instanceIdPrefix=%ED%A0%80", None, 200,
     []),
    ("QueryStatus date overflow", "GET", "/api/QueryStatus", "createdFrom=0001-01-01T00:00:00%2B05:00", None,
     400, ["outside the calendar"]),
    ("GetAllStatus odd token", "GET", "/api/GetAllStatus", "continuationToken=W10", None, 400, ["continuation token"]),
    # method confusion
    ("GET a start", "GET", START + "/m1", "", None, 405, ["use POST"]),
    ("PUT an instance", "PUT", WEBHOOKS + "/instances/m1", "", None, 405, ["GET, DELETE"]),
    ("TRACE terminate", "TRACE", WEBHOOKS + "/instances/m1/terminate", "", None, 405, ["use POST"]),
]

TOKENS = [
    ("list", []), ("empty dict", {}), ("other keys", {"a": 1}), ("number value", {"PartitionKey": 5}),
    ("list value", {"PartitionKey": ["x"]}), ("CRLF value", {"PartitionKey": "a\r\nx-evil: 1"}),
    ("surrogate value", {"PartitionKey": "\ud800"}), ("huge value", {"PartitionKey": "a" * 5000}),
    ("extra key", {"PartitionKey": "a", "RowKey": "", "NextTableName": "x"}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
async def test_refused_and_nothing_written(door, case):
    _, method, path, query, body, status, words = case
    if case[0] == "token not base64":
        headers = {"x-ms-continuation-token": "!!!not-base64!!!"}
    else:
        headers = {"Content-Type": "application/json"} if body is not None else {}
    before = await snapshot(door.host)
    answer = await send(method, door.url(path, query), headers=headers,
                        data=body.encode() if isinstance(body, str) else body)
    refused(answer, status, *words)
    assert await snapshot(door.host) == before


@pytest.mark.parametrize("name,token", TOKENS, ids=[t[0] for t in TOKENS])
async def test_odd_continuation_tokens_are_400(door, name, token):
    answer = await send("GET", door.url(WEBHOOKS + "/instances", "top=5"),
                        headers={"x-ms-continuation-token": _token(token)})
    refused(answer, 400, "continuation token", "previous page")


PREFIXES = [
    # (prefix as sent, status): a prefix ending in U+D7FF once made the range's upper bound a lone
    # surrogate (a 500); it is ordinary text, so it is answered. Injection text matches nothing.
    ("%ED%9F%BF", 200), ("a%ED%9F%BF", 200), ("%EF%BF%BF", 200),
    ("'%20or%20PartitionKey%20ne%20'", 200), ("x')%20or%20(true", 200),
]


@pytest.mark.parametrize("prefix,status", PREFIXES, ids=[p[0] for p in PREFIXES])
async def test_odd_prefixes_are_answered_not_500(door, prefix, status):
    with contextlib.suppress(InstanceAlreadyExists):
        await TaskHubClient(door.host.hub).start("E1_HelloSequence", instance_id="visible-one")
    answer = await send("GET", door.url(WEBHOOKS + "/instances", f"instanceIdPrefix={prefix}"))
    assert answer.status == status, answer.text
    assert answer.json() == []  # the injection text matched nothing; the range is closed


# --- the same rules through the library and the CLI: one place, every door ------------------------------

LIBRARY_IDS = [(".", "made only of dots"), ("..", "made only of dots"), ("....", "made only of dots"),
               ("a/b", "'/'"), ("\ud800x", "U+D800"), ("a\x00", "U+0000"), ("@e@k", "entities"), ("", "empty")]


@pytest.mark.parametrize("bad_id,words", LIBRARY_IDS, ids=[repr(i[0]) for i in LIBRARY_IDS])
async def test_library_start_refuses_the_same_ids_before_any_write(anonymous, bad_id, words):
    host = anonymous.host
    before = await snapshot(host)
    with pytest.raises(InvalidInstanceId, match=re.escape(words)):
        await TaskHubClient(host.hub).start("E1_HelloSequence", {"big": "x" * 70_000}, instance_id=bad_id)
    from durable_mgmt import InstanceManager
    from durable_mgmt.transports import StorageTransport

    manager = InstanceManager(StorageTransport(host.hub))
    with pytest.raises(InvalidInstanceId):
        await manager.start("E1_HelloSequence", 1, instance_id=bad_id)
    assert await snapshot(host) == before


async def test_library_refuses_json_the_http_door_refuses(anonymous):
    host = anonymous.host
    before = await snapshot(host)
    deep: list = []
    for _ in range(MAX_JSON_DEPTH + 5):
        deep = [deep]
    with pytest.raises(InvalidInput, match="levels"):
        await TaskHubClient(host.hub).start("E1_HelloSequence", deep)
    with pytest.raises(InvalidInput, match="not JSON-serializable"):
        await TaskHubClient(host.hub).start("E1_HelloSequence", {"a": float("nan")})
    with pytest.raises(InvalidInput, match="appears twice"):
        await TaskHubClient(host.hub).start("E1_HelloSequence", input_json='{"a":1,"a":2}')
    with pytest.raises(InvalidInput, match="surrogate"):
        await TaskHubClient(host.hub).start("E1_HelloSequence\ud800")
    assert await snapshot(host) == before


def test_cli_refuses_a_dot_id_with_the_same_rule(anonymous, connection_string):
    from click.testing import CliRunner

    from durable_mgmt.cli import durable

    result = CliRunner().invoke(durable, ["start-new", "--function-name", "E1_HelloSequence", "--id", "..",
                                      "--task-hub-name", anonymous.host.hub_name],
                                env={"AzureWebJobsStorage": connection_string})
    assert result.exit_code != 0
    assert "made only of dots" in result.output


async def test_storage_refusals_are_400_not_503(anonymous):
    """A request storage refuses as invalid is the caller's 400 (StorageRefused), not an outage's 503."""
    from durable_mgmt.errors import StorageRefused, http_status_of
    from durable_mgmt.taskhub.storage import map_storage_errors

    hub = anonymous.host.hub
    with pytest.raises(StorageRefused, match="HTTP 400") as caught:
        with map_storage_errors("creating table 'x!'"):
            await hub.table_service.create_table("x!")  # Azurite answers 400, as Azure does
    assert http_status_of(caught.value) == 400


async def test_escaped_lone_surrogates_are_stored_and_read_back_not_500(door):
    """'"\\ud800"' is valid JSON (RFC 8259 allows the escape); it has no UTF-8 form, so answers carry it escaped."""
    iid = f"surrogate-{door.name}"
    body = '{"text": "\\ud800 alone"}'
    answer = await send("POST", door.url(f"{START}/{iid}"), data=body, headers={"Content-Type": "application/json"})
    assert answer.status == 202, answer.text
    status = await send("GET", door.url(f"{WEBHOOKS}/instances/{iid}"))
    assert status.status == 202 and "\\ud800 alone" in status.text
    listing = await send("GET", door.url(f"{WEBHOOKS}/instances", f"instanceIdPrefix={iid}&showInput=true"))
    assert listing.status == 200 and "\\ud800 alone" in listing.text
    every = await send("GET", door.host.rpc_base_url + f"instances?instanceIdPrefix={iid}&showInput=true")
    assert every.status == 200 and "\\ud800 alone" in every.text  # the internal endpoint streams every match


ADDRESSABLE = [("%252E%252E", "%2E%2E"), ("%EF%BC%8E%EF%BC%8E", "\uff0e\uff0e"), ("a.b.", "a.b."),
               ("%2E%2Ex", "..x"), ("caf%C3%A9", "caf\u00e9")]


@pytest.mark.parametrize("sent,stored", ADDRESSABLE, ids=[a[0] for a in ADDRESSABLE])
async def test_ids_that_look_like_tricks_but_are_plain_stay_addressable(door, sent, stored):
    """Double-encoded dots, full-width dots, trailing dots: ordinary ids, stored as decoded once, and every
    operation reaches the same instance (nothing collapses them)."""
    answer = await send("POST", door.url(f"{START}/{sent}"), data="1", headers={"Content-Type": "application/json"})
    assert answer.status == 202, answer.text
    assert answer.json()["id"] == stored
    status = await send("GET", door.url(f"{WEBHOOKS}/instances/{sent}"))
    assert status.status == 202 and status.json()["instanceId"] == stored
    assert (await send("POST", door.url(f"{WEBHOOKS}/instances/{sent}/terminate"))).status == 202
    assert (await TaskHubClient(door.host.hub).get_status(stored)).instance_id == stored
