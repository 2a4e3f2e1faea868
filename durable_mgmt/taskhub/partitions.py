"""Partition management artifacts of a task hub, as DurableTask.AzureStorage keeps them.

Two generations share one storage layout except for how partitions (control
queues) are leased:

* **table** — DurableTask.AzureStorage 2.x, used by extension v3, defaults to
  ``TablePartitionManager`` (``AzureStorageOrchestrationServiceSettings.
  UseTablePartitionManagement = true``): one ``{Hub}Partitions`` row per
  control queue (``TablePartitionLease``), and no ``taskhub.json``.
* **blob** — DurableTask.AzureStorage 1.x, used by extension v2
  (``AzureStorageOptions.UseTablePartitionManagement = false``), uses
  ``SafePartitionManager``: ``{hub}-leases/taskhub.json`` plus an ``intent/``
  and an ``ownership/`` lease blob per control queue (``BlobPartitionLease``,
  Newtonsoft JSON), each held with a blob lease.

The partition count is discovered as ``AzureStorageOrchestrationService.
GetControlQueuesAsync`` does: the number of ``{Hub}Partitions`` rows when that
table exists, else ``taskhub.json``'s ``PartitionCount``, else the configured
count; except that a table no worker ever used, on a hub whose blob leases a
worker holds, is taken for what it is: made by a client for a hub an extension
v2 app runs. This module is the only code that reads or writes these artifacts; the
host's lease protocol (``funchost.engine.leases``) goes through it and sees
only ``durable_mgmt`` errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Iterator

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.data.tables import UpdateMode
from azure.storage.blob.aio import BlobLeaseClient

from ..errors import ConcurrencyConflict, InvalidInput
from .names import validate_partition_count
from .primitives import create_if_missing, get_or_none, list_or_none, read_blob
from .storage import map_storage_errors, status_of
from .timefmt import to_iso, utcnow

if TYPE_CHECKING:
    from .hub import TaskHub

# TablePartitionLease.DefaultPartitionKey: every row of {Hub}Partitions has this PartitionKey.
PARTITION_KEY = ""
# AppLeaseManager.CreateAppLeaseInfoIfNotExistsAsync writes "{}" into {hub}-applease/{hub}-appleaseinfo.
APP_LEASE_INFO_INITIAL = "{}"


class PartitionManagement(str, Enum):
    """Which lease protocol a hub's workers use."""

    TABLE = "table"   # TablePartitionManager: {Hub}Partitions rows (extension v3 default)
    BLOB = "blob"     # SafePartitionManager: intent/ and ownership/ lease blobs (extension v2 default)
    NONE = "none"     # no hub, or a hub with neither artifact: the configured count applies


@dataclass(frozen=True)
class PartitionLayout:
    """How many partitions a hub has, which protocol leases them, and where the count came from."""

    management: PartitionManagement
    partition_count: int
    source: str


async def discover_layout(hub: "TaskHub", configured_count: int) -> PartitionLayout:
    """The hub's partition count and manager, read in GetControlQueuesAsync's order.

    Unlike the provider (whose "inactive" lease manager writes a missing
    ``taskhub.json``), this never writes: reading a hub changes nothing. An
    existing but empty ``{Hub}Partitions`` table (a hub being created) counts
    as table-managed with the configured count, since routing needs at least
    one queue.
    """
    names = hub.names
    table = hub.table_service.get_table_client(names.partitions_table)
    # GetControlQueuesAsync counts every row of the table (ExecuteQueryAsync with no filter).
    rows = await list_or_none(lambda: table.list_entities(select=["RowKey", *_USE_COLUMNS]),
                              f"reading table {names.partitions_table!r}")
    never_used = rows is not None and not any(r.get(c) for r in rows for c in _USE_COLUMNS)
    if rows is not None and not (never_used and await _live_blob_leases(hub)):
        count = len(rows) or configured_count
        return PartitionLayout(PartitionManagement.TABLE, _checked(count, names.partitions_table),
                               f"{names.partitions_table} table ({len(rows)} rows)")
    # No table; or one no worker ever used beside blob leases a worker holds now: a client (.NET or ours) made
    # the table for a hub that an extension v2 app (SafePartitionManager: taskhub.json and blob leases, never
    # the table) runs. Its live leases say which protocol the hub's workers use.
    info = await read_taskhub_info(hub)
    if info is not None:
        return PartitionLayout(PartitionManagement.BLOB, _checked(info.partition_count, "taskhub.json"),
                               f"{names.leases_container}/taskhub.json")
    return PartitionLayout(PartitionManagement.NONE, configured_count, "configured partition count")


