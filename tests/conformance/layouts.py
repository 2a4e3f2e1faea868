"""Partition layouts as the provider writes them (a minimal version; h2-partitions owns the full one).

``write_layout(account, hub_name, generation, partition_count)``:

* "v3" (DurableTask.AzureStorage 2.x, extension v3): the table partition manager is the default
  (AzureStorageOrchestrationServiceSettings.UseTablePartitionManagement = true): a ``{Hub}Partitions``
  table with one row per control queue, PartitionKey "" and RowKey the queue name
  (src/DurableTask.AzureStorage/Partitioning/TablePartitionManager.cs CreateLease, TablePartitionLease.cs);
  no taskhub.json.
* "v2" (DurableTask.AzureStorage 1.17.x, extension v2): the Safe blob manager
  (Partitioning/SafePartitionManager.cs at durabletask.azurestorage-v1.17.5): ``{hub}-leases`` holds
  ``taskhub.json`` (BlobLeaseManager.CreateTaskHubInfoIfNotExistAsync) and, per control queue,
  ``intent/{queue}`` and ``ownership/{queue}`` blobs holding the serialized BlobLease
  (BlobLeaseManager.CreateLeaseIfNotExistAsync); the app lease container ``{hub}-applease``
  (Partitioning/AppLeaseManager.cs).
"""

from __future__ import annotations

import json

from azure.core.exceptions import ResourceExistsError

CREATED_AT = "2026-03-01T11:59:00.0000000Z"


async def write_layout(account, hub_name: str, generation: str, partition_count: int) -> None:
    queues = [f"{hub_name.lower()}-control-{i:02d}" for i in range(partition_count)]
    if generation == "v3":
        async with account.table_service() as tables:
            try:
                await tables.create_table(f"{hub_name}Partitions")
            except ResourceExistsError:
                pass
            table = tables.get_table_client(f"{hub_name}Partitions")
            for q in queues:
                await table.upsert_entity({"PartitionKey": "", "RowKey": q, "IsDraining": False})
        return
    if generation != "v2":
        raise ValueError(f"generation must be 'v2' or 'v3', not {generation!r}")
    async with account.blob_service() as blobs:
        leases = blobs.get_container_client(f"{hub_name.lower()}-leases")
        for container in (leases, blobs.get_container_client(f"{hub_name.lower()}-applease")):
            try:
                await container.create_container()
            except ResourceExistsError:
                pass
        info = {"TaskHubName": hub_name, "CreatedAt": CREATED_AT, "PartitionCount": partition_count}
        await leases.upload_blob("taskhub.json", json.dumps(info), overwrite=True)
        for q in queues:
            lease = {"PartitionId": q, "Owner": None, "Token": None, "Epoch": 0}
            for kind in ("intent", "ownership"):
                await leases.upload_blob(f"{kind}/{q}", json.dumps(lease), overwrite=True)
