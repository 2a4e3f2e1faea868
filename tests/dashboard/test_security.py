"""Safe by construction: anti-forgery token, Origin and Host checks, read-only, the Blueprint's allow-list.

Each refusal is checked to change nothing, and next to it the same request done right is shown to work,
so a test cannot pass because the request was wrong in some other way.
"""

from __future__ import annotations

import base64
import html
import json
import re
from urllib.parse import urlsplit

import aiohttp
import azure.functions as func
import pytest

from durable_mgmt import RuntimeStatus
from durable_mgmt.dashboard import DashboardConfig, StandaloneServer
from durable_mgmt.dashboard.blueprint import blueprint_handler

from .conftest import APP, DOORS


async def _token(session: aiohttp.ClientSession, base: str) -> str:
    async with session.get(base) as r:
        assert r.status == 200
        return re.search(r'name="dashboard-csrf" content="([^"]+)"', await r.text())[1]


def _origin(base: str) -> str:
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}"


@pytest.mark.parametrize("door", DOORS)
async def test_actions_need_the_same_origin_token(dash_hub, door):
    base, iid = dash_hub.urls[door], f"csrf-{door}"
    form = {"id": iid, "action": "suspend", "reason": "forged"}
    async with aiohttp.ClientSession() as session:
        token = await _token(session, base)  # the cookie is now in the session, as in a browser
        async with session.post(base + "action", data=form) as r:
            assert r.status == 403 and "anti-forgery" in await r.text()
        async with session.post(base + "action", data=form, headers={"X-Dashboard-Csrf": "x" * 43}) as r:
            assert r.status == 403
        async with session.post(base + "action", data=form,
                                headers={"X-Dashboard-Csrf": token, "Origin": "http://evil.example"}) as r:
            assert r.status == 403 and "evil.example" in await r.text()
        assert (await dash_hub.manager.status(iid)).runtime_status is RuntimeStatus.RUNNING  # nothing happened

    # A page of another site cannot read the cookie: a fresh client has the header but no cookie.
    async with aiohttp.ClientSession() as other:
        async with other.post(base + "action", data=form, headers={"X-Dashboard-Csrf": token}) as r:
            assert r.status == 403
    assert (await dash_hub.manager.status(iid)).runtime_status is RuntimeStatus.RUNNING

    async with aiohttp.ClientSession() as session:  # done right, the same request works
        token = await _token(session, base)
        async with session.post(base + "action", data={**form, "reason": "right"},
                                headers={"X-Dashboard-Csrf": token, "Origin": _origin(base)}) as r:
            assert r.status == 200 and "requested" in await r.text()
    await dash_hub.wait(iid, RuntimeStatus.SUSPENDED)


@pytest.mark.parametrize("door", ["standalone", "local"])
async def test_other_host_names_are_refused(dash_hub, door):
    base = dash_hub.urls[door]
    async with aiohttp.ClientSession() as session:
        # A DNS-rebinding name pointing at 127.0.0.1 would send its own Host header.
        async with session.get(base, headers={"Host": "attacker.example"}) as r:
            # 421 from the dashboard's own check; the local host's guard (issue 12) may refuse first, 403.
            assert r.status in (421, 403) and "attacker.example" in await r.text()
        async with session.get(base.replace("localhost", "127.0.0.1")) as r:
            assert r.status == 200


async def test_read_only_refuses_every_action(dash_hub):
    iid = "act-standalone-read-only"
    await dash_hub.manager.start("WaitForApproval", instance_id=iid)
    await dash_hub.wait(iid, RuntimeStatus.RUNNING)
    async with StandaloneServer(dash_hub.manager, DashboardConfig(read_only=True), port=0) as server:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + f"instance?id={iid}") as r:
                page = await r.text()
            assert 'id="read-only"' in page and "form-terminate" not in page
            token = re.search(r'name="dashboard-csrf" content="([^"]+)"', page)[1]
            for action in ("terminate", "suspend", "purge", "rewind", "restart", "raise"):
                async with session.post(server.url + "action", data={"id": iid, "action": action,
                                                                     "event_name": "Approval"},
                                        headers={"X-Dashboard-Csrf": token}) as r:
                    assert r.status == 403 and "read-only" in await r.text()
            for path, data in (("bulk/start", {"action": "terminate", "query": f"instanceId = '{iid}'"}),
                               ("jobs/step", {"id": "any"}), ("jobs/cancel", {"id": "any"})):
                async with session.post(server.url + path, data=data, headers={"X-Dashboard-Csrf": token}) as r:
                    assert r.status == 403
    assert (await dash_hub.manager.status(iid)).runtime_status is RuntimeStatus.RUNNING


