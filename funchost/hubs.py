"""The task hubs the management API may address: the host's own, and others on request.

Every management call may carry ``taskHub`` and ``connection`` (as the
extension allows); without them it is the host's hub. ``connection`` may only
name a storage connection the app itself uses (the host's, or a durable
client binding's ``connectionName``): any other app setting is refused
without being read, so a caller cannot make the host use, or echo, settings
that are not storage connections. Other hubs are opened on first use, at most
``MAX_HUBS`` of them, and closed with the host; they must already exist: only
the host's own hub is created on demand, so a caller naming ``taskHub`` cannot
make the host create tables, queues and containers (404 TaskHubNotFound).
"""

from __future__ import annotations

import asyncio
from typing import Iterable

from durable_mgmt.errors import InvalidInput
from durable_mgmt.settings import DEFAULT_CONNECTION_NAME, DEFAULT_CONNECTION_SETTING, AppSettings
from durable_mgmt.taskhub import TaskHub, TaskHubClient, validate_hub_name

MAX_HUBS = 16


class HubDirectory:
    def __init__(self, default: TaskHub, settings: AppSettings, *, default_setting: str = DEFAULT_CONNECTION_SETTING,
                 allowed_connections: Iterable[str] = ()):
        self._settings = settings
        self._default_setting = _setting(default_setting)
        self._allowed = {_setting(c).lower() for c in (default_setting, DEFAULT_CONNECTION_NAME,
                                                         *allowed_connections)}
        self._default_key = (default.name.lower(), self._default_setting.lower())
        self._clients: dict[tuple[str, str], TaskHubClient] = {self._default_key: TaskHubClient(default)}
        self._opened: list[TaskHub] = []
        self._lock = asyncio.Lock()

    @property
    def default(self) -> TaskHubClient:
        return self._clients[self._default_key]

    async def client(self, hub_name: str | None = None, connection: str | None = None) -> TaskHubClient:
        """The client for ``hub_name`` over the connection ``connection``; InvalidInput if not allowed."""
        name = validate_hub_name(hub_name) if hub_name else self.default.hub.name
        setting = _setting(connection) if connection else self._default_setting
        if setting.lower() not in self._allowed:
            raise InvalidInput(f"connection={connection!r} is not a storage connection of this app. Use "
                               f"'{DEFAULT_CONNECTION_NAME}', or the connectionName of one of its durable client "
                               "bindings.")
        key = (name.lower(), setting.lower())
        found = self._clients.get(key)
        if found is not None:
            if key != self._default_key:
                await found.hub.require()  # deleted since? then it stays deleted: TaskHubNotFound
            return found
        async with self._lock:
            if key not in self._clients:
                if len(self._clients) >= MAX_HUBS:
                    raise InvalidInput(f"This host serves at most {MAX_HUBS} task hubs through its management API; "
                                       f"taskHub={hub_name!r} would be one more.")
                hub = TaskHub(self._settings.storage_account(setting), name, self._settings.partition_count(),
                              partition_count_configured=self._settings.partition_count_configured)
                await hub.open()
                try:
                    await hub.require()
                except BaseException:
                    await hub.close()
                    raise
                self._opened.append(hub)
                self._clients[key] = TaskHubClient(hub)
        return self._clients[key]

    async def close(self) -> None:
        hubs, self._opened = self._opened, []
        for hub in hubs:
            await hub.close()


def _setting(connection: str) -> str:
    # "Storage" is the extension's name for AzureWebJobsStorage.
    return DEFAULT_CONNECTION_SETTING if connection.lower() in ("storage", "azurewebjobsstorage") else connection
