"""HTTP triggers in-process: routing, route values, methods, request/response mapping, outputs."""

from __future__ import annotations

import json
import logging

import pytest

from tests.apps.support import http, read_queue, running_host, unique


@pytest.fixture(scope="module")
def out_queue() -> str:
    return unique("http-out")


@pytest.fixture
async def host(connection_string, hub_name, out_queue):
    async with running_host("http_app", connection_string, hub_name, settings={"OutQueue": out_queue},
                            run_orchestrations=False) as h:
        yield h


@pytest.fixture
async def session():
    async with http() as s:
        yield s


async def fetch(session, method: str, url: str, **kwargs):
    async with session.request(method, url, **kwargs) as r:
        return r.status, r.headers, await r.read()


async def test_route_values_optional_and_query(host, session):
    api = host.base_url + "/api"
    assert (await fetch(session, "GET", api + "/hello/Ada"))[2] == b"Hello, Ada!"
    status, headers, body = await fetch(session, "GET", api + "/hello?name=Query")
    assert status == 200 and body == b"Hello, Query!" and headers["X-Greeting"] == "yes"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert (await fetch(session, "GET", api + "/hello"))[2] == b"Hello, world!"
    assert (await fetch(session, "GET", api + "/hello/a%20b"))[2] == b"Hello, a b!"  # decoded values


async def test_typed_parameters_precedence_and_catch_all(host, session):
    api = host.base_url + "/api"
    status, headers, body = await fetch(session, "GET", api + "/items/42")
    assert status == 200 and json.loads(body) == {"id": "42", "method": "GET", "body": None}
    assert headers["Content-Type"].startswith("application/json")
    assert (await fetch(session, "GET", api + "/items/abc"))[0] == 404  # {id:int} does not match
    assert (await fetch(session, "GET", api + "/items/special"))[2] == b"literal segments win over parameters"
    assert (await fetch(session, "GET", api + "/files/a/b/c.txt"))[2] == b"a/b/c.txt"  # an async function


async def test_methods_and_bodies(host, session):
    api = host.base_url + "/api"
    status, _, body = await fetch(session, "PUT", api + "/items/7", data=b"payload")
    assert status == 201 and json.loads(body)["body"] == "payload"
    status, headers, _ = await fetch(session, "POST", api + "/items/7")
    assert status == 405 and headers["Allow"] == "GET, PUT"
    status, headers, body = await fetch(session, "POST", api + "/echo?q=1&q=2", json={"x": 1})
    assert status == 200 and json.loads(body) == {"x": 1}
    assert headers["Content-Type"].startswith("application/json") and headers["X-Query"] == "1"


async def test_errors_and_empty_results(host, session, caplog):
    api = host.base_url + "/api"
    with caplog.at_level(logging.INFO, logger="funchost"):
        status, _, body = await fetch(session, "GET", api + "/boom")
    assert status == 500 and body == b""
    assert "Executed 'Functions.boom' (Failed" in caplog.text and "boom on purpose" in caplog.text
    assert (await fetch(session, "GET", api + "/nothing"))[0] == 204
    assert (await fetch(session, "GET", api + "/no/such/route"))[0] == 404
    assert (await fetch(session, "GET", host.base_url + "/elsewhere"))[0] == 404


async def test_auth_levels_are_not_enforced_without_enable_auth(host, session):
    api = host.base_url + "/api"
    assert (await fetch(session, "GET", api + "/secret"))[2] == b"function level"
    assert (await fetch(session, "GET", api + "/admin-only"))[2] == b"admin level"


async def test_queue_output_from_an_http_function(host, session, connection_string, out_queue):
    assert (await fetch(session, "POST", host.base_url + "/api/enqueue/zebra"))[0] == 202
    assert await read_queue(connection_string, out_queue, at_least=1) == ["zebra"]


async def test_context_parameter_and_host_status(host, session):
    assert (await fetch(session, "GET", host.base_url + "/api/context"))[2] == b"with_context:True"
    status, _, body = await fetch(session, "GET", host.base_url + "/admin/host/status")
    assert status == 200 and json.loads(body)["state"] == "Running"


async def test_function_urls_follow_the_route_prefix(host):
    assert host.function_url("hello") == f"{host.base_url}/api/hello/{{name?}}"
    assert host.function_url("item") == f"{host.base_url}/api/items/{{id:int}}"
