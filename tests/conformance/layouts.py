"""Partition-management layouts of a task hub, written as the real provider writes them.

Built from DurableTask.AzureStorage's source with the plain Azure SDKs, never
with ``durable_mgmt`` (a misunderstanding shared by our writer and our reader
would otherwise pass): each artifact names the provider file and symbol it
follows. Paths are under ``src/DurableTask.AzureStorage/`` of Azure/durabletask.

* ``"v3"``: extension v3 (``WebJobs.Extensions.DurableTask`` 3.x references
  DurableTask.AzureStorage 2.x, where ``AzureStorageOrchestrationServiceSettings.
  UseTablePartitionManagement`` defaults to true; ``AzureStorageOptions`` in
  the extension's v3.x branch also defaults it to true) -> ``TablePartitionManager``.
* ``"v2"``: extension v2 (2.13.x references DurableTask.AzureStorage 1.17.x;
  ``AzureStorageOptions.UseTablePartitionManagement`` and
  ``UseLegacyPartitionManagement`` default to false) -> ``SafePartitionManager``.

``write_layout`` writes what ``AzureStorageOrchestrationService.
GetTaskHubCreatorTask`` creates for a hub nobody has run yet: app lease store,
partition lease store and leases, Instances and History tables, work-item and
control queues. ``write_live_worker`` then makes a worker own partitions, as
its partition manager would on its latest round.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Iterable

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableServiceClient
from azure.storage.blob.aio import BlobLeaseClient, BlobServiceClient
from azure.storage.queue.aio import QueueServiceClient

GENERATIONS = ("v2", "v3")


def dotnet_utc(value: datetime) -> str:
    """A UTC DateTime as Newtonsoft writes it by default (IsoDateFormat, RoundtripKind): 7 fraction digits
    at most, trailing zeros dropped, 'Z'."""
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}0".rstrip("0")
    return text + "Z"


def fnv1a(text: str) -> int:
    """Fnv1aHashHelper.ComputeHash(string): FNV-1a 32-bit over the UTF-8 bytes."""
    h = 2166136261
    for b in text.encode("utf-8"):
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def control_queue(hub_name: str, index: int) -> str:
    """AzureStorageOrchestrationService.GetControlQueueName: ``{hub lower}-control-{index:00}``."""
    return f"{hub_name.lower()}-control-{index:02d}"


def lease_json(partition_id: str, owner: str | None = None, token: str | None = None, epoch: int = 0) -> str:
    """Partitioning/BlobPartitionLease.cs (Lease.cs members PartitionId, Owner, Token, Epoch; Blob is
    [JsonIgnore]) serialized by Utils.SerializeToJson with a default Newtonsoft JsonSerializer: nulls kept."""
    return json.dumps({"PartitionId": partition_id, "Owner": owner, "Token": token, "Epoch": epoch},
                      separators=(",", ":"))


def app_lease_id(app_name: str) -> str:
    """Partitioning/AppLeaseManager.cs constructor: ``new Guid(BitConverter.GetBytes(Fnv1aHashHelper.
    ComputeHash(appName)) resized to 16)``: the hash's 4 little-endian bytes are the Guid's first (little-endian)
    Int32, so the Guid reads as the hash in hex, then zeros."""
    return str(uuid.UUID(bytes_le=fnv1a(app_name).to_bytes(4, "little") + bytes(12)))


async def write_layout(account, hub_name: str, generation: str, partition_count: int) -> None:
    """Create ``hub_name`` in ``account`` as a ``generation`` ("v2" or "v3") worker's first start would."""
    if generation not in GENERATIONS:
        raise ValueError(f"generation must be one of {GENERATIONS}, not {generation!r}")
    lower = hub_name.lower()
    conn = account.connection_string
    async with TableServiceClient.from_connection_string(conn) as tables, \
            QueueServiceClient.from_connection_string(conn) as queues, \
            BlobServiceClient.from_connection_string(conn) as blobs:
        # AppLeaseManager.CreateContainerIfNotExistsAsync (called for every partition manager): container
        # "{hub}-applease" and blob "{hub}-appleaseinfo" holding "{}" (CreateAppLeaseInfoIfNotExistsAsync).
        applease = blobs.get_container_client(f"{lower}-applease")
        await _ignore_exists(applease.create_container())
        await _ignore_exists(applease.upload_blob(f"{lower}-appleaseinfo", "{}", overwrite=False))

        if generation == "v3":
            # TablePartitionManager.CreateLeaseStore: table AzureStorageOrchestrationServiceSettings.
            # PartitionTableName = "{TaskHubName}Partitions" (hub name as given, not lower-cased).
            await _ignore_exists(tables.create_table(f"{hub_name}Partitions"))
            partitions = tables.get_table_client(f"{hub_name}Partitions")
            for i in range(partition_count):
                # TablePartitionManager.CreateLease: InsertEntityAsync(new TablePartitionLease { RowKey =
                # partitionId }) with partitionId the control queue name; PartitionKey is
                # TablePartitionLease.DefaultPartitionKey ""; null members (CurrentOwner, NextOwner, OwnedSince,
                # LastRenewal, ExpiresAt) are not stored; IsDraining is false.
                await _ignore_exists(partitions.create_entity(
                    {"PartitionKey": "", "RowKey": control_queue(hub_name, i), "IsDraining": False}))
        else:
            # SafePartitionManager.CreateLeaseStore -> BlobPartitionLeaseManager.CreateLeaseStoreIfNotExistsAsync:
            # container AzureStorageOrchestrationService.GetBlobLeaseManager "{hub lower}-leases", and
            # "taskhub.json" = Partitioning/TaskHubInfo.cs (TaskHubName, CreatedAt, PartitionCount) by Newtonsoft.
            leases = blobs.get_container_client(f"{lower}-leases")
            await _ignore_exists(leases.create_container())
            info = {"TaskHubName": hub_name, "CreatedAt": dotnet_utc(datetime.now(timezone.utc)),
                    "PartitionCount": partition_count}
            await _ignore_exists(leases.upload_blob("taskhub.json", json.dumps(info, separators=(",", ":")),
                                                    overwrite=False))
            for i in range(partition_count):
                # SafePartitionManager.CreateLease -> BlobPartitionLeaseManager.CreateLeaseIfNotExistsAsync for
                # its "intent" and "ownership" managers: blob "{leaseType}/{partitionId}"
                # (Storage/BlobContainer.GetBlobReference(partitionId, blobDirectoryName)).
                for folder in ("intent", "ownership"):
                    await _ignore_exists(leases.upload_blob(f"{folder}/{control_queue(hub_name, i)}",
                                                            lease_json(control_queue(hub_name, i)), overwrite=False))

        # AzureTableTrackingStore.CreateAsync: the History and Instances tables.
        for table in (f"{hub_name}History", f"{hub_name}Instances"):
            await _ignore_exists(tables.create_table(table))
        # WorkItemQueue / ControlQueue.CreateIfNotExistsAsync: "{hub lower}-workitems" and each control queue.
        for name in [f"{lower}-workitems"] + [control_queue(hub_name, i) for i in range(partition_count)]:
            await _ignore_exists(queues.get_queue_client(name).create_queue())
        # No "{hub}-largemessages" container: MessageManager.EnsureContainerAsync makes it on the first large message.


