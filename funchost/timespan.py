""".NET TimeSpan text (``[d.]hh:mm:ss[.fffffff]``), as host.json and timer schedules write durations."""

from __future__ import annotations

import re
from datetime import timedelta

_TIMESPAN = re.compile(r"^\s*(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2})(?:\.(?P<f>\d{1,7}))?\s*$")


def looks_like_timespan(text: str) -> bool:
    return bool(_TIMESPAN.match(text or ""))


def parse_timespan(text: str, where: str) -> timedelta:
    """``"00:00:05"`` -> 5 s; ValueError naming ``where`` and the accepted form when malformed."""
    m = _TIMESPAN.match(str(text))
    if not m or int(m["h"]) > 23 or int(m["m"]) > 59 or int(m["s"]) > 59:
        raise ValueError(f"{where}: {text!r} is not a time span. Write it as hh:mm:ss (e.g. 00:00:30), "
                         "optionally with days (1.00:00:00) or fractions (00:00:00.500).")
    fraction = float("0." + m["f"]) if m["f"] else 0.0
    return timedelta(days=int(m["days"] or 0), hours=int(m["h"]), minutes=int(m["m"]),
                     seconds=int(m["s"]) + fraction)


def duration(value: object, where: str) -> timedelta:
    """A host.json duration: TimeSpan text, or a number of milliseconds (as some settings allow)."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: {value!r} is not a duration; write it as hh:mm:ss.")
    if isinstance(value, (int, float)):
        return timedelta(milliseconds=value)
    return parse_timespan(str(value), where)
