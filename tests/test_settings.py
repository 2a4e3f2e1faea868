"""Settings resolution and its errors: specific, one line, never a traceback or a secret."""

import json
import os
import subprocess
import sys

import pytest

from durable_mgmt.errors import InvalidInput, InvalidSetting
from durable_mgmt.settings import load_settings, sanitize_hub_name
from durable_mgmt.taskhub.storage import StorageAccount


def write(tmp_path, host=None, values=None):
    host = {"version": "2.0", **(host or {})}  # the 2.0 layout unless a test says otherwise
    (tmp_path / "host.json").write_text(json.dumps(host))
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": values or {}}))


def test_environment_wins_over_local_settings_and_hub_names_expand(tmp_path):
    write(tmp_path, {"extensions": {"durableTask": {"hubName": "%HubSetting%"}}}, {"HubSetting": "FromFile", "X": "1"})
    s = load_settings(tmp_path, environ={"HubSetting": "FromEnv"})
    assert s.hub_name() == "FromEnv" and s.get("X") == "1"
    assert load_settings(tmp_path, environ={}).hub_name() == "FromFile"
    assert s.hub_name("Explicit") == "Explicit"
    write(tmp_path)
    assert load_settings(tmp_path, environ={}).hub_name() == "TestHubName"  # the extension's default (2.x+)


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


# --- host.json read as the Functions host reads it (issue 10, item 9) ---------------------------


def test_host_json_keys_and_setting_names_match_in_any_case(tmp_path):
    """The host reads host.json and app settings through IConfiguration, whose keys are case-insensitive."""
    write(tmp_path, {"Extensions": {"DurableTask": {"HubName": "%hub_setting%", "StorageProvider": {
        "PartitionCount": 6, "ConnectionName": "mystorage"}}}},
        {"HUB_SETTING": "CaseHub", "MyStorage": "UseDevelopmentStorage=true"})
    s = load_settings(tmp_path, environ={})
    assert s.hub_name() == "CaseHub" and s.partition_count() == 6
    assert s.durable_connection_setting() == "mystorage"
    assert s.connection_string("mystorage") == "UseDevelopmentStorage=true"
    choice = s.hub_choice()
    assert choice.source == ("host.json extensions.durableTask.hubName '%hub_setting%', "
                             "app setting hub_setting from local.settings.json")


def test_connection_names_are_looked_up_with_the_azurewebjobs_prefix_first(tmp_path):
    """ConfigurationExtensions.GetWebJobsConnectionSection (the extension): AzureWebJobs{name}, then {name}."""
    write(tmp_path, values={"AzureWebJobsMine": "UseDevelopmentStorage=true", "Mine": "AccountName=other",
                            "AzureWebJobsStorage": "AccountName=default"})
    s = load_settings(tmp_path, environ={})
    assert s.connection_string("Mine") == "UseDevelopmentStorage=true"
    assert s.connection_string("Storage") == "AccountName=default"  # the extension's name for AzureWebJobsStorage
    with pytest.raises(InvalidSetting, match="No connection string in app setting 'Nope'"):
        s.connection_string("Nope")


def test_without_version_2_host_json_is_read_in_the_1x_layout(tmp_path):
    """Core Tools' DurableManager.TrySetConnectionStringAndTaskHubName: "version": "2.0" → extensions.durableTask,
    anything else → a top-level durableTask whose partitionCount and connection name sit directly in it."""
    (tmp_path / "host.json").write_text(json.dumps({"durableTask": {
        "HubName": "V1Hub", "partitionCount": 3, "azureStorageConnectionStringName": "V1Storage"}}))
    s = load_settings(tmp_path, environ={})
    assert (s.hub_name(), s.partition_count(), s.durable_connection_setting()) == ("V1Hub", 3, "V1Storage")
    assert s.hub_choice().source == "host.json durableTask.hubName"
    # The same section in a 2.0 host.json is not where the host looks: the extension's default applies.
    write(tmp_path, {"durableTask": {"hubName": "V1Hub", "partitionCount": 3}})
    s = load_settings(tmp_path, environ={})
    assert (s.hub_name(), s.partition_count()) == ("TestHubName", 4)
    # A 1.x host.json with no hub name: 1.x's default, DurableFunctionsHub (the document's default).
    (tmp_path / "host.json").write_text(json.dumps({}))
    choice = load_settings(tmp_path, environ={"WEBSITE_SITE_NAME": "ignored-in-1x"}).hub_choice()
    assert choice.name == "DurableFunctionsHub" and "1.x default" in choice.source