# Columns TableLeaseManager writes when a worker claims, renews or asks for a row; a row without any of them
# was never used (CreateLease writes only RowKey and IsDraining).
_USE_COLUMNS = ("CurrentOwner", "NextOwner", "OwnedSince", "LastRenewal")


async def _live_blob_leases(hub: "TaskHub") -> bool:
    """Whether any lease blob of SafePartitionManager or LegacyPartitionManager is leased now."""
    return any(s.leased for s in await LeaseBlobs(hub).list())


def _checked(count: int, where: str) -> int:
    try:
        return validate_partition_count(count)
    except InvalidInput as e:  # say where the bad count was found
        raise InvalidInput(f"The task hub's {where} gives {count} partitions; DurableTask.AzureStorage allows 1 to 16.") from e


@dataclass(frozen=True)
class TaskHubInfo:
    """The contents of ``taskhub.json`` (Partitioning/TaskHubInfo.cs, written by Newtonsoft)."""

    name: str
    created_at: str
    partition_count: int


async def read_taskhub_info(hub: "TaskHub") -> TaskHubInfo | None:
    names = hub.names
    blob = hub.container(names.leases_container).get_blob_client(names.taskhub_info_blob)
    content = await read_blob(blob, f"reading {names.leases_container}/{names.taskhub_info_blob}")
    if content is None:
        return None
    data = json.loads(content)
    return TaskHubInfo(data.get("TaskHubName", names.hub), data.get("CreatedAt", ""),
                       int(data.get("PartitionCount", names.partition_count)))


# --- creation, as AzureStorageOrchestrationService.GetTaskHubCreatorTask ---------------------


async def create_partition_store(hub: "TaskHub", management: PartitionManagement) -> None:
    """Create the lease store and one lease per control queue, keeping whatever exists.

    ``AppLeaseManager.CreateContainerIfNotExistsAsync`` runs for both
    generations; then the partition manager's ``CreateLeaseStore`` and
    ``CreateLease(controlQueue.Name)`` for each queue.
    """
    await _create_app_lease_store(hub)
    if management == PartitionManagement.BLOB:
        await _create_blob_leases(hub)
    else:
        await _create_table_leases(hub)


async def _create_app_lease_store(hub: "TaskHub") -> None:
    names = hub.names
    container = hub.container(names.app_lease_container)
    await create_if_missing(container.create_container, f"creating container {names.app_lease_container!r}")
    await _upload_if_missing(container, names.app_lease_blob, APP_LEASE_INFO_INITIAL)


async def _create_table_leases(hub: "TaskHub") -> None:
    names = hub.names
    tables = hub.table_service
    await create_if_missing(lambda: tables.create_table(names.partitions_table),
                            f"creating table {names.partitions_table!r}")
    table = tables.get_table_client(names.partitions_table)

    async def create_lease(queue: str) -> None:
        # TablePartitionManager.CreateLease inserts `new TablePartitionLease { RowKey = partitionId }`:
        # null members are not stored, IsDraining is false; an existing row is kept as it is.
        await create_if_missing(
            lambda: table.create_entity({"PartitionKey": PARTITION_KEY, "RowKey": queue, "IsDraining": False}),
            f"adding partition {queue!r} to {names.partitions_table!r}")

    await asyncio.gather(*(create_lease(q) for q in names.control_queues))


async def _create_blob_leases(hub: "TaskHub") -> None:
    names = hub.names
    container = hub.container(names.leases_container)
    await create_if_missing(container.create_container, f"creating container {names.leases_container!r}")
    # SafePartitionManager.CreateLeaseStore -> BlobPartitionLeaseManager.CreateLeaseStoreIfNotExistsAsync
    info = {"TaskHubName": names.hub, "CreatedAt": to_iso(utcnow()), "PartitionCount": names.partition_count}
    await _upload_if_missing(container, names.taskhub_info_blob, _newtonsoft(info))
    for p in range(names.partition_count):
        for blob_name in (names.intent_lease_blob(p), names.ownership_lease_blob(p)):
            await _upload_if_missing(container, blob_name, _newtonsoft(blob_lease_json(names.control_queue(p))))


async def _upload_if_missing(container, blob_name: str, body: str) -> None:
    await create_if_missing(lambda: container.upload_blob(blob_name, body, overwrite=False),
                            f"writing {container.container_name}/{blob_name}")


