"""The local host's door (banner, --enable-auth) and the bulk form's checks, on the shared test hub."""

from __future__ import annotations

import html
import re
import time
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from durable_mgmt import InvalidInput
from durable_mgmt.dashboard.bulk_jobs import build_request, selected_query
from funchost.banner import render
from funchost.host import LocalHost

from .conftest import APP


async def test_the_banner_prints_the_dashboard_url(dash_hub):
    assert f"Dashboard:              {dash_hub.host.base_url}/dashboard/" in render(dash_hub.host)


async def test_with_enable_auth_the_local_dashboard_needs_the_master_key(dash_hub, connection_string):
    host = LocalHost(APP, port=0, connection_string=connection_string, hub_name=dash_hub.host.hub_name + "Auth",
                     environ={"DASHBOARD_TEST_STORAGE": connection_string}, enable_auth=True,
                     run_orchestrations=False)
    await host.start()
    try:
        base = host.base_url + "/dashboard/"
        async with aiohttp.ClientSession() as session:
            async with session.get(base) as r:
                assert r.status == 401 and "master key" in await r.text()
            async with session.get(base, params={"code": host.keys.durable_system_key}) as r:
                assert r.status == 401  # the system key is not the master key
            async with session.get(base, params={"code": host.keys.master}) as r:
                page = await r.text()
                assert r.status == 200
                # The key given in the URL is carried on the dashboard's links, so the next page opens too.
                assert f"/dashboard/overview?code={host.keys.master}" in page
    finally:
        await host.stop()


def test_bulk_inputs_are_checked_before_a_job_exists():
    with pytest.raises(InvalidInput, match="Rate 'fast' is not a number"):
        build_request("terminate", "", reason="", rate="fast", concurrency="")
    with pytest.raises(InvalidInput, match="Invalid rate 0.0"):
        build_request("terminate", "", reason="", rate="0", concurrency="")
    with pytest.raises(InvalidInput, match="Concurrency '²' is not a whole number"):
        build_request("terminate", "", reason="", rate="", concurrency="²")
    with pytest.raises(InvalidInput, match="Unknown bulk action 'delete'"):
        build_request("delete", "", reason="", rate="", concurrency="")
    with pytest.raises(InvalidInput, match="No rows are selected"):
        selected_query([])
    req = build_request("terminate", "status = Running", reason=" x ", rate="10", concurrency="3")
    assert (req.rate, req.concurrency, req.batch_size, req.reason) == (10.0, 3, 20, "x")
    unbounded = build_request("purge", "", reason="", rate="", concurrency="")
    assert (unbounded.rate, unbounded.batch_size) == (None, 20)  # blank: no bound, chunks of seconds


def test_selected_rows_become_an_in_query_narrowed_by_their_common_prefix():
    assert selected_query(["a", "it's", "a"]) == "instanceId IN ('a', 'it''s')"
    many = [f"order-{i:02}" for i in range(20)]
    text = selected_query(many)
    assert text.startswith("instanceId STARTS_WITH 'order-' AND instanceId IN ('order-00', ")
    from durable_mgmt import InstanceManager

    plan = InstanceManager.explain(text)
    assert "STARTS_WITH 'order-'" in plan.pushed_down and "IN (" in plan.filtered_here


async def test_pages_of_the_default_relative_range_follow_their_tokens_and_a_foreign_token_is_named(dash_hub):
    # The default range is "the last 24 hours" (createdTime >= -24h): each request parses it again, so the
    # page token (InstanceManager.find_page, durable_mgmt/page_tokens.py) must carry the first page's moment,
    # or the next page's query would differ from the token's and be refused.
    base = dash_hub.urls["standalone"]
    seen: list[str] = []
    async with aiohttp.ClientSession() as session:
        address, token = base + "?prefix=hello-&size=2", None
        for _ in range(5):
            async with session.get(address) as r:
                body = await r.text()
                assert r.status == 200, body
            seen += re.findall(r'<td class="id"><a href="[^"]*">(hello-\d)</a></td>', body)
            found = re.search(r'<a href="([^"]*)" id="next-page"', body)
            if found is None:
                break
            address = _absolute(base, html.unescape(found.group(1)))
            token = parse_qs(urlsplit(address).query)["ct"][0]
        assert seen == [f"hello-{i}" for i in range(5)]
        assert token is not None
        # The same token under another query: refused with what to do, no rows of some other list.
        async with session.get(base, params={"prefix": "act-", "size": "2", "ct": token}) as r:
            body = await r.text()
            assert r.status == 400 and "belongs to another query" in html.unescape(body)
            assert "start from the first page" in html.unescape(body)
            assert '<td class="id">' not in body


def _absolute(base: str, href: str) -> str:
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}{href}" if href.startswith("/") else base + href