@pytest.mark.parametrize("site,expected", [
    ("my-func-app", "myfuncapp"),     # only letters and digits are kept
    ("1st-app", "t1stapp"),           # a leading digit gets a 't'
    ("a-b", "abHub"),                 # padded with 'Hub' below 3 characters
    ("---", "DefaultTaskHub"),        # nothing left
    ("x" * 60, "x" * 45),             # at most 45 characters
    ("Already1", "Already1"),
])
def test_default_hub_is_the_sanitized_site_name(tmp_path, site, expected):
    """AzureStorageOptions.IsSanitizedHubName, applied by AzureStorageDurabilityProviderFactory to the default
    name DurableTaskOptions.HubName takes from WEBSITE_SITE_NAME when host.json sets none."""
    assert sanitize_hub_name(site) == expected
    write(tmp_path)
    choice = load_settings(tmp_path, environ={"WEBSITE_SITE_NAME": site}).hub_choice()
    assert choice.name == expected and "WEBSITE_SITE_NAME" in choice.source and "the environment" in choice.source


def test_an_empty_site_name_is_an_empty_hub_name_as_the_extension_sees_it(tmp_path):
    """DurableTaskOptions.HubName = Environment.GetEnvironmentVariable("WEBSITE_SITE_NAME") ?? "TestHubName": an
    empty value is not null, and DurableTaskOptions.Validate refuses the empty hub name."""
    write(tmp_path)
    with pytest.raises(InvalidSetting) as refused:
        load_settings(tmp_path, environ={"WEBSITE_SITE_NAME": ""}).hub_choice()
    message = str(refused.value)
    assert "WEBSITE_SITE_NAME is set but empty" in message and "the environment" in message
    assert "extensions.durableTask.hubName" in message and "'TestHubName'" in message
    write(tmp_path, values={"WEBSITE_SITE_NAME": ""})
    with pytest.raises(InvalidSetting, match="local.settings.json"):
        load_settings(tmp_path, environ={}).hub_choice()
    # Unset, the default applies; a hub name in host.json is used whatever the variable holds.
    write(tmp_path)
    assert load_settings(tmp_path, environ={}).hub_choice().name == "TestHubName"
    write(tmp_path, {"extensions": {"durableTask": {"hubName": "MyHub"}}})
    assert load_settings(tmp_path, environ={"WEBSITE_SITE_NAME": ""}).hub_choice().name == "MyHub"


def test_default_hub_sources_and_a_configured_name_equal_to_the_default(tmp_path):
    write(tmp_path, values={"WEBSITE_SITE_NAME": "my-app"})
    choice = load_settings(tmp_path, environ={}).hub_choice()
    assert choice.name == "myapp"
    assert choice.source == ("the extension's default: host.json extensions.durableTask.hubName is not set, so app "
                             "setting WEBSITE_SITE_NAME 'my-app' sanitized to 'myapp', from local.settings.json")
    # An empty variable does not hide local.settings.json: Core Tools fills it (StartHostAction only skips a
    # local setting whose variable is non-empty).
    choice = load_settings(tmp_path, environ={"WEBSITE_SITE_NAME": ""}).hub_choice()
    assert choice.name == "myapp" and "from local.settings.json" in choice.source
    # A hubName that resolves to the default is the default to the extension (IsDefaultHubName): sanitized too.
    write(tmp_path, {"extensions": {"durableTask": {"hubName": "%WEBSITE_SITE_NAME%"}}}, {"WEBSITE_SITE_NAME": "my-app"})
    choice = load_settings(tmp_path, environ={}).hub_choice()
    assert choice.name == "myapp" and "sanitized to 'myapp'" in choice.source
    assert load_settings(tmp_path, environ={}).hub_choice("Explicit").source == "--task-hub-name"