def _newtonsoft(value: dict) -> str:
    """JSON as a default Newtonsoft JsonSerializer writes it: no whitespace."""
    return json.dumps(value, separators=(",", ":"))


def blob_lease_json(partition_id: str, owner: str | None = None, token: str | None = None, epoch: int = 0) -> dict:
    """A ``BlobPartitionLease`` as ``Utils.SerializeToJson`` (default Newtonsoft) writes it: Lease's members
    PartitionId, Owner, Token, Epoch; nulls included; ``Blob`` is [JsonIgnore]."""
    return {"PartitionId": partition_id, "Owner": owner, "Token": token, "Epoch": epoch}


# --- the table protocol (TablePartitionManager.TableLeaseManager) ------------------------------


@dataclass(frozen=True)
class TableLease:
    """One ``{Hub}Partitions`` row (``TablePartitionLease``) with the ETag it was read with."""

    row_key: str
    current_owner: str | None = None
    next_owner: str | None = None
    owned_since: datetime | None = None
    last_renewal: datetime | None = None
    expires_at: datetime | None = None
    is_draining: bool = False
    etag: str | None = None

    def changed(self, **fields: Any) -> "TableLease":
        return replace(self, **fields)


class PartitionTable:
    """Reads and conditionally replaces the rows of ``{Hub}Partitions``."""

    def __init__(self, hub: "TaskHub"):
        self.names = hub.names
        self._table = hub.table_service.get_table_client(hub.names.partitions_table)

    async def read(self) -> list[TableLease]:
        with map_storage_errors(f"reading table {self.names.partitions_table!r}"):
            entities = [e async for e in self._table.list_entities()]
        return [_lease_of(e) for e in entities]

    async def replace(self, lease: TableLease) -> TableLease:
        """Write ``lease`` if its row still has ``lease.etag`` (ReplaceEntityAsync with the ETag read);
        ConcurrencyConflict when another worker changed it first. Returns it with the new ETag."""
        entity: dict[str, Any] = {"PartitionKey": PARTITION_KEY, "RowKey": lease.row_key,
                                  "IsDraining": lease.is_draining}
        # Azure.Data.Tables sends null members as null, which the service does not store: leave them out.
        for column, value in (("CurrentOwner", lease.current_owner), ("NextOwner", lease.next_owner),
                              ("OwnedSince", lease.owned_since), ("LastRenewal", lease.last_renewal),
                              ("ExpiresAt", lease.expires_at)):
            if value is not None:
                entity[column] = value
        with map_storage_errors(f"updating partition {lease.row_key!r} in {self.names.partitions_table!r}"):
            meta = await self._table.update_entity(entity, mode=UpdateMode.REPLACE, etag=lease.etag,
                                                   match_condition=MatchConditions.IfNotModified)
        return lease.changed(etag=(meta or {}).get("etag", lease.etag))


def _lease_of(entity) -> TableLease:
    def when(name: str) -> datetime | None:
        value = entity.get(name)
        return value if isinstance(value, datetime) else None

    return TableLease(row_key=entity["RowKey"], current_owner=entity.get("CurrentOwner"),
                      next_owner=entity.get("NextOwner"), owned_since=when("OwnedSince"),
                      last_renewal=when("LastRenewal"), expires_at=when("ExpiresAt"),
                      is_draining=bool(entity.get("IsDraining", False)), etag=entity.metadata.get("etag"))


# --- the blob protocol (SafePartitionManager / BlobPartitionLeaseManager) ----------------------


class LeaseLost(ConcurrencyConflict):
    """A blob lease is held by someone else, or one we held was taken or broken (HTTP 409/412)."""


@dataclass(frozen=True)
class BlobLeaseState:
    """One ``intent/`` or ``ownership/`` lease blob: its JSON content and whether a blob lease is held on it."""

    blob_name: str
    partition_id: str | None
    owner: str | None
    token: str | None
    epoch: int
    leased: bool


# The lease types (blob folders) of BlobPartitionLeaseManager: SafePartitionManager's two, LegacyPartitionManager's one.
LEASE_FOLDERS = ("intent/", "ownership/", "default/")