def _request(method: str = "GET", path: str = "", headers: dict | None = None, body: bytes = b"") -> func.HttpRequest:
    return func.HttpRequest(method=method, url=f"http://app.example/api/dashboard/{path}", headers=headers or {},
                            params={}, route_params={"path": path}, body=body)


def _principal(roles: list[str]) -> str:
    claims = [{"typ": "roles", "val": r} for r in roles]
    return base64.b64encode(json.dumps({"auth_typ": "aad", "claims": claims}).encode()).decode()


@pytest.fixture
def app_settings(dash_hub, connection_string):
    return {"DASHBOARD_TEST_STORAGE": connection_string, "DASHBOARD_TEST_HUB": dash_hub.host.hub_name}


async def test_blueprint_allow_list_and_read_only_settings(app_settings):
    env = {**app_settings, "DURABLE_DASHBOARD_ALLOWED_USERS": "alice@example.com",
           "DURABLE_DASHBOARD_ALLOWED_ROLES": "DashboardOperators"}
    handle = blueprint_handler(script_root=APP, connection_setting="DASHBOARD_TEST_STORAGE", environ=env)
    assert (await handle(_request())).status_code == 403  # nobody signed in
    assert (await handle(_request(headers={"X-MS-CLIENT-PRINCIPAL-NAME": "bob@example.com"}))).status_code == 403
    ok = await handle(_request(headers={"X-MS-CLIENT-PRINCIPAL-NAME": "Alice@Example.com"}))
    assert ok.status_code == 200 and b"Instances" in ok.get_body()
    by_role = await handle(_request(headers={"X-MS-CLIENT-PRINCIPAL": _principal(["dashboardoperators"])}))
    assert by_role.status_code == 200
    assert (await handle(_request(headers={"X-MS-CLIENT-PRINCIPAL": _principal(["readers"])}))).status_code == 403

    read_only = blueprint_handler(script_root=APP, connection_setting="DASHBOARD_TEST_STORAGE",
                                  environ={**app_settings, "DURABLE_DASHBOARD_READ_ONLY": "true"})
    page = await read_only(_request())
    assert page.status_code == 200 and b'id="read-only"' in page.get_body()
    refused = await read_only(_request("POST", "action", body=b"id=csrf-blueprint&action=terminate"))
    assert refused.status_code == 403 and b"read-only" in refused.get_body()

    wrong = blueprint_handler(script_root=APP, connection_setting="DASHBOARD_TEST_STORAGE",
                              environ={**app_settings, "DURABLE_DASHBOARD_READ_ONLY": "perhaps"})
    answer = await wrong(_request())
    assert answer.status_code == 500 and b"DURABLE_DASHBOARD_READ_ONLY='perhaps'" in answer.get_body()


async def test_missing_hub_setting_is_reported_on_the_page(app_settings):
    handle = blueprint_handler(script_root=APP, connection_setting="NO_SUCH_SETTING", environ=app_settings)
    answer = await handle(_request())
    assert answer.status_code == 500  # the app's configuration, not the request, is wrong
    assert b"No connection string in app setting &#39;NO_SUCH_SETTING&#39;" in answer.get_body()


# --- hostile review of issue 14 -------------------------------------------------------------------

