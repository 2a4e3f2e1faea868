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

from durable_mgmt import InstanceManager
from durable_mgmt.errors import InvalidInput, TaskHubNotFound
from durable_mgmt.settings import DEFAULT_CONNECTION_NAME, DEFAULT_CONNECTION_SETTING, AppSettings
from durable_mgmt.taskhub import validate_hub_name

MAX_HUBS = 16


class HubDirectory:
    """One ``InstanceManager`` (over the task hub in storage) per hub the management API addresses."""

    def __init__(self, default: InstanceManager, settings: AppSettings, *,
                 default_setting: str = DEFAULT_CONNECTION_SETTING, allowed_connections: Iterable[str] = ()):
        self._settings = settings
        self._default_setting = _setting(default_setting)
        self._allowed = {_setting(c).lower() for c in (default_setting, DEFAULT_CONNECTION_NAME,
                                                         *allowed_connections)}
        self._default_key = (str(default.hub_name).lower(), self._default_setting.lower())
        self._managers: dict[tuple[str, str], InstanceManager] = {self._default_key: default}
        self._opened: list[InstanceManager] = []
        self._lock = asyncio.Lock()

    @property
    def default(self) -> InstanceManager:
        return self._managers[self._default_key]

    async def manager(self, hub_name: str | None = None, connection: str | None = None) -> InstanceManager:
        """The manager of ``hub_name`` over the connection ``connection``; InvalidInput if not allowed,
        TaskHubNotFound if that hub (not the host's own) does not exist."""
        name = validate_hub_name(hub_name) if hub_name else str(self.default.hub_name)
        setting = _setting(connection) if connection else self._default_setting
        if setting.lower() not in self._allowed:
            raise InvalidInput(f"connection={connection!r} is not a storage connection of this app. Use "
                               f"'{DEFAULT_CONNECTION_NAME}', or the connectionName of one of its durable client "
                               "bindings.")
        key = (name.lower(), setting.lower())
        found = self._managers.get(key)
        if found is not None:
            if key != self._default_key:
                await _require(found)  # deleted since? then it stays deleted: TaskHubNotFound
            return found
        async with self._lock:
            if key not in self._managers:
                if len(self._managers) >= MAX_HUBS:
                    raise InvalidInput(f"This host serves at most {MAX_HUBS} task hubs through its management API; "
                                       f"taskHub={hub_name!r} would be one more.")
                manager = await InstanceManager.connect(
                    self._settings.storage_account(setting), name, partition_count=self._settings.partition_count(),
                    partition_count_configured=self._settings.partition_count_configured)
                try:
                    await _require(manager)
                except BaseException:
                    await manager.aclose()
                    raise
                self._opened.append(manager)
                self._managers[key] = manager
        return self._managers[key]

    async def close(self) -> None:
        managers, self._opened = self._opened, []
        for manager in managers:
            await manager.aclose()


async def _require(manager: InstanceManager) -> None:
    if not await manager.hub_exists():
        raise TaskHubNotFound(str(manager.hub_name))


def _setting(connection: str) -> str:
    # "Storage" is the extension's name for AzureWebJobsStorage.
    return DEFAULT_CONNECTION_SETTING if connection.lower() in ("storage", "azurewebjobsstorage") else connection
