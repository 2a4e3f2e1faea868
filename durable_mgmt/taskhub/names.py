"""Names and keys of a task hub in Azure Storage: the one place they are spelled.

Facts from DurableTask.AzureStorage (`AzureStorageOrchestrationService.cs`,
`AzureStorageOrchestrationServiceSettings.cs`, `Tracking/KeySanitation.cs`,
`Fnv1aHashHelper.cs`) and the extension's hub-name validation.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from ..errors import InvalidHubName, InvalidInput, InvalidInstanceId

DEFAULT_HUB_NAME = "DurableFunctionsHub"
DEFAULT_PARTITION_COUNT = 4
MIN_PARTITIONS, MAX_PARTITIONS = 1, 16

_HUB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,44}$")


def validate_hub_name(name: str) -> str:
    """Return ``name`` if it is a valid task hub name, else raise InvalidHubName.

    The rule is the extension's: letters and digits only, starting with a
    letter, 3 to 45 characters, so that ``{hub}Instances``, ``{hub}-control-00``
    and ``{hub}-largemessages`` are valid table, queue and container names.
    """
    if not isinstance(name, str) or not _HUB_NAME.match(name):
        shown = name if isinstance(name, str) else type(name).__name__
        problems = []
        if isinstance(name, str):
            if not 3 <= len(name) <= 45:
                problems.append(f"it has {len(name)} characters")
            if name and not name[0].isalpha():
                problems.append("it does not start with a letter")
            bad = sorted({c for c in name if not (c.isascii() and c.isalnum())})
            if bad:
                problems.append("it contains " + ", ".join(repr(c) for c in bad))
        why = "; ".join(problems) or "it is not a string"
        raise InvalidHubName(
            f"Invalid task hub name {shown!r}: {why}. A task hub name must be 3-45 characters, "
            "ASCII letters and digits only, starting with a letter (e.g. 'MyTaskHub')."
        )
    return name


def validate_partition_count(count: int) -> int:
    if not isinstance(count, int) or isinstance(count, bool) or not MIN_PARTITIONS <= count <= MAX_PARTITIONS:
        raise InvalidInput(
            f"Invalid partition count {count!r}: host.json extensions.durableTask.storageProvider.partitionCount "
            f"must be an integer from {MIN_PARTITIONS} to {MAX_PARTITIONS}."
        )
    return count


@dataclass(frozen=True)
class TaskHubNames:
    """Every table, queue, container and blob name of one task hub."""

    hub: str
    partition_count: int = DEFAULT_PARTITION_COUNT

    def __post_init__(self) -> None:
        validate_hub_name(self.hub)
        validate_partition_count(self.partition_count)

    @property
    def instances_table(self) -> str:
        return f"{self.hub}Instances"

    @property
    def history_table(self) -> str:
        return f"{self.hub}History"

    @property
    def partitions_table(self) -> str:
        """``AzureStorageOrchestrationServiceSettings.PartitionTableName``: TablePartitionManager's leases."""
        return f"{self.hub}Partitions"

    @property
    def jobs_table(self) -> str:
        """Bulk jobs and exports of durable_mgmt (not the provider's): ``Mgmt`` keeps it apart from the
        provider's ``{hub}Instances``/``History``/``Partitions`` (``AzureStorageOrchestrationServiceSettings``
        ``InstanceTableName``, ``HistoryTableName``, ``PartitionTableName``), whatever the hub name."""
        return f"{self.hub}MgmtJobs"

    @property
    def _lower(self) -> str:
        return self.hub.lower()

    def control_queue(self, partition: int) -> str:
        return f"{self._lower}-control-{partition:02d}"

    @property
    def control_queues(self) -> list[str]:
        return [self.control_queue(i) for i in range(self.partition_count)]

    @property
    def workitem_queue(self) -> str:
        return f"{self._lower}-workitems"

    @property
    def large_messages_container(self) -> str:
        return f"{self._lower}-largemessages"

    @property
    def leases_container(self) -> str:
        return f"{self._lower}-leases"

    @property
    def app_lease_container(self) -> str:
        return f"{self._lower}-applease"

    @property
    def app_lease_blob(self) -> str:
        return f"{self._lower}-appleaseinfo"

    taskhub_info_blob = "taskhub.json"

    # SafePartitionManager's two BlobPartitionLeaseManagers ("intent", "ownership") keep one blob per control
    # queue under a folder named by their lease type (BlobContainer.GetBlobReference(partitionId, leaseType)).
    def intent_lease_blob(self, partition: int) -> str:
        return f"intent/{self.control_queue(partition)}"

    def ownership_lease_blob(self, partition: int) -> str:
        return f"ownership/{self.control_queue(partition)}"

    def partition_of_queue(self, queue_name: str) -> int | None:
        """The index of a control queue name of this hub (``{hub}-control-NN``), else None."""
        prefix = f"{self._lower}-control-"
        tail = queue_name[len(prefix):] if queue_name.startswith(prefix) else ""
        return int(tail) if len(tail) == 2 and tail.isdigit() else None

    def partition_of(self, instance_id: str) -> int:
        return partition_index(instance_id, self.partition_count)

    def control_queue_for(self, instance_id: str) -> str:
        return self.control_queue(self.partition_of(instance_id))


# --- instance ids and table keys -------------------------------------------

