"""Jinja2 filters: times, durations, JSON shown pretty with large values folded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..models import InstanceStatus, RuntimeStatus

LARGE = 2000  # characters of pretty JSON above which a value is folded
LONG_STRING = 160
LONG_LIST = 20


@dataclass(frozen=True)
class JsonView:
    full: str
    preview: str
    large: bool
    size: int


def json_view(value: Any) -> JsonView:
    # Strings are shown as JSON strings (quoted), so a text output is told apart from an object.
    full = _pretty(value)
    if len(full) <= LARGE:
        return JsonView(full, full, False, len(full))
    preview = _pretty(_shorten(value)) if not isinstance(value, str) else value[:LONG_STRING] + " …"
    lines = preview.splitlines()
    if len(lines) > 30:
        preview = "\n".join(lines[:30] + ["  …"])
    return JsonView(full, preview, True, len(full))


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _shorten(value: Any) -> Any:
    if isinstance(value, str) and len(value) > LONG_STRING:
        return value[:LONG_STRING] + f"… (+{len(value) - LONG_STRING} characters)"
    if isinstance(value, list):
        items = [_shorten(v) for v in value[:LONG_LIST]]
        return items + [f"… (+{len(value) - LONG_LIST} items)"] if len(value) > LONG_LIST else items
    if isinstance(value, dict):
        return {k: _shorten(v) for k, v in value.items()}
    return value


def when(value: datetime | None) -> str:
    if value is None or value.year < 1900:
        return ""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return "open"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def duration(status: InstanceStatus, now: datetime) -> str:
    end = status.last_updated_time if status.runtime_status.is_terminal else now
    return seconds_text(max(0.0, (end - status.created_time).total_seconds()))


def status_class(status: RuntimeStatus | str) -> str:
    return "st-" + str(status).lower()


def short(value: Any, limit: int = 80) -> str:
    if value is None:
        return ""
    textual = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return textual if len(textual) <= limit else textual[:limit] + "…"


def install_filters(env) -> None:
    env.filters.update(jsonview=json_view, when=when, duration=duration, status_class=status_class, short=short,
                       seconds=seconds_text)
