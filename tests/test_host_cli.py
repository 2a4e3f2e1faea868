"""`funcpy start` as a process: start-up output, its own Azurite (persisted), clean stop on signals."""

from __future__ import annotations

import json
import shutil
import signal
import time
import urllib.request

from funchost.azurite import free_port, is_listening
from durable_mgmt.taskhub.storage import DEV_ACCOUNT, DEV_KEY
from tests.apps.support import APPS, STOP_SECONDS, funcpy_process


def dev_storage(ports: dict[str, int]) -> str:
    # The development account on ports of our own: funcpy start treats it as Azurite it may start.
    ep = {s: f"http://127.0.0.1:{p}/{DEV_ACCOUNT}" for s, p in ports.items()}
    return (f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"BlobEndpoint={ep['blob']};QueueEndpoint={ep['queue']};TableEndpoint={ep['table']};")


def post(url: str) -> dict:
    request = urllib.request.Request(url, method="POST", data=b'{"city": "Lima"}',
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 202
        return json.loads(r.read())


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {}


def test_own_azurite_is_started_persisted_and_stopped(tmp_path):
    app = tmp_path / "app"
    shutil.copytree(APPS / "http_app", app)
    ports = {"blob": free_port(), "queue": free_port(), "table": free_port()}
    env = {"AzureWebJobsStorage": dev_storage(ports), "TaskHubName": "CliHub"}

    with funcpy_process(app, env) as (proc, port, log):
        base = f"http://127.0.0.1:{port}/runtime/webhooks/durabletask"
        instance = post(f"{base}/orchestrators/hello_orchestrator/persisted-1")["id"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(STOP_SECONDS) == 0
    first = log.read_text()
    assert f"Started Azurite on 127.0.0.1 (data in {app / '.azurite'})" in first and "Stopped Azurite." in first
    assert not any(is_listening("127.0.0.1", p) for p in ports.values())
    assert (app / ".azurite").is_dir()

    # Start-up output like func start: functions with methods and URLs, triggers, API base, account, hub.
    assert f"hello: [GET] http://localhost:{port}/api/hello/{{name?}}" in first
    assert f"enqueue: [POST] http://localhost:{port}/api/enqueue/{{word}}" in first
    assert "hello_orchestrator: orchestrationTrigger" in first and "say_hello: activityTrigger" in first
    assert f"Durable management API: http://localhost:{port}/runtime/webhooks/durabletask/" in first
    assert f"Storage account:        devstoreaccount1 (Azurite at 127.0.0.1, tables on port {ports['table']})" in first
    assert ("Task hub:               CliHub (host.json extensions.durableTask.hubName '%TaskHubName%', "
            "app setting TaskHubName from the environment)") in first and DEV_KEY not in first

    with funcpy_process(app, env) as (proc, port, log):
        status, body = get(f"http://127.0.0.1:{port}/runtime/webhooks/durabletask/instances/{instance}")
        assert status in (200, 202) and body["input"] == {"city": "Lima"}  # it survived the restart
        proc.send_signal(signal.SIGINT)
        assert proc.wait(STOP_SECONDS) == 0
    assert "Stopped Azurite." in log.read_text()
    assert not any(is_listening("127.0.0.1", p) for p in ports.values())


def test_azurite_already_listening_is_reused_and_left_running(connection_string, azurite):
    env = {"AzureWebJobsStorage": connection_string, "TaskHubName": "CliReuse"}
    with funcpy_process(APPS / "http_app", env) as (proc, port, log):
        proc.send_signal(signal.SIGUSR1)  # funchost/diagnostics.py: a hung stop would explain itself
        deadline = time.monotonic() + 30
        while "--- end of stacks" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "in _serve" in log.read_text() and proc.poll() is None  # the main task's wait; it runs on
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(STOP_SECONDS) == 0
    output = log.read_text()
    assert "Using the Azurite already listening on 127.0.0.1." in output and "Stopped Azurite" not in output
    assert is_listening("127.0.0.1", azurite.ports["table"])


def test_port_in_use_is_a_clear_error(connection_string, tmp_path):
    import socket
    import subprocess

    from tests.apps.support import REPO, funcpy_command

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(funcpy_command("--script-root", str(APPS / "http_app"), "--port", str(port)),
                              capture_output=True, text=True, timeout=60, cwd=REPO,
                              env={**_environ(), "AzureWebJobsStorage": connection_string, "TaskHubName": "CliPort"})
    assert done.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)