async def test_bad_bulk_inputs_are_refused_with_400_before_a_job_exists(dash_hub):
    iid = "hostile-bulk-inputs"
    await dash_hub.manager.start("WaitForApproval", instance_id=iid)
    await dash_hub.wait(iid, RuntimeStatus.RUNNING)
    base = dash_hub.urls["standalone"]
    form = {"action": "suspend", "query": f"instanceId = '{iid}'"}
    jobs_before = len(await dash_hub.manager.jobs())
    async with aiohttp.ClientSession() as session:
        token = await _token(session, base)
        headers = {"X-Dashboard-Csrf": token, "Origin": _origin(base)}
        for bad, words in (({"rate": "abc"}, "Rate 'abc' is not a number"), ({"rate": "0"}, "Invalid rate 0.0"),
                           ({"concurrency": "١"}, "is not a whole number"), ({"action": "delete"}, "Unknown bulk"),
                           ({"query": "status = Sleeping"}, "column 10"),
                           # Longer than any single-instance action takes (limits.MAX_REASON_LENGTH): refused as such,
                           # not by storage when the job row is written.
                           ({"reason": "r" * 40_000}, "Invalid reason"), ({"reason": "r" * 31_000}, "at most 30,000 fit")):
            async with session.post(base + "bulk/start", data={**form, **bad}, headers=headers) as r:
                assert r.status == 400 and words in html.unescape(await r.text()), bad
        async with session.post(base + "jobs/step", data={"id": "no-such-job"}, headers=headers) as r:
            assert r.status == 404 and "No bulk job with id 'no-such-job'" in html.unescape(await r.text())
        assert len(await dash_hub.manager.jobs()) == jobs_before  # no job was stored
        assert (await dash_hub.manager.status(iid)).runtime_status is RuntimeStatus.RUNNING  # nothing was done
        async with session.post(base + "bulk/start", data={**form, "rate": "50"}, headers=headers) as r:
            assert r.status == 200  # done right, it acts
    await dash_hub.wait(iid, RuntimeStatus.SUSPENDED)


async def test_a_histogram_of_a_range_beyond_the_calendar_is_a_400_naming_it(dash_hub):
    base = dash_hub.urls["standalone"]
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "overview/histogram?range=custom&from=9999-12-31T23:59") as r:
            assert r.status == 400 and "9999-12-31T23:59" in (await r.json())["error"]
        async with session.get(base + "overview/histogram?range=custom&from=2026-01-01T00:00") as r:
            assert r.status == 200 and "series" in json.dumps(await r.json())


async def test_only_tokens_of_the_issued_form_and_urlencoded_forms_are_accepted(dash_hub):
    iid = "hostile-csrf-form"
    await dash_hub.manager.start("WaitForApproval", instance_id=iid)
    await dash_hub.wait(iid, RuntimeStatus.RUNNING)
    base = dash_hub.urls["standalone"]
    form = {"id": iid, "action": "suspend"}
    async with aiohttp.ClientSession() as session:
        # A cookie tossed by a sibling site with a matching header: equal, but not a token this server issued.
        for weak in ("x", "a" * 42, "a" * 44, "a" * 42 + "="):
            async with session.post(base + "action", data=form, headers={
                    "Cookie": f"durable_dashboard_csrf={weak}", "X-Dashboard-Csrf": weak, "Origin": _origin(base)}) as r:
                assert r.status == 403 and "anti-forgery" in await r.text()
        token = await _token(session, base)
        headers = {"X-Dashboard-Csrf": token, "Origin": _origin(base)}
        async with session.post(base + "action", data=f"id={iid}&action=suspend",
                                headers={**headers, "Content-Type": "text/plain"}) as r:
            assert r.status == 415 and "application/x-www-form-urlencoded" in await r.text()
        assert (await dash_hub.manager.status(iid)).runtime_status is RuntimeStatus.RUNNING  # nothing happened
        async with session.post(base + "action", data=form, headers=headers) as r:
            assert r.status == 200  # done right, it acts
    await dash_hub.wait(iid, RuntimeStatus.SUSPENDED)


async def test_cors_origins_of_the_host_never_reach_the_dashboard_paths():
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from durable_mgmt.http_guard import HttpGuard

    guard = HttpGuard.of([], ["http://app.example"], no_cors_paths=["/dashboard"])
    app = web.Application(middlewares=[guard.middleware()])
    for path in ("/api/hello", "/dashboard/", "/dashboard/overview", "/dashboardx"):
        app.router.add_get(path, lambda r: web.Response(text="ok"))
    async with TestClient(TestServer(app)) as client:
        origin = {"Origin": "http://app.example"}
        for path, cors in (("/api/hello", True), ("/dashboardx", True), ("/dashboard/", False),
                           ("/dashboard/overview", False)):
            r = await client.get(path, headers=origin)
            assert r.status == 200 and ("Access-Control-Allow-Origin" in r.headers) is cors, path
        preflight = await client.options("/dashboard/action", headers={**origin,
                                                                       "Access-Control-Request-Method": "POST"})
        assert preflight.status == 403