class LeaseBlobs:
    """The Safe manager's lease blobs in ``{hub}-leases``: list, acquire, renew, release."""

    def __init__(self, hub: "TaskHub"):
        self.names = hub.names
        self.container = hub.container(hub.names.leases_container)

    async def list(self) -> list[BlobLeaseState]:
        """Every lease blob with its content and lease state: SafePartitionManager's ``intent/`` and
        ``ownership/``, and LegacyPartitionManager's ``default/`` (``UseLegacyPartitionManagement``)."""
        async def every_lease() -> list[BlobLeaseState]:
            return [await self._state(props.name, props.lease.state == "leased") for prefix in LEASE_FOLDERS
                    async for props in self.container.list_blobs(name_starts_with=prefix)]

        return await get_or_none(every_lease, f"listing lease blobs of {self.names.leases_container!r}") or []

    async def _state(self, blob_name: str, leased: bool) -> BlobLeaseState:
        content = await read_blob(self.container.get_blob_client(blob_name),
                                  f"reading {self.names.leases_container}/{blob_name}")
        try:
            data = json.loads(content or b"{}")
        except ValueError:  # not JSON: not a lease the provider wrote
            data = {}
        return BlobLeaseState(blob_name, data.get("PartitionId"), data.get("Owner"), data.get("Token"),
                              int(data.get("Epoch") or 0), leased)

    async def acquire(self, blob_name: str, partition_id: str, owner: str, seconds: int) -> str:
        """Take a free lease as ``BlobPartitionLeaseManager.AcquireAsync`` does: a new Guid lease id, Owner
        set, Epoch + 1, content written under the lease. Returns the lease id.

        A blob leased by another owner is never taken (LeaseLost): the provider changes a live lease
        (ChangeLease from the blob's Token) only when its intent balancer steals for balance
        (LeaseCollectionBalancer.TakeLeasesAsync, ShouldStealLeases); otherwise it takes only expired
        leases (BlobPartitionLease.IsExpired: not leased). The host runs no balancer, so taking a leased
        blob would take back every partition a .NET worker took from it. Only a lease whose blob names
        ``owner`` itself (this worker's own, e.g. after it stopped renewing) is changed from its Token."""
        blob = self.container.get_blob_client(blob_name)
        new_id = str(uuid.uuid4())
        state = await self._state(blob_name, False)
        # 409/412: leased under another id than the blob's Token, or just taken.
        with self._lease_call("acquiring", blob_name):
            props = await blob.get_blob_properties()
            if props.lease.state == "leased":
                if state.owner != owner or not state.token:  # another worker's live lease: leave it
                    raise LeaseLost(blob_name)
                await BlobLeaseClient(blob, lease_id=state.token).change(new_id)
            else:
                await BlobLeaseClient(blob, lease_id=new_id).acquire(lease_duration=seconds)
            body = blob_lease_json(partition_id, owner, new_id, state.epoch + 1)
            await blob.upload_blob(_newtonsoft(body), overwrite=True, lease=new_id)
        return new_id

    async def renew(self, blob_name: str, lease_id: str) -> None:
        with self._lease_call("renewing", blob_name):
            await BlobLeaseClient(self.container.get_blob_client(blob_name), lease_id=lease_id).renew()

    async def release(self, blob_name: str, partition_id: str, lease_id: str) -> None:
        """``BlobPartitionLeaseManager.ReleaseAsync``: write the lease with Owner and Token null, then release.
        A lease already lost is not an error (someone else holds the partition now)."""
        blob = self.container.get_blob_client(blob_name)
        state = await self._state(blob_name, True)
        with contextlib.suppress(LeaseLost), self._lease_call("releasing", blob_name):
            await blob.upload_blob(_newtonsoft(blob_lease_json(partition_id, None, None, state.epoch)),
                                   overwrite=True, lease=lease_id)
            await BlobLeaseClient(blob, lease_id=lease_id).release()

    @contextlib.contextmanager
    def _lease_call(self, doing: str, blob_name: str) -> Iterator[None]:
        """Storage errors mapped as usual, except that a lease conflict (HTTP 409/412) is LeaseLost.
        Anything else, an authentication failure included, is raised as StorageUnavailable."""
        with map_storage_errors(f"{doing} the lease of {self.names.leases_container}/{blob_name}"):
            try:
                yield
            except HttpResponseError as e:
                if status_of(e) in (409, 412):
                    raise LeaseLost(blob_name) from e
                raise


__all__ = ["PartitionManagement", "PartitionLayout", "discover_layout", "TaskHubInfo", "read_taskhub_info",
           "create_partition_store", "blob_lease_json", "TableLease", "PartitionTable", "LeaseBlobs",
           "BlobLeaseState", "LeaseLost", "PARTITION_KEY", "APP_LEASE_INFO_INITIAL"]