_ESCAPE = "^"
_ESCAPED = {"^": "^^", "/": "^0", "\\": "^1", "#": "^2", "?": "^3"}
_UNESCAPED = {"^": "^", "0": "/", "1": "\\", "2": "#", "3": "?"}
_CONTROL_OFFSET = 0xC0  # 'À': control characters are shifted into a valid range


def _is_control(code: int) -> bool:
    return code <= 0x1F or 0x7F <= code <= 0x9F


# Any character escape_key changes: those of _ESCAPED and the control characters (the ranges of _is_control).
_NEEDS_ESCAPE = re.compile("[" + re.escape("".join(_ESCAPED)) + "\x00-\x1f\x7f-\x9f]")


def escape_key(instance_id: str) -> str:
    """The PartitionKey for an instance id (KeySanitation.EscapePartitionKey)."""
    if not _NEEDS_ESCAPE.search(instance_id):  # nearly every id: a bulk job escapes each one it acts on
        return instance_id
    out = []
    for ch in instance_id:
        if ch in _ESCAPED:
            out.append(_ESCAPED[ch])
        elif _is_control(ord(ch)):
            out.append(_ESCAPE + chr(_CONTROL_OFFSET + ord(ch)))
        else:
            out.append(ch)
    return "".join(out)


def service_order(key: str) -> bytes:
    """A sort key putting table keys in the order the table service keeps them: by UTF-16 code unit.
    Python orders ``str`` by code point, which differs for characters beyond U+FFFF (stored as surrogates,
    D800-DFFF, they come before U+E000-U+FFFF): a key range taken from a Python sort then misses keys."""
    return key.encode("utf-16-be", "surrogatepass")


def unescape_key(key: str) -> str:
    """The instance id for a PartitionKey (KeySanitation.UnescapePartitionKey)."""
    if _ESCAPE not in key:  # nearly every key: listings unescape thousands of them
        return key
    out = []
    i = 0
    while i < len(key):
        ch = key[i]
        if ch != _ESCAPE or i + 1 >= len(key):
            out.append(ch)
            i += 1
            continue
        nxt = key[i + 1]
        if nxt in _UNESCAPED:
            out.append(_UNESCAPED[nxt])
        else:
            code = ord(nxt)
            out.append(chr(code - _CONTROL_OFFSET) if code >= _CONTROL_OFFSET else nxt)
        i += 2
    return "".join(out)


_FNV_OFFSET_BASIS = 2166136261
_FNV_PRIME = 16777619


def fnv1a32(data: bytes) -> int:
    h = _FNV_OFFSET_BASIS
    for byte in data:
        h ^= byte
        h = (h * _FNV_PRIME) & 0xFFFFFFFF
    return h


def partition_index(instance_id: str, partition_count: int) -> int:
    """Control-queue index of an instance: FNV-1a of its UTF-8 bytes, modulo the partition count."""
    return fnv1a32(instance_id.encode("utf-8")) % partition_count


MAX_INSTANCE_ID_LENGTH = 256


def validate_instance_id(instance_id: str) -> str:
    """Check an instance id the way the extension does before any write.

    Ids may not be empty, longer than 256 characters, start with '@' (reserved
    for entities) or contain ``/ \\ # ?`` or control characters. Ids written by
    older tools may still hold those characters; ``escape_key`` handles them.
    """
    if not isinstance(instance_id, str) or not instance_id:
        raise InvalidInstanceId("Invalid instance id: it is empty. Give a non-empty id, or none to get a random one.")
    if len(instance_id) > MAX_INSTANCE_ID_LENGTH:
        raise InvalidInstanceId(
            f"Invalid instance id {instance_id[:40]!r}...: it has {len(instance_id)} characters; "
            f"at most {MAX_INSTANCE_ID_LENGTH} are allowed."
        )
    if instance_id.startswith("@"):
        raise InvalidInstanceId(
            f"Invalid instance id {instance_id!r}: ids starting with '@' are reserved for durable entities."
        )
    bad = [c for c in instance_id if c in "/\\#?" or _is_control(ord(c)) or 0xD800 <= ord(c) <= 0xDFFF]
    if bad:
        shown = ", ".join(repr(c) if c in "/\\#?" else f"U+{ord(c):04X}" for c in dict.fromkeys(bad))
        raise InvalidInstanceId(
            f"Invalid instance id {ascii(instance_id)}: it contains {shown}. "
            "Instance ids must not contain /, \\, #, ?, control characters or unpaired surrogates."
        )
    if not instance_id.strip("."):
        # "." and ".." are path segments URLs collapse, and the id is the first segment of the names of its
        # large-value blobs: such an instance could be started but never addressed, stopped or purged.
        raise InvalidInstanceId(
            f"Invalid instance id {instance_id!r}: an id made only of dots is not a usable URL or blob path "
            "segment ('.' and '..' are collapsed). Use at least one character other than '.'."
        )
    return instance_id


def validate_orchestrator_name(name: str) -> str:
    from ..limits import check_segment

    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("Invalid orchestrator name: it is empty. Give the name of an orchestrator function.")
    return check_segment(name, "orchestrator name")


def validate_event_name(event_name: str) -> str:
    from ..limits import check_segment

    if not isinstance(event_name, str) or not event_name.strip():
        raise InvalidInput("Invalid event name: it is empty. Give the name the orchestrator waits for.")
    return check_segment(event_name, "event name")


def new_instance_id() -> str:
    """A random instance id: 32 lower-case hex digits, as the extension makes them."""
    return uuid.uuid4().hex


def new_execution_id() -> str:
    return uuid.uuid4().hex
