"""Which task hub a command works on, resolved as Core Tools and the Functions host resolve it.

Every command takes the same options: ``--connection-string-setting`` (the
name of the app setting that holds the connection string),
``--task-hub-name``, ``--script-root`` (where host.json and
local.settings.json live; the current directory by default) and
``--output``. Values come from the environment first, then
local.settings.json ``Values``; the hub name from the option, else host.json
``extensions.durableTask.hubName`` (``%Setting%`` expanded), else
``DurableFunctionsHub``.
"""

from __future__ import annotations

import asyncio
import functools
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import click

from ..settings import DEFAULT_CONNECTION_SETTING, AppSettings, load_settings
from ..taskhub import TaskHub, TaskHubClient
from .output import Output, OutputFormat

T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    """The resolved task hub of one command invocation, and where its output goes."""

    settings: AppSettings
    connection_setting: str
    hub_name: str
    output: Output

    @asynccontextmanager
    async def client(self) -> AsyncIterator[TaskHubClient]:
        """An opened ``TaskHubClient`` on the hub; storage clients are closed on exit."""
        account = self.settings.storage_account(self.connection_setting)
        async with TaskHub(account, self.hub_name, self.settings.partition_count()) as hub:
            yield TaskHubClient(hub)

    def run(self, work: Callable[[TaskHubClient], Awaitable[T]]) -> T:
        """Run ``work(client)`` on a fresh event loop: the CLI's one sync-to-async boundary."""

        async def main() -> T:
            async with self.client() as client:
                return await work(client)

        return asyncio.run(main())


def hub_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the common options and pass the resolved ``target`` to the command."""

    @click.option("--connection-string-setting", "connection_setting", metavar="NAME", default=None,
                  help="Name of the app setting that holds the storage connection string "
                       f"[default: {DEFAULT_CONNECTION_SETTING}].")
    @click.option("--task-hub-name", "task_hub_name", metavar="NAME", default=None,
                  help="Task hub name [default: host.json extensions.durableTask.hubName, else DurableFunctionsHub].")
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
                        settings.hub_name(task_hub_name), Output(OutputFormat.choose(output_format)))
        return func(*args, target=target, **kwargs)

    return wrapper
