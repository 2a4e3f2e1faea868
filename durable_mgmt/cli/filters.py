"""The instance filters shared by get-instances, count and purge-history.

Core Tools' ``--created-after``, ``--created-before`` and ``--runtime-status``,
plus ``--instance-id-prefix`` and ``--name``, which Core Tools lacks. Values
reach storage only through ``InstanceQuery`` and the task hub's parameterised
OData filters, never pasted into a filter string.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

import click

from ..models import InstanceQuery, RuntimeStatus
from ..taskhub.timefmt import to_iso
from .params import ISO_TIME, STATUSES


@dataclass(frozen=True)
class Filters:
    created_after: datetime | None
    created_before: datetime | None
    statuses: frozenset[RuntimeStatus]
    instance_id_prefix: str | None
    name: str | None

    def query(self, *, statuses: frozenset[RuntimeStatus] | None = None, **kwargs: Any) -> InstanceQuery:
        """An ``InstanceQuery`` with these filters (InvalidFilter if the time range is reversed)."""
        return InstanceQuery(created_from=self.created_after, created_to=self.created_before,
                             statuses=self.statuses if statuses is None else statuses,
                             instance_id_prefix=self.instance_id_prefix, name=self.name, **kwargs)

    def describe(self) -> str:
        """The filters in words, for confirmations and summaries."""
        parts = []
        if self.created_after or self.created_before:
            parts.append(f"created between '{_iso(self.created_after) or 'the beginning'}' and "
                         f"'{_iso(self.created_before) or 'now'}'")
        if self.statuses:
            parts.append("runtime status " + " or ".join(sorted(s.value for s in self.statuses)))
        if self.instance_id_prefix:
            parts.append(f"id starting with '{self.instance_id_prefix}'")
        if self.name:
            parts.append(f"orchestrator '{self.name}'")
        return ", ".join(parts) or "no filter"


def filter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the filter options and pass them as one ``filters`` argument."""

    @click.option("--created-after", type=ISO_TIME, default=None,
                  help="Only instances created at or after this ISO 8601 time (UTC unless an offset is given).")
    @click.option("--created-before", type=ISO_TIME, default=None,
                  help="Only instances created at or before this ISO 8601 time.")
    @click.option("--runtime-status", "statuses", type=STATUSES, multiple=True, metavar="STATUSES",
                  help="Only these runtime statuses, space-separated, case-insensitive: "
                       "\"running pending\". May be repeated.")
    @click.option("--instance-id-prefix", default=None, metavar="PREFIX", help="Only ids starting with PREFIX.")
    @click.option("--name", default=None, metavar="NAME", help="Only instances of this orchestrator function.")
    @functools.wraps(func)
    def wrapper(*args: Any, created_after, created_before, statuses, instance_id_prefix, name, **kwargs: Any) -> Any:
        merged = frozenset().union(*statuses) if statuses else frozenset()
        filters = Filters(created_after, created_before, merged, instance_id_prefix or None, name or None)
        return func(*args, filters=filters, **kwargs)

    return wrapper


def _iso(value: datetime | None) -> str:
    return to_iso(value) if value else ""
