"""Option value types: ISO times, runtime status lists, and JSON given inline or as ``@file``.

Each converts with the library's own parser, so the CLI accepts exactly what
the API accepts, and a bad value fails while options are parsed, before
anything touches storage (exit code 2).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ..errors import InvalidFilter, InvalidInput
from ..limits import check_depth
from ..models import RuntimeStatus
from ..taskhub.timefmt import parse_iso


class IsoTime(click.ParamType):
    """An ISO 8601 time; no offset means UTC (as Core Tools reads it)."""

    name = "ISO-TIME"

    def convert(self, value: Any, param, ctx) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_iso(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time; give e.g. 2024-05-01 or 2024-05-01T13:30:00Z "
                      "(UTC unless an offset such as +02:00 is given)", param, ctx)


class StatusList(click.ParamType):
    """Runtime status names, space- or comma-separated, case-insensitive: ``"running pending"``."""

    name = "STATUSES"

    def convert(self, value: Any, param, ctx) -> frozenset[RuntimeStatus]:
        if isinstance(value, frozenset):
            return value
        try:
            return RuntimeStatus.parse_many(str(value))
        except InvalidFilter as err:
            self.fail(str(err).rstrip("."), param, ctx)


class JsonText(click.ParamType):
    """A JSON value as text: inline, or ``@path`` to read a JSON file.

    Inline text that is not valid JSON is taken as a string, so
    ``--input Tokyo`` and ``--input '"Tokyo"'`` mean the same; a file must
    hold valid JSON. The result is compact JSON text, ready to store.
    """

    name = "JSON|@FILE"
    strict = False  # True: inline text that looks like JSON must be JSON (see STRICT_JSON_TEXT)

    def convert(self, value: Any, param, ctx) -> str:
        text = str(value)
        try:  # json.loads recurses: a deeply nested value would end in a RecursionError traceback
            check_depth(text, "value")
        except InvalidInput as err:
            self.fail(str(err), param, ctx)
        if text.startswith("@"):
            path = Path(text[1:])
            try:
                content = path.read_text(encoding="utf-8-sig")
            except FileNotFoundError:
                self.fail(f"file {str(path)!r} does not exist; give @ followed by the path of a JSON file", param, ctx)
            except OSError as err:
                self.fail(f"cannot read {str(path)!r}: {err.strerror}", param, ctx)
            try:
                return _compact(json.loads(content))
            except json.JSONDecodeError as err:
                self.fail(f"{str(path)!r} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})",
                          param, ctx)
        try:
            # Strict: NaN and Infinity are not JSON (Python reads them, and would then send NaN).
            return _compact(json.loads(text, parse_constant=_refuse_constant) if self.strict else json.loads(text))
        except (ValueError, RecursionError) as err:
            if self.strict and _looks_like_json(text):
                detail = f" (line {err.lineno}, column {err.colno}: {err.msg})" \
                    if isinstance(err, json.JSONDecodeError) else ""
                self.fail(f"{text[:40]!r} looks like JSON but is not valid JSON{detail}; fix it, or send it as "
                          "plain text with --event-data-text", param, ctx)
            return _compact(text)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _looks_like_json(text: str) -> bool:
    t = text.strip()
    return t[:1] in ("{", "[", '"') or t in ("NaN", "Infinity", "-Infinity", "nan", "inf", "-inf")


class StrictJsonText(JsonText):
    """Like ``JsonText``, but inline text that looks like JSON (starts with { [ or ", or is NaN/Infinity)
    must parse: a typo then sent as a string to every instance a bulk job matches cannot be taken back."""

    strict = True


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def id_option():
    return click.option("--id", "instance_id", required=True, metavar="ID", help="Instance id.")


def bool_option(name: str, help_text: str):
    """A Core Tools style boolean: ``--show-input``, ``--show-input true`` and ``--show-input false`` all work."""
    return click.option(name, type=click.BOOL, is_flag=False, flag_value=True, default=False, show_default=True,
                        metavar="[true|false]", help=help_text)


ISO_TIME = IsoTime()
STATUSES = StatusList()
JSON_TEXT = JsonText()
STRICT_JSON_TEXT = StrictJsonText()
