"""The local host's door (banner, --enable-auth) and the bulk loop's throttle, on the shared test hub."""

from __future__ import annotations

import time

import aiohttp
import pytest

from durable_mgmt import InvalidInput
from durable_mgmt.dashboard.bulk import ThrottledLoop, check_action, check_rate
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


async def test_bulk_loop_keeps_to_its_rate_and_reports_each_instance(dash_hub):
    ids = [f"no-such-instance-{i}" for i in range(5)]
    started = time.monotonic()
    results = await ThrottledLoop(dash_hub.manager).run("terminate", ids, reason=None, rate=10)
    # Starts are spaced 1/rate apart: five take at least 0.4 s however fast storage answers.
    assert time.monotonic() - started >= 0.4
    assert [r.instance_id for r in results] == ids
    assert all(not r.ok and "no-such-instance" in r.message for r in results)


def test_bulk_inputs_are_checked():
    with pytest.raises(InvalidInput, match="Rate 'fast' is not a number"):
        check_rate("fast")
    with pytest.raises(InvalidInput, match="out of range"):
        check_rate(1000)
    with pytest.raises(InvalidInput, match="Unknown bulk action 'delete'"):
        check_action("delete")
