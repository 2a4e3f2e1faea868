"""Request parsing and response shapes of the durable management API.

Query values are parsed strictly: where the extension silently ignores a
malformed value (``top=abc``, ``runtimeStatus=Runing``), this host answers 400
saying which parameter is wrong and what it accepts, and changes nothing.
Errors of the task hub layer map to HTTP statuses in ``error_response`` only.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from aiohttp import web

from durable_mgmt.errors import DurableError, InvalidInput, http_status_of


class BadRequest(InvalidInput):
    """A malformed request: a query value or body the API cannot use."""


def error_body(message: str, error_type: str) -> dict[str, str]:
    # The extension's error shape (ASP.NET HttpError); the SDK reads ExceptionMessage on a failed start.
    return {"Message": message, "ExceptionMessage": message, "ExceptionType": error_type}


def error_response(err: DurableError) -> web.Response:
    return web.json_response(error_body(str(err), type(err).__name__), status=http_status_of(err))


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(body, ensure_ascii=False), status=status, headers=headers,
                        content_type="application/json")


def accepted(headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=202, headers=headers)


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


