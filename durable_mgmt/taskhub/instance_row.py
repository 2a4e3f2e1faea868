"""One ``{Hub}Instances`` row, typed: the only place that knows the table's column names.

Columns as ``OrchestrationInstanceStatus`` in DurableTask.AzureStorage
(``AzureTableTrackingStore``): PartitionKey = escaped instance id, RowKey = "".
The status is parsed once, here, into ``RuntimeStatus``; the engine's
``OrchestrationStatus`` (numbers in messages) is converted with
``runtime_status_of``.

A row is also how a *change* is written: fields left ``None`` are not
written (a merge leaves those columns as they are; a replace drops them),
exactly as the untyped dicts this replaces dropped their ``None`` values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from ..models import InstanceStatus, RuntimeStatus, parse_json_text
from .entities import plain_value
from .events import OrchestrationStatus
from .names import escape_key, unescape_key

# Python field -> table column, in the order rows are written.
_COLUMNS = {
    "name": "Name", "version": "Version", "input": "Input", "output": "Output", "custom_status": "CustomStatus",
    "created_time": "CreatedTime", "last_updated_time": "LastUpdatedTime", "completed_time": "CompletedTime",
    "runtime_status": "RuntimeStatus", "task_hub_name": "TaskHubName", "scheduled_start_time": "ScheduledStartTime",
    "execution_id": "ExecutionId", "generation": "Generation", "tags": "Tags",
}


@dataclass(frozen=True)
class InstanceRow:
    """The Instances row of ``instance_id`` (or the columns of it to change).

    ``input``, ``output`` and ``custom_status`` are the stored JSON text (or a
    large-value blob URL, as the provider stores it); ``etag`` is the row's
    version when it was read (never written).
    """

    instance_id: str
    name: str | None = None
    version: str | None = None
    runtime_status: RuntimeStatus | None = None
    input: str | None = None
    output: str | None = None
    custom_status: str | None = None
    created_time: datetime | None = None
    last_updated_time: datetime | None = None
    completed_time: datetime | None = None
    scheduled_start_time: datetime | None = None
    execution_id: str | None = None
    generation: int | None = None
    tags: str | None = None
    task_hub_name: str | None = None
    etag: str | None = field(default=None, compare=False)

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any]) -> "InstanceRow":
        """From a table entity as ``InstancesTable`` reads it (plain values, large values restored)."""
        status = entity.get("RuntimeStatus")
        return cls(unescape_key(entity["PartitionKey"]),
                   runtime_status=RuntimeStatus.parse(status) if status else None,
                   etag=entity.get("etag"),
                   **{f: entity.get(column) for f, column in _COLUMNS.items() if f != "runtime_status"})

    def to_entity(self) -> dict[str, Any]:
        """The columns to write: keys, then every field that is set (``None`` is never written)."""
        entity: dict[str, Any] = {"PartitionKey": escape_key(self.instance_id), "RowKey": ""}
        for f, column in _COLUMNS.items():
            value = getattr(self, f)
            if value is not None:
                entity[column] = value.value if f == "runtime_status" else value
        return entity

    @property
    def status(self) -> RuntimeStatus:
        """The runtime status; a row without one (written before its start was handled) is Pending."""
        return self.runtime_status or RuntimeStatus.PENDING

    def to_status(self, *, history: tuple[dict, ...] | None = None, show_input: bool = True) -> InstanceStatus:
        return InstanceStatus(
            instance_id=self.instance_id,
            name=self.name or "",
            runtime_status=self.status,
            created_time=self.created_time,
            last_updated_time=self.last_updated_time or self.created_time,
            input=parse_json_text(self.input) if show_input else None,
            output=parse_json_text(self.output),
            custom_status=parse_json_text(self.custom_status),
            execution_id=self.execution_id,
            completed_time=self.completed_time,
            scheduled_start_time=self.scheduled_start_time,
            generation=self.generation,
            version=self.version,
            history=history,
        )


def status_from_entity(entity: Mapping[str, Any], *, show_input: bool = True) -> InstanceStatus:
    """The status of an Instances entity (an SDK entity or a plain row; large values already restored).

    The same as ``InstanceRow.from_entity(plain_entity(entity)).to_status(show_input=...)``, without the
    two intermediate objects: listings and queries convert thousands of rows, and building a copy of
    each row and then a full ``InstanceRow`` cost as much as reading it. Only the columns a status shows
    are looked at; each is made plain as ``plain_entity`` does (aware UTC times, typed values unwrapped).
    """
    get = entity.get
    status = get("RuntimeStatus")
    created = plain_value(get("CreatedTime"))
    updated = get("LastUpdatedTime")
    return _status({
        "instance_id": unescape_key(entity["PartitionKey"]),
        "name": get("Name") or "",
        "runtime_status": RuntimeStatus.parse(status) if status else RuntimeStatus.PENDING,
        "created_time": created,
        "last_updated_time": created if updated is None else plain_value(updated),
        "input": _json_column(get("Input")) if show_input else None,
        "output": _json_column(get("Output")),
        "custom_status": _json_column(get("CustomStatus")),
        "execution_id": plain_value(get("ExecutionId")),
        "completed_time": plain_value(get("CompletedTime")),
        "scheduled_start_time": plain_value(get("ScheduledStartTime")),
        "generation": plain_value(get("Generation")),
        "version": plain_value(get("Version")),
        "history": None,
    })


def _json_column(value: Any) -> Any:
    return None if value is None else parse_json_text(plain_value(value))


_new_object = object.__new__


def _status(values: dict[str, Any]) -> InstanceStatus:
    """``InstanceStatus(**values)`` for ``values`` naming every field, without the frozen dataclass's
    ``__init__``: it sets each of the 14 fields through ``object.__setattr__``, which was half the cost of
    converting a row (measured: 2.5-3.2 of 5.1 us), and queries convert every row they read. The result is
    the same object: equal and printed alike (``tests/test_query_storage.py``)."""
    status = _new_object(InstanceStatus)
    status.__dict__.update(values)
    return status


def runtime_status_of(status: OrchestrationStatus) -> RuntimeStatus:
    """The table's name for an ``OrchestrationStatus`` (the provider writes ``status.ToString()``)."""
    return RuntimeStatus(status.name)



__all__ = ["InstanceRow", "runtime_status_of", "status_from_entity"]
