"""--enable-auth: keys for functions and the management API; keys kept in storage, never in the log."""

from __future__ import annotations

import json
import os
import signal
import urllib.request

import pytest

from funchost.keys import DURABLE_SYSTEM_KEY, SECRETS_CONTAINER
from durable_mgmt.taskhub import TaskHubClient
from tests.apps.support import APPS, STOP_SECONDS, funcpy_process, http, running_host, unique


@pytest.fixture
def host_id() -> str:
    return unique("auth")


@pytest.fixture
async def host(connection_string, hub_name, host_id):
    async with running_host("http_app", connection_string, hub_name, enable_auth=True, run_orchestrations=False,
                            settings={"AzureFunctionsWebHost__hostid": host_id}) as h:
        yield h


async def status_of(session, method: str, url: str, **kwargs) -> int:
    async with session.request(method, url, **kwargs) as r:
        await r.read()
        return r.status


async def test_management_api_needs_the_system_key_and_changes_nothing_without(host):
    base = host.webhook_base_url
    async with http() as s:
        assert await status_of(s, "POST", base + "/orchestrators/hello_orchestrator/a1") == 401
        assert await status_of(s, "GET", base + "/instances") == 401
        assert await status_of(s, "POST", base + "/orchestrators/hello_orchestrator/a1?code=wrong") == 401
        assert len(await TaskHubClient(host.hub).query(_all())) == 0  # nothing was started

        key = host.keys.durable_system_key
        async with s.post(f"{base}/orchestrators/hello_orchestrator/a1?code={key}") as r:
            assert r.status == 202
            # With auth on, the links handed out carry the system key, so they work as given.
            assert f"code={key}" in (await r.json())["statusQueryGetUri"]
        assert await status_of(s, "POST", base + "/instances/a1/terminate") == 401
        assert (await TaskHubClient(host.hub).get_status("a1")).runtime_status.value == "Pending"
        assert await status_of(s, "POST", base + "/instances/a1/terminate",
                               headers={"x-functions-key": host.keys.master}) == 202
        assert await status_of(s, "GET", f"{base}/instances/a1?code={host.keys.function_keys['default']}") == 401


async def test_function_and_admin_levels(host):
    api = host.base_url + "/api"
    own = host.keys.per_function["secret"]["default"]
    host_key = host.keys.function_keys["default"]
    async with http() as s:
        assert await status_of(s, "GET", api + "/hello") == 200  # anonymous
        assert await status_of(s, "GET", api + "/secret") == 401
        assert await status_of(s, "GET", f"{api}/secret?code={own}") == 200
        assert await status_of(s, "GET", f"{api}/secret?code={host_key}") == 200
        assert await status_of(s, "GET", api + "/secret", headers={"x-functions-key": own}) == 200
        assert await status_of(s, "GET", f"{api}/admin-only?code={host_key}") == 401
        assert await status_of(s, "GET", f"{api}/admin-only?code={host.keys.master}") == 200
        assert await status_of(s, "GET", host.base_url + "/admin/host/ping") == 200
        assert await status_of(s, "GET", host.base_url + "/admin/host/status") == 401
        assert await status_of(s, "GET", f"{host.base_url}/admin/host/status?code={host.keys.master}") == 200


async def test_keys_are_generated_once_and_kept_in_the_secrets_container(connection_string, hub_name, host_id, host):
    from azure.storage.blob.aio import ContainerClient

    async with ContainerClient.from_connection_string(connection_string, SECRETS_CONTAINER) as container:
        names = sorted([b.name async for b in container.list_blobs(name_starts_with=host_id + "/")])
        doc = json.loads(await (await container.download_blob(f"{host_id}/host.json")).readall())
    assert names == [f"{host_id}/host.json", f"{host_id}/secret.json"]
    assert {k["name"] for k in doc["systemKeys"]} == {DURABLE_SYSTEM_KEY}
    async with running_host("http_app", connection_string, hub_name + "b", enable_auth=True,
                            run_orchestrations=False, settings={"AzureFunctionsWebHost__hostid": host_id}) as again:
        assert again.keys.durable_system_key == host.keys.durable_system_key
        assert again.keys.master == host.keys.master
    assert host.keys.master not in repr(host.keys) and host.keys.durable_system_key not in repr(host.keys)


def test_no_key_appears_in_the_output_of_funcpy_start(connection_string, tmp_path):
    host_id = unique("authlog")
    env = {"AzureWebJobsStorage": connection_string, "AzureFunctionsWebHost__hostid": host_id,
           "TaskHubName": "AuthLog" + unique("h").replace("-", "")[:10]}
    with funcpy_process(APPS / "http_app", env, "--enable-auth") as (proc, port, log):
        base = f"http://127.0.0.1:{port}"
        _expect(f"{base}/runtime/webhooks/durabletask/instances", 401)
        keys = _read_keys(connection_string, host_id)
        _expect(f"{base}/runtime/webhooks/durabletask/instances?code={keys['system']}", 200)
        _expect(f"{base}/api/secret?code={keys['master']}", 200)
        _expect(f"{base}/api/secret?code=not-a-key", 401)
        started = _expect(f"{base}/runtime/webhooks/durabletask/orchestrators/hello_orchestrator?code={keys['system']}",
                          202, method="POST")
        assert keys["system"] in started  # handed to the caller, as the extension does...
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(STOP_SECONDS) == 0
    output = log.read_text()
    assert "Functions:" in output and "secret: [" in output and "Executing 'Functions.secret'" in output
    for value in keys.values():
        assert value not in output  # ...but never logged
    assert "AccountKey" not in output and "Eby8vdM02" not in output
    os.unlink(log)


def _expect(url: str, status: int, method: str = "GET") -> str:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == status
            return r.read().decode()
    except urllib.error.HTTPError as e:
        assert e.code == status, e.read()
        return ""


def _read_keys(connection_string: str, host_id: str) -> dict[str, str]:
    from azure.storage.blob import ContainerClient

    with ContainerClient.from_connection_string(connection_string, SECRETS_CONTAINER) as container:
        doc = json.loads(container.download_blob(f"{host_id}/host.json").readall())
    return {"master": doc["masterKey"]["value"], "system": doc["systemKeys"][0]["value"],
            "host": doc["functionKeys"][0]["value"]}


def _all():
    from durable_mgmt.models import InstanceQuery

    return InstanceQuery(page_size=1000)
