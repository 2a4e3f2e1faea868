"""OData filters for the task hub tables, built with parameters.

Values never go into a filter as raw text: each is passed as a parameter to
the Azure Tables SDK, which quotes it (``'`` doubled, ``datetime'...'``), so
an id or prefix containing a quote cannot change the query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from .names import escape_key
from .timefmt import MIN_DATETIME as TABLE_MIN_TIME


@dataclass
class Filter:
    """A conjunction of OData clauses with their parameters."""

    clauses: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)

    def _param(self, value: Any) -> str:
        name = f"p{len(self.parameters)}"
        self.parameters[name] = value
        return "@" + name

    def param(self, value: Any) -> str:
        """A placeholder for ``value`` (quoted by the SDK), for clauses built elsewhere."""
        return self._param(value)

    def eq(self, column: str, value: Any) -> "Filter":
        self.clauses.append(f"{column} eq {self._param(value)}")
        return self

    def ge(self, column: str, value: Any) -> "Filter":
        self.clauses.append(f"{column} ge {self._param(value)}")
        return self

    def le(self, column: str, value: Any) -> "Filter":
        self.clauses.append(f"{column} le {self._param(value)}")
        return self

    def any_of(self, column: str, values: Iterable[Any]) -> "Filter":
        values = list(values)
        if values:
            # Spaces around the parentheses: the SDK finds @parameters by splitting on spaces.
            self.clauses.append("( " + " or ".join(f"{column} eq {self._param(v)}" for v in values) + " )")
        return self

    def prefix(self, column: str, prefix: str) -> "Filter":
        """Rows whose ``column`` starts with ``prefix``: a range scan, as the provider does."""
        # U+FFFF is the last code unit: no character follows it, so prefix + U+FFFF bounds the range instead.
        upper = prefix[:-1] + _next_char(prefix[-1]) if ord(prefix[-1]) != 0xFFFF else prefix + "\uffff"
        self.clauses.append(f"{column} ge {self._param(prefix)} and {column} lt {self._param(upper)}")
        return self

    def raw(self, clause: str) -> "Filter":
        """A clause with no caller-supplied value in it."""
        self.clauses.append(clause)
        return self

    @property
    def text(self) -> str | None:
        return " and ".join(self.clauses) if self.clauses else None


def _next_char(ch: str) -> str:
    """The least character after ``ch`` in the service's key order (UTF-16 code units), as a bound that can be
    sent (a lone surrogate cannot: it has no UTF-8 form). After U+D7FF come the surrogates, i.e. every
    character beyond U+FFFF, the least of them U+10000: U+E000 would take them all into a prefix's range.
    After U+10FFFF (DBFF DFFF) comes U+E000."""
    code = ord(ch)
    if code == 0xD7FF:
        return "\U00010000"
    if code == 0x10FFFF:
        return "\ue000"
    return chr(code + 1)


def instances_filter(*, created_from: datetime | None = None, created_to: datetime | None = None,
                     statuses: Iterable[str] = (), instance_id_prefix: str | None = None,
                     name: str | None = None, exclude_entities: bool = True) -> Filter:
    f = Filter()
    # Azure Tables hold times from 1601-01-01 on: an earlier bound means "from the beginning", and the
    # service would refuse it (400) rather than match everything.
    if created_from is not None and created_from > TABLE_MIN_TIME:
        f.ge("CreatedTime", created_from)
    if created_to is not None:
        f.le("CreatedTime", max(created_to, TABLE_MIN_TIME))
    f.any_of("RuntimeStatus", sorted(statuses))
    if instance_id_prefix:
        f.prefix("PartitionKey", escape_key(instance_id_prefix))
    if name:
        f.eq("Name", name)
    if exclude_entities and not (instance_id_prefix or "").startswith("@"):
        # Entities live in the same table with ids "@name@key".
        f.raw("(PartitionKey lt '@' or PartitionKey ge 'A')")
    return f
