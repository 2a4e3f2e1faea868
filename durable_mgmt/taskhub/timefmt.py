"""UTC timestamps as .NET writes and reads them."""

from __future__ import annotations

import re
from datetime import datetime, timezone

_FRACTION = re.compile(r"(\.\d{6})\d+")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """Make ``value`` timezone-aware UTC; naive values are taken to be UTC already."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def to_iso(value: datetime) -> str:
    """ISO 8601 in UTC the way Newtonsoft writes a UTC DateTime: trailing zero digits trimmed, 'Z'."""
    v = as_utc(value)
    # isoformat of the naive time: "YYYY-MM-DDTHH:MM:SS", then ".ffffff" only when there are microseconds
    # (strftime was a third of a bulk terminate's message encoding, and wrote years before 1000 unpadded).
    text = v.replace(tzinfo=None).isoformat()
    return (text.rstrip("0") if v.microsecond else text) + "Z"


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 time (7 fractional digits, 'Z' or an offset allowed) to aware UTC."""
    t = text.strip()
    if t.endswith("Z") or t.endswith("z"):
        t = t[:-1] + "+00:00"
    t = _FRACTION.sub(r"\1", t)
    return as_utc(datetime.fromisoformat(t))


MIN_DATETIME = datetime(1601, 1, 1, tzinfo=timezone.utc)
