"""Query-string values of instance-management requests, parsed strictly.

Shared by the host's management API and the app's HTTP triggers, so both
accept the same spellings and refuse the same mistakes with the same
message: which parameter, which value, and what is allowed. Names are
matched case-insensitively, as the Functions host does. ``query`` is any
mapping of names to strings (a MultiDict is read with ``getall``).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any, Mapping

from .errors import InvalidFilter, InvalidInput
from .models import RuntimeStatus
from .taskhub.timefmt import parse_iso

# The paging header of the management API, in requests (the page to fetch) and responses (the next page).
CONTINUATION_HEADER = "x-ms-continuation-token"
# The entity key segment the management API reads as the empty key (HttpApiHandler.EmptyEntityKeySymbol).
EMPTY_ENTITY_KEY = "$"


def get(query: Mapping[str, Any], name: str) -> str | None:
    for key in query:
        if key.lower() == name.lower():
            return query[key]
    return None


def get_all(query: Mapping[str, Any], name: str) -> list[str]:
    getall = getattr(query, "getall", None)
    out: list[str] = []
    for key in set(query):
        if key.lower() == name.lower():
            out += getall(key) if getall else [query[key]]
    return out


def get_bool(query: Mapping[str, Any], name: str, default: bool) -> bool:
    value = get(query, name)
    if value is None or value == "":
        return default
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidInput(f"Query parameter {name}={value!r} is not a boolean; use true or false.")


def get_int(query: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    value = get(query, name)
    if value is None or value == "":
        return None
    if not re.fullmatch(r"\d+", value) or not low <= int(value) <= high:
        raise InvalidInput(f"Query parameter {name}={value!r} must be an integer from {low} to {high}.")
    return int(value)


def get_seconds(query: Mapping[str, Any], name: str, maximum: float = math.inf) -> float | None:
    value = get(query, name)
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or not 0 <= seconds <= maximum:
        limit = f"from 0 to {maximum:g}" if math.isfinite(maximum) else "0 or more"
        raise InvalidInput(f"Query parameter {name}={value!r} must be a number of seconds, {limit}.")
    return seconds


def get_time(query: Mapping[str, Any], name: str) -> datetime | None:
    value = get(query, name)
    if value is None or value == "":
        return None
    # A '+' offset arrives as a space when the caller did not URL-encode it.
    text = re.sub(r"([Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$", r"\1+\2", value.strip())
    year = text.split("-", 1)[0]
    if 0 < len(year) < 4 and year.isdigit():
        text = year.zfill(4) + text[len(year):]  # Python's strftime may drop leading zeros of small years
    try:
        return parse_iso(text)
    except OverflowError:
        raise InvalidFilter(f"Query parameter {name}={value!r} is outside the calendar once converted to UTC; "
                            "give a time between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.") from None
    except ValueError:
        raise InvalidFilter(f"Query parameter {name}={value!r} is not an ISO 8601 time; "
                            "use e.g. 2024-05-01T00:00:00Z.") from None


def get_statuses(query: Mapping[str, Any], name: str = "runtimeStatus") -> frozenset[RuntimeStatus]:
    values = [v for raw in get_all(query, name) for v in raw.split(",") if v.strip()]
    return RuntimeStatus.parse_many(values)


class QueryString:
    """One request's query string, read with the rules above (public: apps read their HTTP triggers'
    ``req.params`` with it, as the host's management API reads its own).

    Every reader returns None when the parameter is absent or empty, and raises InvalidInput (InvalidFilter
    for times and statuses) naming the parameter, its value and what is allowed.
    """

    def __init__(self, values: Mapping[str, Any]):
        self.values = values

    def text(self, name: str) -> str | None:
        """The value of ``name`` (names match in any case)."""
        return get(self.values, name)

    def flag(self, name: str, default: bool) -> bool:
        """``true`` or ``false`` (any case); ``default`` when absent."""
        return get_bool(self.values, name, default)

    def integer(self, name: str, low: int, high: int) -> int | None:
        """A whole number from ``low`` to ``high``."""
        return get_int(self.values, name, low, high)

    def seconds(self, name: str, maximum: float = math.inf) -> float | None:
        """A number of seconds from 0 to ``maximum``."""
        return get_seconds(self.values, name, maximum)

    def time(self, name: str) -> datetime | None:
        """An ISO 8601 time, as UTC."""
        return get_time(self.values, name)

    def statuses(self, name: str = "runtimeStatus") -> frozenset[RuntimeStatus]:
        """Runtime statuses, comma-separated (and repeated parameters), any case."""
        return get_statuses(self.values, name)
