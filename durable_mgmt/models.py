"""Typed inputs and results of instance management (frozen dataclasses, enums)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Generic, Iterable, TypeVar

from .errors import InvalidFilter

T = TypeVar("T")


class RuntimeStatus(str, Enum):
    """The runtime status of an orchestration instance, spelled as everywhere in Durable Functions."""

    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    CONTINUED_AS_NEW = "ContinuedAsNew"
    FAILED = "Failed"
    CANCELED = "Canceled"
    TERMINATED = "Terminated"
    SUSPENDED = "Suspended"

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        """Pending, Running, Suspended or ContinuedAsNew: the instance may still do work."""
        return not self.is_terminal

    @classmethod
    def parse(cls, value: "str | RuntimeStatus") -> "RuntimeStatus":
        """A status from its name, case-insensitively (``completed``, ``Completed``, ``COMPLETED``)."""
        if isinstance(value, RuntimeStatus):
            return value
        # Stored rows hold the exact value: listings parse thousands of them, so look that up first.
        exact = _BY_VALUE.get(value) if isinstance(value, str) else None
        if exact is not None:
            return exact
        text = str(value).strip()
        for status in cls:
            if status.value.lower() == text.lower() or status.name.lower() == text.lower():
                return status
        if text.isdigit() and int(text) in _DOTNET_NUMBERS:
            return _DOTNET_NUMBERS[int(text)]
        allowed = ", ".join(s.value for s in cls)
        raise InvalidFilter(f"Unknown runtime status {text!r}. Allowed (case-insensitive): {allowed}.")

    @classmethod
    def parse_many(cls, values: "Iterable[str | RuntimeStatus] | str | None") -> frozenset["RuntimeStatus"]:
        if values is None:
            return frozenset()
        if isinstance(values, (str, RuntimeStatus)):
            values = [v for v in str(values).replace(",", " ").split() if v]
        return frozenset(cls.parse(v) for v in values)


_BY_VALUE = {s.value: s for s in RuntimeStatus}
TERMINAL_STATUSES = frozenset({RuntimeStatus.COMPLETED, RuntimeStatus.FAILED, RuntimeStatus.TERMINATED,
                               RuntimeStatus.CANCELED})
_DOTNET_NUMBERS = {0: RuntimeStatus.RUNNING, 1: RuntimeStatus.COMPLETED, 2: RuntimeStatus.CONTINUED_AS_NEW,
                   3: RuntimeStatus.FAILED, 4: RuntimeStatus.CANCELED, 5: RuntimeStatus.TERMINATED,
                   6: RuntimeStatus.PENDING, 7: RuntimeStatus.SUSPENDED}


def purgeable_statuses(statuses: "Iterable[RuntimeStatus | str] | None") -> frozenset[RuntimeStatus]:
    """The statuses a purge deletes: those given, which must all be terminal, else all terminal ones."""
    parsed = RuntimeStatus.parse_many(statuses)
    bad = sorted(s.value for s in parsed if not s.is_terminal)
    if bad:
        raise InvalidFilter(
            f"Cannot purge instances that are {', '.join(bad)}: purge deletes only Completed, Failed, "
            "Terminated or Canceled instances.")
    return parsed or TERMINAL_STATUSES


def parse_json_text(text: str | None) -> Any:
    """Values are stored as JSON text; give the value, or the text itself when it is not JSON."""
    # "null" (no custom status, no output) is on almost every row: no need for the JSON decoder.
    if text is None or text == "" or text == "null":
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


@dataclass(frozen=True)
class InstanceStatus:
    """What is known about one orchestration instance.

    ``input``, ``output`` and ``custom_status`` are decoded JSON values (or the
    raw text when it is not JSON); ``input`` is None when it was not asked for.
    ``history`` is present only when asked for: events rendered as the HTTP
    management API renders them (``EventType`` names, ``Timestamp``...).
    """

    instance_id: str
    name: str
    runtime_status: RuntimeStatus
    created_time: datetime
    last_updated_time: datetime
    input: Any = None
    output: Any = None
    custom_status: Any = None
    execution_id: str | None = None
    completed_time: datetime | None = None
    scheduled_start_time: datetime | None = None
    generation: int | None = None
    version: str | None = None
    history: tuple[dict[str, Any], ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """The HTTP management API's status body."""
        body: dict[str, Any] = {
            "name": self.name,
            "instanceId": self.instance_id,
            "runtimeStatus": self.runtime_status.value,
            "input": self.input,
            "customStatus": self.custom_status,
            "output": self.output,
            "createdTime": iso_seconds(self.created_time),
            "lastUpdatedTime": iso_seconds(self.last_updated_time),
        }
        if self.history is not None:
            body["historyEvents"] = list(self.history)
        return body


