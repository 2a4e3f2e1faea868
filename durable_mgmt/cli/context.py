"""Which task hub a command works on, resolved as Core Tools and the Functions host resolve it.

Every command takes the same options: ``--connection-string-setting`` (the
name of the app setting that holds the connection string),
``--task-hub-name``, ``--script-root`` (where host.json and
local.settings.json live; the current directory by default) and
``--output``. Values come from the environment first, then
local.settings.json ``Values``; the hub name from the option, else host.json
``hubName`` (``%Setting%`` expanded), else the extension's default
(``durable_mgmt.settings``).

Every command says on stderr which hub it works on and where that name came
from, before its work: a wrong hub is the most common way to "lose"
instances. A command that finds its hub missing says which hubs the account
does hold.
"""

from __future__ import annotations

import asyncio
import difflib
import functools
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import click

from ..errors import TaskHubNotFound
from ..manager import InstanceManager
from ..settings import DEFAULT_CONNECTION_SETTING, AppSettings, HubChoice, load_settings
from ..taskhub import StorageAccount
from ..taskhub.discovery import list_task_hubs
from .output import Output, OutputFormat

T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    """The resolved task hub of one command invocation, and where its output goes."""

    settings: AppSettings
    connection_setting: str
    hub: HubChoice
    output: Output

    @property
    def hub_name(self) -> str:
        return self.hub.name

    @asynccontextmanager
    async def manager(self) -> AsyncIterator[InstanceManager]:
        """An ``InstanceManager`` over the hub in storage; storage clients are closed on exit."""
        manager = await InstanceManager.connect(
            self.account, self.hub_name, partition_count=self.settings.partition_count(),
            partition_count_configured=self.settings.partition_count_configured)
        async with manager:
            yield manager

    @functools.cached_property
    def account(self) -> StorageAccount:
        return self.settings.storage_account(self.connection_setting)

    def run(self, work: Callable[[InstanceManager], Awaitable[T]]) -> T:
        """Run ``work(manager)`` on a fresh event loop: the CLI's one sync-to-async boundary.

        Says first which hub and account it works on; a missing hub becomes an
        error that lists the hubs the account does hold.
        """

        async def main() -> T:
            async with self.manager() as manager:
                self.output.note(f"{self.hub.describe()}; storage {self.account.describe()}, from app "
                                 f"setting {self.connection_setting}.")
                for warning in manager.warnings:
                    self.output.note(f"Warning: {warning}")
                try:
                    return await work(manager)
                except TaskHubNotFound as e:
                    if e.hub_name != self.hub_name:
                        raise
                    raise TaskHubNotFound(self.hub_name, await self.missing_hub_message()) from None

        return asyncio.run(main())

    async def other_hubs(self) -> list[str]:
        """The account's other hubs, those whose names are close to this one first (the likely typos)."""
        others = [h for h in await list_task_hubs(self.account) if h != self.hub_name]
        close = difflib.get_close_matches(self.hub_name.lower(), [h.lower() for h in others], n=5, cutoff=0.6)
        return sorted(others, key=lambda h: (h.lower() not in close, close.index(h.lower()) if h.lower() in close
                                             else 0, h.lower()))

    async def warn_if_missing(self, manager: InstanceManager, consequence: str) -> None:
        """A warning on stderr when the hub does not exist while others do (e.g. start-new creates it)."""
        if await manager.hub_exists():
            return
        others = await self.other_hubs()
        if others:
            self.output.note(f"Warning: task hub '{self.hub_name}' does not exist; {consequence} Task hubs in this "
                             f"account: {_some(others)}. Name one with --task-hub-name if you meant it.")

    async def missing_hub_message(self) -> str:
        """Why the hub is missing and what to do, naming the hubs the account holds."""
        others = await self.other_hubs()
        text = (f"Task hub '{self.hub_name}' does not exist in storage account {self.account.account_name} "
                f"(the name is {self.hub.source}).")
        if others:
            case = [h for h in others if h.lower() == self.hub_name.lower()]
            if case:
                text += f" A hub named '{case[0]}' exists: give its name in that exact case."
            return text + (f" Task hubs in this account: {_some(others)}. Name one with --task-hub-name, "
                           "or set hubName in host.json.")
        return text + (" The account holds no task hub yet: a host started on it (or start-new) creates one; "
                       "check the connection setting if you expected instances here.")


def _some(names: list[str], shown: int = 10) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def hub_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the common options and pass the resolved ``target`` to the command."""

    @click.option("--connection-string-setting", "connection_setting", metavar="NAME", default=None,
                  help="Name of the app setting that holds the storage connection string "
                       f"[default: {DEFAULT_CONNECTION_SETTING}].")
    @click.option("--task-hub-name", "task_hub_name", metavar="NAME", default=None,
                  help="Task hub name [default: host.json's hubName, else the extension's default: "
                       "WEBSITE_SITE_NAME sanitized, else TestHubName; DurableFunctionsHub for a 1.x host.json].")
    @click.option("--script-root", type=click.Path(file_okay=False, path_type=Path), default=".",
                  show_default=True, help="Folder holding host.json and local.settings.json.")
    @click.option("--output", "-o", "output_format", type=click.Choice(["table", "json", "jsonl", "csv"], case_sensitive=False),
                  default=None, help="Output format [default: table on a terminal, json when piped]; jsonl and csv stream "
                       "get-instances listings.")
    @functools.wraps(func)
    def wrapper(*args: Any, connection_setting: str | None, task_hub_name: str | None, script_root: Path,
                output_format: str | None, **kwargs: Any) -> Any:
        settings = load_settings(script_root)
        # The option, else the provider's connection name in host.json, else AzureWebJobsStorage.
        target = Target(settings, settings.durable_connection_setting(connection_setting),
                        settings.hub_choice(task_hub_name), Output(OutputFormat.choose(output_format)))
        return func(*args, target=target, **kwargs)

    return wrapper
