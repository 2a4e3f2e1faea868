"""Request parsing and response shapes of the durable management API.

Query values are parsed strictly: where the extension silently ignores a
malformed value (``top=abc``, ``runtimeStatus=Runing``), this host answers 400
saying which parameter is wrong and what it accepts, and changes nothing.
Errors of the task hub layer map to HTTP statuses in ``error_response`` only.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any, Mapping

from aiohttp import web

from durable_mgmt.errors import (ConcurrencyConflict, DurableError, InstanceAlreadyExists, InstanceNotFailed,
                                 InstanceNotFound, InstanceNotRunning, InstanceNotTerminal, InvalidFilter,
                                 InvalidInput, NotFound, StorageUnavailable)
from durable_mgmt.models import RuntimeStatus
from durable_mgmt.taskhub.timefmt import parse_iso

CONTINUATION_HEADER = "x-ms-continuation-token"

# Most specific first: the first matching class decides the status.
_STATUS_BY_ERROR: tuple[tuple[type[DurableError], int], ...] = (
    (InstanceNotFound, 404),
    (NotFound, 404),
    (InstanceAlreadyExists, 409),
    (InstanceNotTerminal, 412),   # purge of an instance still running (the extension's PreconditionFailed)
    (InstanceNotRunning, 410),
    (InstanceNotFailed, 410),
    (InvalidInput, 400),
    (ConcurrencyConflict, 409),
    (StorageUnavailable, 503),
)


class BadRequest(InvalidInput):
    """A malformed request: a query value or body the API cannot use."""


def error_body(message: str, error_type: str) -> dict[str, str]:
    # The extension's error shape (ASP.NET HttpError); the SDK reads ExceptionMessage on a failed start.
    return {"Message": message, "ExceptionMessage": message, "ExceptionType": error_type}


def error_response(err: DurableError) -> web.Response:
    status = next((code for cls, code in _STATUS_BY_ERROR if isinstance(err, cls)), 500)
    return web.json_response(error_body(str(err), type(err).__name__), status=status)


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(body, ensure_ascii=False), status=status, headers=headers,
                        content_type="application/json")


def accepted(headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=202, headers=headers)


def get_bool(query: Mapping[str, str], name: str, default: bool) -> bool:
    value = _get(query, name)
    if value is None or value == "":
        return default
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise BadRequest(f"Query parameter {name}={value!r} is not a boolean; use true or false.")


def get_int(query: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    value = _get(query, name)
    if value is None or value == "":
        return None
    if not re.fullmatch(r"\d+", value) or not low <= int(value) <= high:
        raise BadRequest(f"Query parameter {name}={value!r} must be an integer from {low} to {high}.")
    return int(value)


def get_seconds(query: Mapping[str, str], name: str) -> float | None:
    value = _get(query, name)
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise BadRequest(f"Query parameter {name}={value!r} must be a number of seconds (0 or more).")
    return seconds


def get_time(query: Mapping[str, str], name: str) -> datetime | None:
    value = _get(query, name)
    if value is None or value == "":
        return None
    # A '+' offset arrives as a space when the caller did not URL-encode it.
    text = re.sub(r"([Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$", r"\1+\2", value.strip())
    year = text.split("-", 1)[0]
    if 0 < len(year) < 4 and year.isdigit():
        text = year.zfill(4) + text[len(year):]  # Python's strftime may drop leading zeros of small years
    try:
        return parse_iso(text)
    except ValueError:
        raise InvalidFilter(f"Query parameter {name}={value!r} is not an ISO 8601 time; "
                            "use e.g. 2024-05-01T00:00:00Z.") from None


def get_statuses(query: Mapping[str, str], name: str = "runtimeStatus") -> frozenset[RuntimeStatus]:
    values = [v for raw in _get_all(query, name) for v in raw.split(",") if v.strip()]
    return RuntimeStatus.parse_many(values)


def read_json_body(raw: bytes, *, unwrap_string: bool) -> str | None:
    """The JSON text of a request body (None when empty); BadRequest when it is not JSON.

    ``unwrap_string``: the SDK's client sends inputs and event data already
    serialized, then serialized again by aiohttp (a JSON string holding JSON
    text). On the internal RPC endpoint that outer string is removed, so what
    is stored is the JSON text of the caller's value, as from any other client.
    """
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8-sig").strip()
        value = json.loads(text)
    except (UnicodeDecodeError, ValueError) as e:
        raise BadRequest(f"Invalid JSON content in the request body: {e}.") from None
    if unwrap_string and isinstance(value, str):
        try:
            json.loads(value)
            return value
        except ValueError:
            return text  # a plain string after all: keep it as the JSON string it was
    return text


def _get(query: Mapping[str, str], name: str) -> str | None:
    # Query names are case-insensitive in the extension (NameValueCollection).
    for key in query:
        if key.lower() == name.lower():
            return query[key]
    return None


def _get_all(query, name: str) -> list[str]:
    getall = getattr(query, "getall", None)
    out: list[str] = []
    for key in set(query):
        if key.lower() == name.lower():
            out += getall(key) if getall else [query[key]]
    return out
