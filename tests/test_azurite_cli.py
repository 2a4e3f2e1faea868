"""`funcpy azurite`: the emulator alone, on the app's development-storage ports, stopped cleanly."""

import json
import os
import signal
import subprocess
import sys
import time

from durable_mgmt.taskhub.storage import StorageAccount
from funchost.azurite import free_port, is_listening


def test_runs_on_the_apps_ports_persisting_to_dot_azurite_and_stops(tmp_path):
    ports = {s: free_port() for s in ("blob", "queue", "table")}
    account = StorageAccount.development(ports=ports)
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {
        "AzureWebJobsStorage": account.connection_string}}))
    env = {k: v for k, v in os.environ.items() if k != "AzureWebJobsStorage"}
    proc = subprocess.Popen([sys.executable, "-m", "funchost", "azurite", "--script-root", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert "Azurite listening on 127.0.0.1" in line and str(ports["table"]) in line
        assert all(is_listening("127.0.0.1", p) for p in ports.values())
        assert (tmp_path / ".azurite").is_dir()
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0 and "Stopped Azurite." in out
    time.sleep(0.2)
    assert not any(is_listening("127.0.0.1", p) for p in ports.values())


def test_refuses_a_real_storage_account(tmp_path):
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {
        "AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountName=prod;AccountKey=abc;"}}))
    env = {k: v for k, v in os.environ.items() if k != "AzureWebJobsStorage"}
    r = subprocess.run([sys.executable, "-m", "funchost", "azurite", "--script-root", str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 2 and "not the development storage" in r.stderr and "abc" not in r.stderr
