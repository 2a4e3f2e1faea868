"""Storage clients per connection setting, shared by triggers and output bindings.

A binding names an app setting (``connection="MyStorage"``, default
``AzureWebJobsStorage``); this resolves it once, opens async service clients
on first use and closes them all at shutdown.
"""

from __future__ import annotations

from typing import Any

from durable_mgmt.settings import DEFAULT_CONNECTION_SETTING, AppSettings
from durable_mgmt.taskhub import StorageAccount


def setting_name(binding: dict[str, Any] | Any) -> str:
    """The connection setting a binding uses (``connection``, else the default)."""
    name = binding.get("connection") if hasattr(binding, "get") else None
    return str(name) if name else DEFAULT_CONNECTION_SETTING


class Connections:
    def __init__(self, settings: AppSettings):
        self._settings = settings
        self._accounts: dict[str, StorageAccount] = {}
        self._clients: dict[tuple[str, str], Any] = {}

    def account(self, setting: str = DEFAULT_CONNECTION_SETTING) -> StorageAccount:
        """The account of app setting ``setting``; InvalidSetting naming it when unset or malformed."""
        account = self._accounts.get(setting)
        if account is None:
            account = self._accounts[setting] = self._settings.storage_account(setting)
        return account

    def queue_service(self, setting: str = DEFAULT_CONNECTION_SETTING):
        return self._client(setting, "queue")

    def table_service(self, setting: str = DEFAULT_CONNECTION_SETTING):
        return self._client(setting, "table")

    def blob_service(self, setting: str = DEFAULT_CONNECTION_SETTING):
        return self._client(setting, "blob")

    def _client(self, setting: str, kind: str):
        key = (setting, kind)
        client = self._clients.get(key)
        if client is None:
            account = self.account(setting)
            client = self._clients[key] = getattr(account, f"{kind}_service")()
        return client

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()