async def write_live_worker(account, hub_name: str, generation: str, worker_id: str, partitions: Iterable[int], *,
                            app_name: str | None = None) -> dict[str, str]:
    """Make ``worker_id`` the live owner of ``partitions``, as its partition manager leaves them after a round.

    v3: TablePartitionManager.TableLeaseManager.ClaimLease then RenewLease: CurrentOwner = WorkerId,
    NextOwner null, OwnedSince/LastRenewal now, ExpiresAt now + LeaseInterval (30 s,
    AzureStorageOrchestrationServiceSettings.LeaseInterval), IsDraining false; ReplaceEntityAsync with the ETag.
    v2: BlobPartitionLeaseManager.AcquireAsync for the intent (LeaseInterval, 30 s) and ownership (15 s,
    SafePartitionManager) leases: new Guid lease id, Owner, Epoch + 1, the JSON uploaded under the lease.
    With ``app_name`` (v2 and v3, DurableTaskOptions.UseAppLease defaults to true), the app lease too:
    AppLeaseManager.TryAcquireLeaseAsync leases the "{hub}-applease" container (60 s) with the app's lease id and
    UpdateOwnerAppIdToCurrentApp writes AppLeaseInfo {OwnerId, DesiredSwapId}.
    Returns the lease ids taken, by blob or container name.
    """
    lower = hub_name.lower()
    conn = account.connection_string
    taken: dict[str, str] = {}
    now = datetime.now(timezone.utc)
    async with BlobServiceClient.from_connection_string(conn) as blobs:
        if generation == "v3":
            async with TableServiceClient.from_connection_string(conn) as tables:
                table = tables.get_table_client(f"{hub_name}Partitions")
                for i in partitions:
                    row = await table.get_entity("", control_queue(hub_name, i))
                    entity = {"PartitionKey": "", "RowKey": row["RowKey"], "CurrentOwner": worker_id,
                              "OwnedSince": now, "LastRenewal": now, "ExpiresAt": now + timedelta(seconds=30),
                              "IsDraining": False}
                    await table.update_entity(entity, mode=UpdateMode.REPLACE, etag=row.metadata["etag"],
                                              match_condition=_if_not_modified())
        else:
            leases = blobs.get_container_client(f"{lower}-leases")
            for i in partitions:
                queue = control_queue(hub_name, i)
                for folder, seconds in (("intent", 30), ("ownership", 15)):
                    blob = leases.get_blob_client(f"{folder}/{queue}")
                    current = json.loads(await (await blob.download_blob()).readall())
                    lease_id = str(uuid.uuid4())
                    await BlobLeaseClient(blob, lease_id=lease_id).acquire(lease_duration=seconds)
                    await blob.upload_blob(lease_json(queue, worker_id, lease_id, int(current["Epoch"]) + 1),
                                           overwrite=True, lease=lease_id)
                    taken[blob.blob_name] = lease_id
        if app_name is not None:
            container = blobs.get_container_client(f"{lower}-applease")
            lease_id = app_lease_id(app_name)
            await BlobLeaseClient(container, lease_id=lease_id).acquire(lease_duration=60)
            await container.upload_blob(f"{lower}-appleaseinfo",
                                        json.dumps({"OwnerId": lease_id, "DesiredSwapId": None}, separators=(",", ":")),
                                        overwrite=True)
            taken[container.container_name] = lease_id
    return taken


def _if_not_modified():
    from azure.core import MatchConditions

    return MatchConditions.IfNotModified


async def _ignore_exists(awaitable) -> None:
    try:
        await awaitable
    except ResourceExistsError:
        pass
