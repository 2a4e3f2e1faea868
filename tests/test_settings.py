"""Settings resolution and its errors: specific, one line, never a traceback or a secret."""

import json
import os
import subprocess
import sys

import pytest

from durable_mgmt.errors import InvalidInput, InvalidSetting
from durable_mgmt.settings import load_settings
from durable_mgmt.taskhub.storage import StorageAccount


def write(tmp_path, host=None, values=None):
    (tmp_path / "host.json").write_text(json.dumps(host or {"version": "2.0"}))
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": values or {}}))


def test_environment_wins_over_local_settings_and_hub_names_expand(tmp_path):
    write(tmp_path, {"extensions": {"durableTask": {"hubName": "%HubSetting%"}}}, {"HubSetting": "FromFile", "X": "1"})
    s = load_settings(tmp_path, environ={"HubSetting": "FromEnv"})
    assert s.hub_name() == "FromEnv" and s.get("X") == "1"
    assert load_settings(tmp_path, environ={}).hub_name() == "FromFile"
    assert s.hub_name("Explicit") == "Explicit"
    write(tmp_path)
    assert load_settings(tmp_path, environ={}).hub_name() == "DurableFunctionsHub"


def test_durable_connection_setting_comes_from_host_json(tmp_path):
    write(tmp_path, {"extensions": {"durableTask": {"storageProvider": {"connectionName": "MyStorage"}}}})
    s = load_settings(tmp_path, environ={})
    assert s.durable_connection_setting() == "MyStorage"
    assert s.durable_connection_setting("Other") == "Other"
    write(tmp_path)
    assert load_settings(tmp_path, environ={}).durable_connection_setting() == "AzureWebJobsStorage"


@pytest.mark.parametrize("host,fragment", [
    ({"extensions": {"durableTask": {"hubName": "%Missing%"}}}, "refers to %Missing%, but no app setting 'Missing'"),
    ({"extensions": {"durableTask": {"hubName": "bad-hub"}}}, "Invalid task hub name 'bad-hub'"),
    ({"extensions": {"durableTask": {"storageProvider": {"partitionCount": "four"}}}},
     "partitionCount is 'four'; it must be a whole number from 1 to 16"),
    ({"extensions": {"durableTask": {"storageProvider": {"partitionCount": 32}}}}, "from 1 to 16"),
])
def test_bad_host_json_values(tmp_path, host, fragment):
    write(tmp_path, host)
    s = load_settings(tmp_path, environ={})
    with pytest.raises(InvalidInput) as e:
        s.hub_name()
        s.partition_count()
    assert fragment in str(e.value)


def test_bad_connection_strings_never_quote_their_values():
    secret = "sk-live-9f8e7d6c5b4a"
    for value, fragment in [(secret, "part 1 of 1"), (f"AccountName=a;{secret}", "part 2 of 2"),
                            ("AccountName=a;TableEndpoint=http://[::1", "malformed TableEndpoint"),
                            ("", "is empty")]:
        with pytest.raises(InvalidSetting) as e:
            StorageAccount.from_connection_string(value, "app setting 'S'")
        assert fragment in str(e.value) and secret[:5] not in str(e.value)


def test_cli_reports_bad_settings_in_one_line(tmp_path):
    write(tmp_path, {"extensions": {"durableTask": {"hubName": "Hub1", "storageProvider": {"partitionCount": "four"}}}},
          {"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    r = subprocess.run([sys.executable, "-m", "funchost", "durable", "count", "--script-root", str(tmp_path)],
                       capture_output=True, text=True, env={**os.environ}, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "partitionCount is 'four'" in r.stderr
