"""The list filter: read from the URL (so a view is a link), turned into a filter query.

The query box (``q``) takes the filter language of ``durable_mgmt.Query`` (the
CLI's ``--query``); the simple form fields (time range, statuses, id prefix,
orchestrator name, custom status) are a convenience that composes a query in the
same language, joined to the box's with AND (``text()``). One engine evaluates
it: what storage can evaluate is pushed down, the rest is matched as pages stream
in (``InstanceManager.find_page``). ``query()`` and ``matches`` keep serving the
overview's counts and chart (``stats``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any, Mapping
from urllib.parse import urlencode

from ..errors import InvalidFilter
from ..models import InstanceQuery, InstanceStatus, RuntimeStatus
from ..query import Query, QuerySyntaxError

RANGES: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1), "6h": timedelta(hours=6), "24h": timedelta(days=1), "7d": timedelta(days=7),
    "30d": timedelta(days=30), "90d": timedelta(days=90), "all": None, "custom": None,
}
RANGE_LABELS = {"1h": "last hour", "6h": "last 6 hours", "24h": "last 24 hours", "7d": "last 7 days",
                "30d": "last 30 days", "90d": "last 90 days", "all": "all time", "custom": "custom"}
DEFAULT_RANGE = "24h"
MAX_QUERY = 4000  # characters of the query box: a URL must stay a URL
REFRESH_CHOICES = (0, 2, 5, 10)


@dataclass(frozen=True)
class ListFilter:
    range: str = DEFAULT_RANGE
    created_from: datetime | None = None  # only for range=custom
    created_to: datetime | None = None
    statuses: tuple[RuntimeStatus, ...] = ()
    id_prefix: str = ""
    name: str = ""
    custom_status: str = ""
    refresh: int = 0
    page_size: int = 50
    token: str | None = None
    errors: tuple[str, ...] = field(default=(), compare=False)
    q: str = ""  # the query box, in the filter language
    q_error: QuerySyntaxError | None = field(default=None, compare=False)  # where the box's query fails

    @classmethod
    def from_args(cls, args: Mapping[str, list[str]], *, page_size: int = 50) -> "ListFilter":
        """From URL arguments; a bad value is reported in ``errors`` and ignored (the page still shows)."""
        errors: list[str] = []
        first = lambda k: (args.get(k) or [""])[0].strip()  # noqa: E731
        rng = first("range") or DEFAULT_RANGE
        if rng not in RANGES:
            errors.append(f"Unknown time range {rng!r}; choose one of {', '.join(RANGES)}.")
            rng = DEFAULT_RANGE
        created_from = created_to = None
        if rng == "custom":
            created_from = _time(first("from"), "from", errors)
            created_to = _time(first("to"), "to", errors)
            if created_from and created_from > datetime.now(timezone.utc):
                errors.append(f"The custom range's 'from' ({first('from')!r}) is in the future: nothing was "
                              "created then; give a time up to now.")
                created_from = created_to = None
            if created_from and created_to and created_from > created_to:
                errors.append("The custom range starts after it ends; give a 'from' not after 'to'.")
                created_from = created_to = None
        statuses: list[RuntimeStatus] = []
        for value in args.get("status", []):
            for part in value.split(","):
                if part.strip():
                    try:
                        statuses.append(RuntimeStatus.parse(part))
                    except InvalidFilter as e:
                        errors.append(str(e))
        refresh = first("refresh") or "0"
        if not refresh.isdigit() or int(refresh) not in REFRESH_CHOICES:
            errors.append(f"Auto-refresh {refresh!r} is not one of {', '.join(map(str, REFRESH_CHOICES))} seconds.")
            refresh = "0"
        size = first("size") or str(page_size)
        if not size.isdigit() or not 1 <= int(size) <= 1000:
            errors.append(f"Page size {size!r} must be a whole number from 1 to 1000.")
            size = str(page_size)
        ordered = tuple(s for s in RuntimeStatus if s in set(statuses))
        q, q_error = first("q"), None
        if len(q) > MAX_QUERY:
            errors.append(f"The query is {len(q)} characters long; at most {MAX_QUERY} are accepted.")
            q = ""
        try:
            Query.parse(q)
        except QuerySyntaxError as e:
            q_error = e
        return cls(rng, created_from, created_to, ordered, first("prefix"), first("name"), first("custom"),
                   int(refresh), int(size), first("ct") or None, tuple(errors), q, q_error)

    def form_text(self) -> str:
        """The form fields as a query in the filter language (what the page shows as 'the query run')."""
        parts: list[str] = []
        if self.range == "custom":
            if self.created_from:
                parts.append(f"createdTime >= {_iso(self.created_from)}")
            if self.created_to:
                parts.append(f"createdTime <= {_iso(self.created_to)}")
        elif RANGES[self.range] is not None:
            parts.append(f"createdTime >= -{self.range}")  # 1h, 24h, 7d...: the language's relative times
        if self.statuses:
            parts.append(f"status IN ({', '.join(s.value for s in self.statuses)})")
        if self.id_prefix:
            parts.append(f"instanceId STARTS_WITH {literal(self.id_prefix)}")
        if self.name:
            parts.append(f"name = {literal(self.name)}")
        if self.custom_status:
            parts.append(f"customStatus CONTAINS {literal(self.custom_status)}")
        return " AND ".join(parts)

    def text(self) -> str:
        """The whole query: the form's part AND the query box (None while the box does not parse)."""
        form, box = self.form_text(), self.q.strip()
        if form and box:
            return f"{form} AND ({box})"
        return form or box

    @cached_property
    def _box(self) -> Query | None:
        return Query.parse(self.q) if self.q and not self.q_error else None

    def parsed(self) -> Query | None:
        return None if self.q_error else Query.parse(self.text())

    def time_range(self, now: datetime | None = None) -> tuple[datetime | None, datetime | None]:
        if self.range == "custom":
            return self.created_from, self.created_to
        span = RANGES[self.range]
        if span is None:
            return None, None
        now = now or datetime.now(timezone.utc)
        return now - span, None

    def query(self, *, page_size: int | None = None, show_input: bool = False) -> InstanceQuery:
        start, end = self.time_range()
        return InstanceQuery(start, end, self.statuses, self.id_prefix or None, self.name or None,
                             show_input=show_input, page_size=page_size or self.page_size,
                             continuation_token=self.token)

    def matches(self, status: InstanceStatus) -> bool:
        """For pages read with ``query()`` (the overview): the custom status (case-insensitive) and the box."""
        if self._box is not None and not self._box.matches(status):
            return False
        if not self.custom_status:
            return True
        value = status.custom_status
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return self.custom_status.lower() in (text or "").lower()

    def params(self, **changes: Any) -> dict[str, Any]:
        """The URL arguments of this filter (``changes`` applied): what links and forms carry."""
        f = replace(self, **changes) if changes else self
        out: dict[str, Any] = {"range": f.range}
        if f.range == "custom":
            if f.created_from:
                out["from"] = _local_input(f.created_from)
            if f.created_to:
                out["to"] = _local_input(f.created_to)
        if f.statuses:
            out["status"] = [s.value for s in f.statuses]
        for key, value in (("prefix", f.id_prefix), ("name", f.name), ("custom", f.custom_status), ("q", f.q)):
            if value:
                out[key] = value
        if f.refresh:
            out["refresh"] = f.refresh
        if f.page_size != 50:
            out["size"] = f.page_size
        if f.token:
            out["ct"] = f.token
        return out

    def query_string(self, **changes: Any) -> str:
        return urlencode(self.params(**changes), doseq=True)


def _time(value: str, what: str, errors: list[str]) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        errors.append(f"The custom range's '{what}' ({value!r}) is not a date and time like 2026-01-31T08:00.")
        return None
    # A datetime-local input has no zone: the dashboard shows and reads times in UTC.
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    try:
        utc = parsed.astimezone(timezone.utc)
    except OverflowError:
        utc = None
    # Storage keeps times from 1601 on; near year 9999 the chart's bucket arithmetic would overflow.
    if utc is None or not 1601 <= utc.year <= 9998:
        errors.append(f"The custom range's '{what}' ({value!r}) is outside 1601-01-01 to 9998-12-31.")
        return None
    return utc


def literal(value: str) -> str:
    """A text value in the filter language: quoted, its quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _local_input(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M")