def test_the_local_host_keeps_cors_off_the_dashboard(tmp_path):
    # funcpy start --cors ORIGIN: the host's guard allows that origin everywhere but under /dashboard.
    from funchost.dashboard import DASHBOARD_PATH
    from funchost.host import LocalHost

    guard = LocalHost(tmp_path, cors=["http://app.example"], environ={}).guard()
    assert guard.cors_headers("http://app.example")  # the functions' routes keep CORS
    assert not guard.cors_applies(DASHBOARD_PATH + "/") and not guard.cors_applies(DASHBOARD_PATH + "/bulk/start")
    assert guard.cors_applies("/api/hello")


# --- hostile review of the jobs pages ---------------------------------------------------------------

XSS = "\"><img src=x onerror=alert(1)><script>alert(2)</script>"


async def test_hostile_job_text_and_ids_are_escaped_and_refused(dash_hub):
    base = dash_hub.urls["standalone"]
    form = {"action": "suspend", "query": f"name = '{XSS.replace(chr(39), '')}'", "reason": XSS, "rate": "50"}
    async with aiohttp.ClientSession() as session:
        token = await _token(session, base)
        headers = {"X-Dashboard-Csrf": token, "Origin": _origin(base)}
        async with session.post(base + "bulk/start", data=form, headers=headers) as r:
            assert r.status == 200, await r.text()
            body = await r.text()
        job_id = re.search(r'id="job-link">([^<]+)<', body).group(1)
        for path in (f"job?id={job_id}", "jobs"):
            async with session.get(base + path) as r:
                text = await r.text()
                assert r.status == 200 and "<script>alert" not in text and "<img src=x" not in text, path
        for hostile in ("<script>alert(1)</script>", "\"><img onerror=x>", "%ED%A0%80", "a%00b", "x" * 5000,
                        "../../MgmtJobs", "' or ''='", "%F0%9F%98%80"):
            async with session.get(base + "job?id=" + hostile) as r:
                text = await r.text()
                assert r.status in (400, 404), (hostile, r.status, text[:300])
                assert "<script>alert" not in text and "<img onerror" not in text
            async with session.post(base + "jobs/step", data={"id": hostile}, headers=headers) as r:
                assert r.status in (400, 404), (hostile, r.status)


async def test_two_steps_of_one_job_at_once_act_on_each_instance_once(dash_hub):
    import asyncio

    from durable_mgmt.jobs.models import BulkRequest

    ids = [f"twin-step-{i:02}" for i in range(12)]
    for iid in ids:
        await dash_hub.manager.start("WaitForApproval", instance_id=iid)
    for iid in ids:
        await dash_hub.wait(iid, RuntimeStatus.RUNNING)
    job = await dash_hub.manager.bulk(BulkRequest("suspend", "instanceId STARTS_WITH 'twin-step-'", rate=6))
    base = dash_hub.urls["standalone"]
    async with aiohttp.ClientSession() as session:
        token = await _token(session, base)
        headers = {"X-Dashboard-Csrf": token, "Origin": _origin(base)}

        async def step():
            async with session.post(base + "jobs/step", data={"id": job.id}, headers=headers) as r:
                return r.status, await r.text()

        answers = await asyncio.gather(step(), step())
        assert all(s == 200 for s, _ in answers), answers
        for _ in range(20):
            info = await job.refresh()
            if info.state.value in ("Completed", "Failed", "Canceled"):
                break
            await step()
    info = await job.refresh()
    outcomes = [o async for o in job.outcomes()]
    assert sorted(o.instance_id for o in outcomes) == ids  # each once
    assert (info.done, info.failed, info.skipped) == (12, 0, 0), (info, outcomes)