def iso_seconds(value: datetime) -> str:
    # The extension renders status times as "2019-11-02T10:00:00Z" (seconds precision).
    from .taskhub.timefmt import as_utc

    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class InstanceQuery:
    """Which instances to list, count or purge. Empty fields do not filter.

    ``instance_id_prefix`` and ``name`` match exactly from the start / exactly;
    ``page_size`` is the most rows one page returns (1..1000).
    """

    created_from: datetime | None = None
    created_to: datetime | None = None
    statuses: frozenset[RuntimeStatus] = field(default_factory=frozenset)
    instance_id_prefix: str | None = None
    name: str | None = None
    show_input: bool = False
    show_output: bool = True
    page_size: int = 100
    continuation_token: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "statuses", RuntimeStatus.parse_many(self.statuses))
        for name in ("created_from", "created_to"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _utc_time(value, name))
        for name, what in (("instance_id_prefix", "instance id prefix"), ("name", "orchestrator name filter")):
            value = getattr(self, name)
            if value:
                _check_filter_text(value, what)
        if self.created_from and self.created_to and self.created_from > self.created_to:
            raise InvalidFilter(
                f"createdTimeFrom ({self.created_from.isoformat()}) is after createdTimeTo "
                f"({self.created_to.isoformat()}); give a range whose start is not after its end."
            )
        if not isinstance(self.page_size, int) or isinstance(self.page_size, bool) or not 1 <= self.page_size <= 1000:
            raise InvalidFilter(f"Invalid page size (top) {self.page_size!r}: it must be an integer from 1 to 1000.")
        if self.instance_id_prefix == "":
            object.__setattr__(self, "instance_id_prefix", None)
        if self.name == "":
            object.__setattr__(self, "name", None)


def _utc_time(value: datetime, name: str) -> datetime:
    from .taskhub.timefmt import as_utc

    if not isinstance(value, datetime):
        raise InvalidFilter(f"Invalid {name} {value!r}: expected a datetime.")
    try:
        return as_utc(value)
    except (OverflowError, ValueError):
        # 0001-01-01T00:00:00+01:00 is a year before the calendar's first: there is no such UTC time.
        raise InvalidFilter(f"Invalid {name} {value.isoformat()}: in UTC it falls outside the years 1 to 9999; "
                            "give a time between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.") from None


def _check_filter_text(value: str, what: str) -> None:
    from .errors import InvalidInput
    from .limits import check_text

    try:
        check_text(value, what, max_length=1024, allow_control=True)
    except InvalidInput as e:
        raise InvalidFilter(str(e)) from None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of results, and the token that fetches the next one (None on the last page)."""

    items: tuple[T, ...]
    continuation_token: str | None = None

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class EntityState:
    """A durable entity's state as read (the SDK's ``EntityStateResponse``): whether it exists, and its
    state (the JSON value; None when it has none)."""

    entity_id: str  # "@name@key", the id of the entity's instance
    exists: bool
    state: Any = None


@dataclass(frozen=True)
class PurgeResult:
    """What a purge deleted."""

    instances_deleted: int
    rows_deleted: int = 0
    blobs_deleted: int = 0


@dataclass(frozen=True)
class PurgeProgress:
    """Passed to the progress callback of a purge after each batch of instances."""

    instances_scanned: int
    instances_deleted: int
    rows_deleted: int


@dataclass(frozen=True)
class ManagementUrls:
    """The HTTP management webhooks of one instance (the "check status" payload).

    ``send_event_post_uri`` contains the placeholder ``{eventName}``; terminate,
    suspend and resume contain ``{text}`` for the reason.
    """

    id: str
    status_query_get_uri: str
    send_event_post_uri: str
    terminate_post_uri: str
    purge_history_delete_uri: str
    restart_post_uri: str | None = None
    suspend_post_uri: str | None = None
    resume_post_uri: str | None = None

    _KEYS = (("id", "id"), ("statusQueryGetUri", "status_query_get_uri"),
             ("sendEventPostUri", "send_event_post_uri"), ("terminatePostUri", "terminate_post_uri"),
             ("purgeHistoryDeleteUri", "purge_history_delete_uri"), ("restartPostUri", "restart_post_uri"),
             ("suspendPostUri", "suspend_post_uri"), ("resumePostUri", "resume_post_uri"))

    def to_json(self) -> dict[str, str]:
        return {key: getattr(self, attr) for key, attr in self._KEYS if getattr(self, attr) is not None}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> "ManagementUrls":
        return cls(**{attr: data.get(key) for key, attr in cls._KEYS})

    @classmethod
    def build(cls, webhook_base: str, instance_id: str, query: str, *, quote_id: bool = True) -> "ManagementUrls":
        """The URLs the extension's HttpApiHandler hands out, under ``webhook_base``
        (``.../runtime/webhooks/durabletask``); ``query`` is ``taskHub=..&connection=..[&code=..]``."""
        from urllib.parse import quote

        instance = f"{webhook_base.rstrip('/')}/instances/{quote(instance_id, safe='') if quote_id else instance_id}"
        return cls(
            id=instance_id,
            status_query_get_uri=f"{instance}?{query}",
            send_event_post_uri=f"{instance}/raiseEvent/{{eventName}}?{query}",
            terminate_post_uri=f"{instance}/terminate?reason={{text}}&{query}",
            purge_history_delete_uri=f"{instance}?{query}",
            restart_post_uri=f"{instance}/restart?{query}",
            suspend_post_uri=f"{instance}/suspend?reason={{text}}&{query}",
            resume_post_uri=f"{instance}/resume?reason={{text}}&{query}",
        )
