"""Classes 2-6, 9, 10 and their neighbours: who may reach what, and what one request may cost.

Cross-site and DNS-rebinding requests (Host, Origin, CORS preflight), the internal endpoint's secret,
bounded waits, links built from the host's own address, hubs that callers may not create, body and
listing limits, and setting values that never appear in a message. Every refused request is checked
to have written nothing.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from durable_mgmt.taskhub import TaskHubClient

from .support import WEBHOOKS, refused, send, snapshot

START = WEBHOOKS + "/orchestrators/E1_HelloSequence"

# --- class 2: Host and Origin -------------------------------------------------------------------------

FORGED = [  # (case, method, path, headers, body, status, words)
    ("rebinding Host reads instances", "GET", WEBHOOKS + "/instances", {"Host": "attacker.example:7071"}, None,
     403, ["Host 'attacker.example:7071' is not allowed", "DNS rebinding"]),
    ("rebinding Host, trailing dot", "GET", WEBHOOKS + "/instances", {"Host": "attacker.example.:7071"}, None,
     403, ["not allowed"]),
    ("Host with userinfo", "GET", WEBHOOKS + "/instances", {"Host": "localhost@attacker.example"}, None,
     403, ["not allowed"]),
    ("Host localhost.attacker", "GET", WEBHOOKS + "/instances", {"Host": "localhost.attacker.example"}, None,
     403, ["not allowed"]),
    ("simple cross-site POST start", "POST", START + "/xs1",
     {"Origin": "http://attacker.example", "Content-Type": "text/plain"}, "1", 403,
     ["Origin 'http://attacker.example' is not allowed"]),
    ("cross-site purge", "DELETE", WEBHOOKS + "/instances", {"Origin": "https://attacker.example"}, None, 403,
     ["Origin"]),
    ("cross-site admin run", "POST", "/admin/functions/PurgeOldInstanceHistory",
     {"Origin": "http://attacker.example", "Content-Type": "text/plain"}, '{"input": ""}', 403, ["Origin"]),
    ("cross-site HTTP function", "POST", "/api/orchestrators/E1_HelloSequence",
     {"Origin": "http://attacker.example", "Content-Type": "text/plain"}, "1", 403, ["Origin"]),
    ("other localhost port is another origin", "POST", START + "/xs2",
     {"Origin": "http://localhost:3000", "Content-Type": "text/plain"}, "1", 403, ["Origin"]),
    ("Origin null (sandboxed frame)", "POST", START + "/xs3", {"Origin": "null"}, "1", 403, ["Origin 'null'"]),
    ("cross-site fetch without Origin", "POST", START + "/xs4",
     {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}, "1", 403, ["cross-site"]),
    ("preflight from a foreign origin", "OPTIONS", START + "/xs5",
     {"Origin": "http://attacker.example", "Access-Control-Request-Method": "POST"}, None, 403, ["Origin"]),
]


@pytest.mark.parametrize("case", FORGED, ids=[c[0] for c in FORGED])
async def test_cross_site_and_rebinding_requests_are_refused(door, case):
    _, method, path, headers, body, status, words = case
    before = await snapshot(door.host)
    answer = await send(method, door.url(path), headers=headers, data=body)
    refused(answer, status, *words)
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert await snapshot(door.host) == before


ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "app.localhost"]


@pytest.mark.parametrize("host_header", ALLOWED_HOSTS)
async def test_loopback_names_and_addresses_are_served(door, host_header):
    port = door.host.port
    answer = await send("GET", door.url(WEBHOOKS + "/instances", "top=1"), headers={"Host": f"{host_header}:{port}"})
    assert answer.status == 200, answer.text
    same_origin = {"Origin": f"http://{host_header}:{port}", "Host": f"{host_header}:{port}"}
    assert (await send("GET", door.url(WEBHOOKS + "/instances", "top=1"), headers=same_origin)).status == 200


async def test_configured_origin_gets_cors(anonymous):
    preflight = await send("OPTIONS", anonymous.url(START), headers={
        "Origin": "http://allowed.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://allowed.example"
    answer = await send("GET", anonymous.url(WEBHOOKS + "/instances", "top=1"),
                        headers={"Origin": "http://allowed.example"})
    assert answer.status == 200
    assert answer.headers["Access-Control-Allow-Origin"] == "http://allowed.example"


# --- class 3: the internal endpoint ---------------------------------------------------------------------

async def test_internal_endpoint_needs_its_secret(door):
    host = door.host
    rpc = f"http://127.0.0.1:{host.rpc_port}"
    before = await snapshot(host)
    for path in ("/durabletask/instances", "/durabletask/orchestrators/E1_HelloSequence/rpc1",
                 "/durabletask/wrong-secret/instances", "/durabletask/" + "A" * 43 + "/instances"):
        answer = await send("POST" if "orchestrators" in path else "GET", rpc + path)
        assert answer.status in (401, 404), (path, answer.status, answer.text)
        assert "instanceId" not in answer.text
    answer = await send("DELETE", rpc + "/durabletask/x/instances/some-id")
    refused(answer, 401, "only for this host's client functions")
    assert await snapshot(host) == before
    # The secret handed to client functions works, and is not the same for another host.
    assert host.rpc_base_url.startswith(rpc + "/durabletask/") and len(host.rpc_base_url) > len(rpc) + 50
    assert (await send("GET", host.rpc_base_url + "instances?top=1")).status == 200


async def test_internal_secret_and_keys_never_reach_the_log(authed, caplog):
    host = authed.host
    secret = host.rpc_base_url.rstrip("/").rsplit("/", 1)[1]
    with caplog.at_level(logging.DEBUG):
        await send("GET", host.rpc_base_url + "instances?top=1")
        await send("GET", authed.url(WEBHOOKS + "/instances", "top=1"))
        await send("POST", authed.url("/api/orchestrators/NoSuchOrchestrator"))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "/durabletask/<secret>/instances" in text  # the access log saw the call, with the secret hidden
    keys = host.keys
    every_key = [keys.master, *keys.function_keys.values(), *keys.system_keys.values(),
                 *(k for per in keys.per_function.values() for k in per.values())]
    for value in (secret, *every_key):
        assert value not in text


# --- class 4: waits ------------------------------------------------------------------------------------

WAITS = [  # (case, path, query, status, words)
    ("timeout 1e308", START, "timeout=1e308&pollingInterval=1", 400, ["timeout='1e308'", "0 to 3600"]),
    ("polling interval 0", START, "timeout=5&pollingInterval=0", 400, ["pollingInterval=0", "0.1"]),
    ("polling interval 1 µs", START, "timeout=5&pollingInterval=0.000001", 400, ["pollingInterval=1e-06"]),
    ("timeout inf", START, "timeout=inf", 400, ["timeout='inf'"]),
    ("timeout nan", START, "timeout=nan", 400, ["timeout='nan'"]),
    ("timeout negative", START, "timeout=-1", 400, ["timeout='-1'"]),
    ("restart wait 0 interval", WEBHOOKS + "/instances/none1/restart", "timeout=5&pollingInterval=0", 400,
     ["pollingInterval"]),
    ("HttpSyncStart retryInterval 1 µs", "/api/orchestrators/E1_HelloSequence/wait",
     "timeout=5&retryInterval=0.000001", 400, ["retryInterval=1e-06", "0.1"]),
    ("HttpSyncStart timeout 1e308", "/api/orchestrators/E1_HelloSequence/wait", "timeout=1e308", 400,
     ["timeout='1e308'"]),
]


@pytest.mark.parametrize("case", WAITS, ids=[c[0] for c in WAITS])
async def test_unbounded_waits_are_refused(door, case):
    _, path, query, status, words = case
    before = await snapshot(door.host)
    answer = await send("POST", door.url(path, query), headers={"Content-Type": "application/json"}, data="1")
    refused(answer, status, *words)
    assert await snapshot(door.host) == before


async def test_a_wait_stops_polling_when_the_caller_leaves(anonymous):
    api = anonymous.host.management_api
    # Orchestrations do not run on this host: the instance stays Pending, so the wait would last 60 s.
    task = asyncio.ensure_future(send("POST", anonymous.url(START + "/left-1", "timeout=60&pollingInterval=0.5"),
                                      data="1", headers={"Content-Type": "application/json"}, timeout=1.5))
    await asyncio.sleep(1.0)
    assert api.waiting == 1
    with pytest.raises(asyncio.TimeoutError):
        await task  # the caller gives up (the connection closes)
    for _ in range(40):
        if api.waiting == 0:
            break
        await asyncio.sleep(0.1)
    assert api.waiting == 0, "the host kept polling for a caller that had left"


async def test_http_function_waiting_is_cancelled_when_the_caller_leaves(anonymous, caplog):
    with caplog.at_level(logging.WARNING, logger="funchost"):
        with pytest.raises(asyncio.TimeoutError):
            await send("POST", anonymous.url("/api/orchestrators/E1_HelloSequence/wait",
                                             "timeout=60&retryInterval=0.5"), timeout=2.0)
        for _ in range(40):
            if any("caller disconnected" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.1)
    assert any("HttpSyncStart" in r.getMessage() and "caller disconnected" in r.getMessage()
               for r in caplog.records)


async def test_many_concurrent_waits_are_capped_not_refused(anonymous):
    from funchost.webhooks import MAX_CONCURRENT_WAITS

    n = MAX_CONCURRENT_WAITS + 6
    answers = await asyncio.gather(*(send("POST", anonymous.url(f"{START}/many-{i}", "timeout=2&pollingInterval=1"),
                                          data="1", headers={"Content-Type": "application/json"})
                                     for i in range(n)))
    assert sorted({a.status for a in answers}) == [202]  # those over the cap answer at once, with the links
    assert all("statusQueryGetUri" in a.json() for a in answers)


# --- class 5: links never follow the caller's Host ------------------------------------------------------

async def test_links_and_location_use_the_hosts_own_address(door):
    host = door.host
    forged = {"Host": f"127.0.0.2:{host.port}", "X-Forwarded-Host": "attacker.example",
              "Content-Type": "application/json"}
    for url in (door.url(START + "/links-" + door.name), door.url("/api/orchestrators/E1_HelloSequence")):
        answer = await send("POST", url, headers=forged, data="1")
        assert answer.status == 202, answer.text
        payload = answer.json()
        links = [v for k, v in payload.items() if k.endswith("Uri")] + [answer.headers["Location"]]
        assert links and all(link.startswith(host.public_origin + WEBHOOKS) for link in links), links
        assert "127.0.0.2" not in answer.text and "attacker" not in answer.text
        if door.key:
            assert f"code={host.keys.durable_system_key}" in payload["statusQueryGetUri"]
    status = await send("GET", door.url(WEBHOOKS + "/instances/links-" + door.name), headers=forged)
    assert status.status == 202
    assert status.headers["Location"].startswith(host.public_origin + WEBHOOKS + "/instances/links-")


# --- class 6: only the app's own hub is created ----------------------------------------------------------

HUB_CALLS = [("POST", START + "/h1", "taskHub=CallerMadeHub1"),
             ("GET", WEBHOOKS + "/instances", "taskHub=CallerMadeHub2"),
             ("GET", WEBHOOKS + "/instances/h1", "taskHub=CallerMadeHub3"),
             ("DELETE", WEBHOOKS + "/instances", "taskHub=CallerMadeHub4&createdTimeFrom=2020-01-01T00:00:00Z"),
             ("POST", WEBHOOKS + "/instances/h1/raiseEvent/E", "taskHub=CallerMadeHub5")]


@pytest.mark.parametrize("method,path,query", HUB_CALLS, ids=[c[2].split("&")[0] for c in HUB_CALLS])
async def test_callers_cannot_create_task_hubs(door, method, path, query):
    before = await snapshot(door.host)
    answer = await send(method, door.url(path, query), headers={"Content-Type": "application/json"}, data="1")
    hub = query.split("=")[1].split("&")[0]
    refused(answer, 404, f"Task hub '{hub}' does not exist")
    assert await snapshot(door.host) == before  # same tables: no hub was created


# --- class 9: what one request may cost ------------------------------------------------------------------

async def test_oversized_management_bodies_are_refused_before_they_are_read(door):
    from durable_mgmt.limits import MAX_JSON_BODY_BYTES

    before = await snapshot(door.host)
    big = b'"' + b"a" * (MAX_JSON_BODY_BYTES + 10) + b'"'
    answer = await send("POST", door.url(START + "/big1"), headers={"Content-Type": "application/json"}, data=big)
    refused(answer, 413, "at most", "MiB")

    async def chunks():  # no Content-Length: counted as it arrives
        for _ in range(17):
            yield b"a" * (1024 * 1024)

    answer = await send("POST", door.url(WEBHOOKS + "/instances/none1/raiseEvent/E"),
                        headers={"Content-Type": "application/json"}, data=chunks())
    refused(answer, 413, "larger than")
    assert await snapshot(door.host) == before


async def test_huge_query_strings_are_refused_by_the_server(door):
    before = await snapshot(door.host)
    answer = await send("POST", door.url(START + "/q1", "reason=" + "a" * 20_000))
    assert 400 <= answer.status < 500
    assert await snapshot(door.host) == before


async def test_listings_hold_one_bounded_page_and_a_token(anonymous, monkeypatch):
    host = anonymous.host
    for i in range(5):
        await TaskHubClient(host.hub).start("E1_HelloSequence", instance_id=f"listed-{i}")
    import inspect

    app_globals = inspect.unwrap(host.index.find("QueryStatus").user_function).__globals__
    assert "MAX_LISTED" in app_globals
    monkeypatch.setitem(app_globals, "MAX_LISTED", 3)  # the cap of one response, small for the test
    seen: list[str] = []
    token = None
    for _ in range(10):
        headers = {"x-ms-continuation-token": token} if token else {}
        answer = await send("GET", anonymous.url("/api/QueryStatus", "instanceIdPrefix=listed-&top=1"),
                            headers=headers)
        assert answer.status == 200, answer.text
        batch = [s["instanceId"] for s in answer.json()]
        assert len(batch) <= 3
        seen += batch
        token = answer.headers.get("x-ms-continuation-token")
        if not token:
            break
    assert sorted(seen) == [f"listed-{i}" for i in range(5)]


# --- class 10: no setting's value in any message ----------------------------------------------------------

SETTINGS = [("taskHub", "%AzureWebJobsStorage%"), ("connection", "%AzureWebJobsStorage%"),
            ("connection", "AzureWebJobsStorage;AccountKey"), ("connection", "APPROVAL_RECORD_TABLE"),
            ("taskHub", "%APPROVAL_RECORD_TABLE%")]


@pytest.mark.parametrize("param,value", SETTINGS, ids=[f"{p}={v}" for p, v in SETTINGS])
async def test_setting_values_never_appear_in_errors(door, connection_string, param, value):
    from urllib.parse import quote

    answer = await send("GET", door.url(WEBHOOKS + "/instances", f"{param}={quote(value)}"))
    assert answer.status == 400, answer.text
    assert "ApprovalRecords" not in answer.text
    for part in connection_string.split(";"):
        if "AccountKey" in part:
            assert part.split("=", 1)[1] not in answer.text


def test_hub_name_from_a_secret_setting_is_refused_without_its_value(connection_string):
    from durable_mgmt.errors import InvalidSetting
    from durable_mgmt.settings import AppSettings

    from .support import REPO

    settings = AppSettings(REPO, {}, {"version": "2.0", "extensions": {"durableTask": {"hubName": "%AzureWebJobsStorage%"}}},
                           {"AzureWebJobsStorage": connection_string})
    with pytest.raises(InvalidSetting) as caught:
        settings.hub_name()
    message = str(caught.value)
    assert "AzureWebJobsStorage" in message and "not shown" in message
    assert "AccountKey" not in message and "Eby8vdM02" not in message
    with pytest.raises(InvalidSetting) as caught:
        settings.hub_name("%AzureWebJobsStorage%")  # --task-hub-name
    assert "AccountKey" not in str(caught.value)


# --- admin endpoints ---------------------------------------------------------------------------------------

async def test_admin_endpoints_need_the_master_key_under_auth(authed):
    host = authed.host
    before = await snapshot(host)
    for key in (None, host.keys.function_keys["default"], host.keys.durable_system_key, "\udcff"):
        headers = {"Content-Type": "application/json"}
        if key:
            headers["x-functions-key"] = key.encode("utf-8", "surrogateescape").decode("latin-1")
        answer = await send("POST", authed.url("/admin/functions/PurgeOldInstanceHistory", keyed=False),
                            headers=headers, data='{"input": ""}')
        assert answer.status == 401, (key, answer.status)
        answer = await send("GET", authed.url("/admin/host/status", keyed=False), headers=headers)
        assert answer.status == 401
    assert await snapshot(host) == before


async def test_non_utf8_key_header_is_401_not_500(authed):
    raw = "\xff\xfe\x80".encode("latin-1").decode("latin-1")
    answer = await send("GET", authed.url(WEBHOOKS + "/instances", keyed=False), headers={"x-functions-key": raw})
    refused(answer, 401, "Unauthorized")
    answer = await send("GET", authed.url("/api/GetAllStatus", keyed=False), headers={"x-functions-key": raw})
    assert answer.status == 401


# --- --enable-auth: no key, no effect ------------------------------------------------------------------------

KEYLESS = [("POST", START + "/nokey1"), ("DELETE", WEBHOOKS + "/instances?createdTimeFrom=2000-01-01T00:00:00Z"),
           ("POST", WEBHOOKS + "/instances/nokey1/terminate"), ("GET", WEBHOOKS + "/instances"),
           ("POST", "/api/orchestrators/E1_HelloSequence"), ("POST", "/admin/functions/PurgeOldInstanceHistory")]


@pytest.mark.parametrize("method,path", KEYLESS, ids=[f"{m} {p}" for m, p in KEYLESS])
async def test_auth_host_refuses_keyless_calls_and_changes_nothing(authed, method, path):
    before = await snapshot(authed.host)
    path, _, query = path.partition("?")
    answer = await send(method, authed.url(path, query, keyed=False), data="1",
                        headers={"Content-Type": "application/json"})
    assert answer.status == 401, answer.text
    assert await snapshot(authed.host) == before


# --- slow bodies -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [START + "/slow1", "/api/orchestrators/E1_HelloSequence"])
async def test_a_body_that_trickles_in_is_cut_off(anonymous, monkeypatch, path):
    import funchost.triggers.http as http_triggers
    import funchost.webhook_io as webhook_io

    monkeypatch.setattr(webhook_io, "BODY_TIMEOUT_SECONDS", 1.0)
    monkeypatch.setattr(http_triggers, "BODY_TIMEOUT_SECONDS", 1.0)
    before = await snapshot(anonymous.host)
    reader, writer = await asyncio.open_connection("127.0.0.1", anonymous.host.port)
    writer.write(f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 "Content-Length: 1000\r\n\r\n[1,".encode())
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)  # 1 s of silence, then the answer
    writer.close()
    assert status_line.split()[1] == b"408", status_line
    assert await snapshot(anonymous.host) == before


def test_cli_never_prints_a_setting_given_as_the_hub_name(connection_string):
    from click.testing import CliRunner

    from durable_mgmt.cli import durable

    result = CliRunner().invoke(durable, ["count", "--task-hub-name", "%AzureWebJobsStorage%"],
                                env={"AzureWebJobsStorage": connection_string})
    assert result.exit_code == 2, result.output
    assert "AzureWebJobsStorage" in result.output and "not shown" in result.output
    assert "AccountKey" not in result.output and "Eby8vdM02" not in result.output


async def test_http_function_bodies_follow_the_functions_body_limit(connection_string):
    """FUNCTIONS_REQUEST_BODY_SIZE_LIMIT (the Functions host's setting) caps what one HTTP call may send."""
    import uuid

    from .support import REPO, serving

    async with serving(REPO, connection_string, f"SecL{uuid.uuid4().hex[:10]}",
                       settings={"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "4096"}) as host:
        before = await snapshot(host)
        answer = await send("POST", f"http://127.0.0.1:{host.port}/api/orchestrators/E1_HelloSequence",
                            data=b'"' + b"a" * 8192 + b'"', headers={"Content-Type": "application/json"})
        assert answer.status == 413, answer.text
        assert await snapshot(host) == before
        small = await send("POST", f"http://127.0.0.1:{host.port}/api/orchestrators/E1_HelloSequence",
                           data=b'"small"', headers={"Content-Type": "application/json"})
        assert small.status == 202
