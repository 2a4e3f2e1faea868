"""Which task hub `funcpy durable` works on, said on every run, and what it says when that hub is missing.

Issue 10, items 9 and 10: the hub comes from host.json as the Functions host
reads it, else the extension's default (durable_mgmt.settings); the command
names it and its source on stderr (stdout stays clean JSON), and a missing hub
is reported with the hubs the account does hold (tables {Hub}Instances and
{Hub}History, as AzureStorageOrchestrationService creates them).
"""

from __future__ import annotations

import json
import re

import pytest

from durable_mgmt.taskhub import TaskHub
from durable_mgmt.taskhub.discovery import list_task_hubs
from durable_mgmt.taskhub.events import EventType

from .test_cli_commands import control_messages, filled  # noqa: F401 (fixture)
from .test_cli_support import Cli, cli, one_error_line  # noqa: F401 (fixture)


async def test_every_command_names_its_hub_and_where_the_name_came_from(cli, filled):
    result = await cli.ok("count", "--output", "json")
    assert json.loads(result.stdout)["Total"] == 6  # stdout: only the JSON document
    note = result.stderr.strip()
    assert note.startswith(f"Task hub '{filled.name}' (host.json extensions.durableTask.hubName '%CLI_TEST_HUB%', "
                           "app setting CLI_TEST_HUB from the environment); storage devstoreaccount1 (Azurite at ")
    assert note.endswith(", from app setting AzureWebJobsStorage.") and "AccountKey" not in note
    table = await cli.ok("get-runtime-status", "--id", "done-1", "--task-hub-name", filled.name, "--output", "table")
    assert table.stderr.startswith(f"Task hub '{filled.name}' (--task-hub-name); storage ")


async def test_a_missing_hub_is_an_error_that_lists_the_hubs_the_account_holds(cli, filled, tmp_path):
    # No hubName in host.json: the extension's default, here from WEBSITE_SITE_NAME (AzureStorageOptions.
    # IsSanitizedHubName turns the site name into a valid hub name).
    root = tmp_path / "site"
    root.mkdir()
    (root / "host.json").write_text(json.dumps({"version": "2.0"}))
    site = filled.name + "-old"   # close to the existing hub's name, so it is listed first
    result = await cli("get-instances", "--script-root", str(root), env={"WEBSITE_SITE_NAME": site})
    line = one_error_line(result)
    assert result.code == 1 and result.stdout == ""
    sanitized = filled.name + "old"
    assert line.startswith(f"Error: Task hub '{sanitized}' does not exist in storage account devstoreaccount1 (the "
                           "name is the extension's default: host.json extensions.durableTask.hubName is not set, so "
                           f"app setting WEBSITE_SITE_NAME '{site}' sanitized to '{sanitized}', from the environment).")
    listed = line.split("Task hubs in this account: ", 1)[1]
    assert listed.startswith(filled.name), line
    assert "Name one with --task-hub-name, or set hubName in host.json." in line
    # Nothing was created by the failed read.
    assert sanitized not in await list_task_hubs(filled.account)


async def test_start_new_on_a_missing_hub_warns_naming_the_existing_ones(cli, filled, account):
    missing = filled.name + "New"
    try:
        result = await cli.ok("start-new", "--function-name", "HelloCities", "--task-hub-name", missing,
                              "--output", "json")
        assert result.json["name"] == "HelloCities"
        warning = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
        assert len(warning) == 1 and warning[0].startswith(
            f"Warning: task hub '{missing}' does not exist; start-new creates it, and only a host running on it runs "
            f"this instance. Task hubs in this account: {filled.name}")
        again = await cli.ok("start-new", "--function-name", "HelloCities", "--task-hub-name", missing)
        assert "Warning:" not in again.stderr  # it exists now
    finally:
        async with TaskHub(account, missing) as created:
            await created.delete()


async def test_list_task_hubs_pairs_instances_and_history_tables(account, hub):
    from azure.data.tables.aio import TableServiceClient

    lone = hub.name + "Lone"
    async with TableServiceClient.from_connection_string(account.connection_string) as tables:
        await tables.create_table(lone + "Instances")  # no History table: not a task hub
        try:
            found = await list_task_hubs(account)
        finally:
            await tables.delete_table(lone + "Instances")
    assert hub.name in found and lone not in found


# --- item 10: Core Tools' raise-event default name ------------------------------------------------


async def test_raise_event_without_a_name_uses_core_tools_default(cli, filled):
    """Core Tools' DurableRaiseEvent: --event-name defaults to $"Event_{Guid.NewGuid():N}" (32 hex digits)."""
    first = await cli.json("raise-event", "--id", "live-1", "--event-data", "1")
    second = await cli.json("raise-event", "--id", "live-1")
    names = [first["eventName"], second["eventName"]]
    assert all(re.fullmatch(r"Event_[0-9a-f]{32}", n) for n in names) and names[0] != names[1]
    msgs = await control_messages(filled, "live-1")
    assert [(m.event.type, m.event.get("Name")) for m in msgs] == [(EventType.EventRaised, n) for n in names]
    table = await cli.ok("raise-event", "--id", "live-1", "--output", "table")
    assert re.fullmatch(r"Raised event 'Event_[0-9a-f]{32}' to instance 'live-1'\.", table.stdout.strip())


@pytest.mark.parametrize("args,fragment", [
    (("--event-name", ""), "event name"),
])
async def test_raise_event_with_an_empty_name_is_refused(cli, filled, args, fragment):
    result = await cli("raise-event", "--id", "live-1", *args)
    assert result.code == 2 and fragment in one_error_line(result).lower()
    assert [m for m in await control_messages(filled, "live-1")] == []
