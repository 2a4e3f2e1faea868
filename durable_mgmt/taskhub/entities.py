"""Table entities as plain dicts: what the Instances and History tables hand to the rest of the layer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .timefmt import as_utc


def plain_entity(entity) -> dict[str, Any]:
    """``entity`` as a dict of plain values: times in UTC, typed properties unwrapped, its ETag as ``etag``."""
    row = dict(entity)
    meta = getattr(entity, "metadata", None) or {}
    if meta.get("etag"):
        row["etag"] = meta["etag"]
    for key, value in list(row.items()):
        if isinstance(value, datetime):
            row[key] = as_utc(value)
        elif hasattr(value, "value") and type(value).__name__ == "EntityProperty":
            row[key] = value.value
    return row


def plain_value(value: Any) -> Any:
    """One property as ``plain_entity`` makes it plain: a time in UTC, a typed property unwrapped."""
    if value is None or type(value) is str:  # nearly every property: no further checks
        return value
    if isinstance(value, datetime):
        return as_utc(value)
    if hasattr(value, "value") and type(value).__name__ == "EntityProperty":
        return value.value
    return value


class HubTable:
    """One table of a task hub: the hub it belongs to and its SDK client."""

    def __init__(self, hub, table_client):
        self._hub = hub
        self._table = table_client

    @property
    def client(self):
        """The SDK's TableClient (benchmarks and tests read raw entities with it)."""
        return self._table


__all__ = ["plain_entity", "plain_value", "HubTable"]
