"""Which task hubs a storage account holds, found by their tables.

Every task hub of the Azure Storage provider has a ``{Hub}Instances`` and a
``{Hub}History`` table (``AzureStorageOrchestrationService``: the tracking
store's two tables), whatever its generation or partition manager, so a
pair of them is what marks a hub. Used to tell a person who named a hub that
does not exist which ones do.
"""

from __future__ import annotations

import re

from .storage import StorageAccount, map_storage_errors

_INSTANCES, _HISTORY = "Instances", "History"
_HUB = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,44}$")


async def list_task_hubs(account: StorageAccount) -> list[str]:
    """The names of the task hubs in ``account`` (tables ``{Hub}Instances`` and ``{Hub}History``), sorted."""
    instances: dict[str, str] = {}
    history: set[str] = set()
    with map_storage_errors("listing the tables of the storage account"):
        async with account.table_service() as service:
            async for table in service.list_tables():
                name = table.name
                # Table names are case-insensitive in Azure Storage: pair the two tables in any case.
                if name.endswith(_INSTANCES):
                    instances[name[: -len(_INSTANCES)].lower()] = name[: -len(_INSTANCES)]
                elif name.endswith(_HISTORY):
                    history.add(name[: -len(_HISTORY)].lower())
    return sorted((hub for key, hub in instances.items() if key in history and _HUB.match(hub)), key=str.lower)
