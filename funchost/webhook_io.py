"""Request parsing and response shapes of the durable management API.

Query values are parsed strictly: where the extension silently ignores a
malformed value (``top=abc``, ``runtimeStatus=Runing``), this host answers 400
saying which parameter is wrong and what it accepts, and changes nothing.
Errors of the task hub layer map to HTTP statuses in ``error_response`` only.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Mapping

from aiohttp import web

from durable_mgmt.errors import DurableError, InvalidInput, http_status_of
from durable_mgmt.limits import MAX_JSON_BODY_BYTES, check_json_text


class BadRequest(InvalidInput):
    """A malformed request: a query value or body the API cannot use."""


class BodyTooLarge(BadRequest):
    """The body is larger than one management request may be (413)."""


class BodyTimeout(BadRequest):
    """The body did not arrive in time (408)."""


BODY_TIMEOUT_SECONDS = 60.0
_CHUNK = 64 * 1024


async def read_body(request: web.Request, limit: int = MAX_JSON_BODY_BYTES) -> bytes:
    """The request body, at most ``limit`` bytes, arriving within ``BODY_TIMEOUT_SECONDS``.

    Refused before it is read whole when Content-Length says it is too large; read in chunks
    otherwise, so a body without a length costs at most ``limit`` bytes of memory.
    """
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"The request body has {request.content_length} bytes; a management request may have "
                           f"at most {limit} ({limit // (1024 * 1024)} MiB). Store large inputs elsewhere "
                           "and pass a reference.")
    body = bytearray()

    async def read() -> None:
        while chunk := await request.content.read(_CHUNK):
            body.extend(chunk)
            if len(body) > limit:
                raise BodyTooLarge(f"The request body is larger than {limit} bytes "
                                   f"({limit // (1024 * 1024)} MiB), the most a management request may have.")

    try:
        async with asyncio.timeout(BODY_TIMEOUT_SECONDS):  # not wait_for: on 3.11 it can swallow a cancel
            await read()
    except asyncio.TimeoutError:
        raise BodyTimeout(f"The request body did not arrive within {BODY_TIMEOUT_SECONDS:g} s.") from None
    return bytes(body)


def error_body(message: str, error_type: str) -> dict[str, str]:
    # The extension's error shape (ASP.NET HttpError); the SDK reads ExceptionMessage on a failed start.
    return {"Message": message, "ExceptionMessage": message, "ExceptionType": error_type}


def error_response(err: DurableError) -> web.Response:
    status = 413 if isinstance(err, BodyTooLarge) else 408 if isinstance(err, BodyTimeout) else http_status_of(err)
    return web.json_response(error_body(str(err), type(err).__name__), status=status)


def json_bytes(body: Any) -> bytes:
    """``body`` as UTF-8 JSON. Stored values may hold escaped lone surrogates (``"\\ud800"`` is valid JSON);
    those have no UTF-8 form, so such a body is written with ASCII escapes instead of failing."""
    try:
        return json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(body).encode("ascii")


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=json_bytes(body), status=status, headers=headers, content_type="application/json",
                        charset="utf-8")


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
    except UnicodeDecodeError as e:
        raise BadRequest(f"The request body is not UTF-8 text: {e}. Send JSON encoded as UTF-8.") from None
    try:
        value = check_json_text(text, "request body")
    except InvalidInput as e:
        raise BadRequest(str(e)) from None
    if unwrap_string and isinstance(value, str):
        try:
            check_json_text(value, "request body")
            return value
        except InvalidInput as e:
            if str(e).startswith("Invalid JSON content"):
                return text  # a plain string after all: keep it as the JSON string it was
            raise BadRequest(str(e)) from None
    return text


