"""The task hubs the management API may address: the host's own, and others on request.

Every management call may carry ``taskHub`` and ``connection`` (as the
extension allows); without them it is the host's hub. Other hubs are opened
on first use, kept for the host's lifetime, and closed with it.
"""

from __future__ import annotations

import asyncio

from durable_mgmt.settings import AppSettings
from durable_mgmt.taskhub import TaskHub, TaskHubClient, validate_hub_name

from .durable_links import DEFAULT_CONNECTION_NAME


class HubDirectory:
    def __init__(self, default: TaskHub, settings: AppSettings, default_connection: str = DEFAULT_CONNECTION_NAME):
        self._settings = settings
        self._default_key = (default.name.lower(), _setting(default_connection))
        self._clients: dict[tuple[str, str], TaskHubClient] = {self._default_key: TaskHubClient(default)}
        self._opened: list[TaskHub] = []
        self._lock = asyncio.Lock()

    @property
    def default(self) -> TaskHubClient:
        return self._clients[self._default_key]

    async def client(self, hub_name: str | None = None, connection: str | None = None) -> TaskHubClient:
        """The client for ``hub_name`` over app setting ``connection``; InvalidHubName/InvalidSetting if bad."""
        name = validate_hub_name(hub_name) if hub_name else self.default.hub.name
        key = (name.lower(), _setting(connection) if connection else self._default_key[1])
        found = self._clients.get(key)
        if found is not None:
            return found
        async with self._lock:
            if key not in self._clients:
                account = self._settings.storage_account(key[1])
                hub = TaskHub(account, name, self._settings.partition_count())
                await hub.open()
                self._opened.append(hub)
                self._clients[key] = TaskHubClient(hub)
        return self._clients[key]

    async def close(self) -> None:
        hubs, self._opened = self._opened, []
        for hub in hubs:
            await hub.close()


def _setting(connection: str) -> str:
    # "Storage" is the extension's name for AzureWebJobsStorage; AppSettings resolves both spellings.
    return "AzureWebJobsStorage" if connection.lower() in ("storage", "azurewebjobsstorage") else connection
