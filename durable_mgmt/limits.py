"""What one request may hold and cost: the rules every door shares.

The management webhooks, the app's HTTP functions, the CLI and the library
all check values here (through ``requests``, ``TaskHubClient`` and
``query_params``), so a value refused by one door is refused by every door,
with the same message: which value, why, and what is allowed. Every check
runs before the first write.

Limits and where they come from:

* JSON nesting: at most ``MAX_JSON_DEPTH`` (64), Json.NET's default
  ``MaxDepth`` (Newtonsoft.Json 13, ``JsonSerializerSettings.DefaultMaxDepth``):
  the .NET tools that read a task hub (Durable Functions Monitor, the
  extension) refuse deeper documents, and Python's own parser would fail with
  a RecursionError long before memory runs out.
* JSON values: standard JSON only (RFC 8259). ``NaN``/``Infinity``, numbers
  that overflow a double, and objects with duplicate keys are refused: other
  readers would see a different value, or fail on it.
* Bodies: ``MAX_JSON_BODY_BYTES`` per request to the management API.
* Names (orchestrator, event): at most ``MAX_NAME_LENGTH`` characters, no
  control characters, no unpaired surrogates (not encodable as UTF-8, so no
  table, queue or blob can hold them).
* Waits: timeouts up to ``MAX_WAIT_SECONDS``, polling no more often than
  every ``MIN_POLL_SECONDS``.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any

from .errors import InvalidInput, InvalidInstanceId

MAX_JSON_DEPTH = 64
MAX_JSON_BODY_BYTES = 16 * 1024 * 1024
MAX_NAME_LENGTH = 256
MAX_REASON_LENGTH = 32 * 1024
MAX_WAIT_SECONDS = 3600.0
MIN_POLL_SECONDS = 0.1

_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown(value: str, limit: int = 40) -> str:
    """A value as an error message may quote it: cut to ``limit`` characters, escapes visible."""
    text = value if len(value) <= limit else value[:limit] + "..."
    return ascii(text) if _SURROGATE.search(text) else repr(text)


def check_text(value: Any, what: str, *, max_length: int = MAX_NAME_LENGTH, allow_control: bool = False) -> str:
    """``value`` if it is a string storage can hold; InvalidInput naming ``what`` otherwise."""
    if not isinstance(value, str):
        raise InvalidInput(f"Invalid {what}: expected text, got {type(value).__name__}.")
    if len(value) > max_length:
        raise InvalidInput(f"Invalid {what} {shown(value)}: it has {len(value)} characters; "
                           f"at most {max_length} are allowed.")
    bad = _SURROGATE.search(value)
    if bad:
        raise InvalidInput(f"Invalid {what} {shown(value)}: it contains an unpaired surrogate "
                           f"(U+{ord(bad.group()):04X} at position {bad.start()}), which is not text "
                           "any storage can hold. Send well-formed Unicode (UTF-8).")
    if not allow_control:
        bad = _CONTROL.search(value)
        if bad:
            raise InvalidInput(f"Invalid {what} {shown(value)}: it contains the control character "
                               f"U+{ord(bad.group()):04X}; control characters are not allowed.")
    return value


def check_segment(value: str, what: str) -> str:
    """``value`` as a name that is also one URL path segment: not made only of dots ('.' and '..' are
    collapsed by every URL stack, so such a name could be sent but never addressed)."""
    check_text(value, what)
    if not value.strip("."):
        raise InvalidInput(f"Invalid {what} {value!r}: a name made only of dots is not a usable URL path "
                           "segment ('.' and '..' are collapsed). Use at least one character other than '.'.")
    return value


def check_existing_id(instance_id: str) -> str:
    """The id of an instance that may exist: not empty, and text a table key can hold.

    Looser than ``validate_instance_id`` (for new ids): ids of existing instances may hold characters new
    ids may not (older tools wrote them); but no stored id holds an unpaired surrogate or is over 1 KiB.
    """
    if not isinstance(instance_id, str) or not instance_id:
        raise InvalidInstanceId("Invalid instance id: it is empty. Give the id of an instance.")
    try:
        check_text(instance_id, "instance id", max_length=1024, allow_control=True)
    except InvalidInput as e:
        raise InvalidInstanceId(str(e)) from None
    return instance_id


def check_reason(reason: str | None) -> str | None:
    return None if reason is None else check_text(reason, "reason", max_length=MAX_REASON_LENGTH, allow_control=True)


def check_json_text(text: str, what: str) -> Any:
    """Parse ``text`` as standard JSON within the limits above; its value, or InvalidInput naming ``what``."""
    if not isinstance(text, str):
        raise InvalidInput(f"The {what} must be JSON text, not {type(text).__name__}.")
    check_text(text, what, max_length=MAX_JSON_BODY_BYTES, allow_control=True)
    _check_depth(text, what)
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float,
                          object_pairs_hook=_unique_keys)
    except _Refused as e:
        raise InvalidInput(f"The {what} is not allowed: {e}") from None
    except RecursionError:  # deeper than the interpreter's stack despite the check: refuse all the same
        raise InvalidInput(f"The {what} is nested too deeply; at most {MAX_JSON_DEPTH} levels are allowed.") from None
    except ValueError as e:
        raise InvalidInput(f"Invalid JSON content in the {what}: {e}.") from None


def parse_json_body(body: bytes, what: str = "request body") -> Any:
    """The value of a request's JSON body (None when empty), checked as every door checks JSON (size,
    UTF-8, depth, NaN, duplicate keys): InvalidInput saying what is wrong."""
    if not body or not body.strip():
        return None
    if len(body) > MAX_JSON_BODY_BYTES:
        raise InvalidInput(f"The {what} has {len(body)} bytes; at most {MAX_JSON_BODY_BYTES} are allowed.")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"The {what} must be JSON encoded as UTF-8 (or empty).") from None
    return check_json_text(text, what)


def dumps_checked(value: Any, what: str, default=None) -> str:
    """The JSON text of ``value`` (compact, UTF-8), refused like ``check_json_text`` refuses text."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=default)
    except RecursionError:
        raise InvalidInput(f"The {what} is nested too deeply; at most {MAX_JSON_DEPTH} levels are allowed.") from None
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"The {what} is not JSON-serializable: {e}. Pass data made of dicts, lists, strings, "
                           "finite numbers, booleans and None (or objects with to_json).") from e
    _check_depth(text, what)
    check_text(text, what, max_length=len(text), allow_control=True)  # lone surrogates have no UTF-8 form
    return text


def json_default(value: Any) -> Any:
    """How values ``json`` cannot write are written, by every door alike: objects with ``to_json`` (as the
    SDK's serializer does), and datetimes as ISO 8601 text; anything else is not JSON-serializable."""
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def check_wait(timeout: float, interval: float, *, timeout_name: str = "timeout",
               interval_name: str = "pollingInterval") -> None:
    """A wait that ends and does not hammer storage: InvalidInput otherwise."""
    if not (math.isfinite(timeout) and 0 <= timeout <= MAX_WAIT_SECONDS):
        raise InvalidInput(f"{timeout_name}={timeout:g} is not allowed: a wait lasts from 0 to "
                           f"{MAX_WAIT_SECONDS:g} seconds.")
    if not (math.isfinite(interval) and MIN_POLL_SECONDS <= interval <= MAX_WAIT_SECONDS):
        raise InvalidInput(f"{interval_name}={interval:g} is not allowed: polling happens at most every "
                           f"{MIN_POLL_SECONDS:g} s, so give {MIN_POLL_SECONDS:g} to {MAX_WAIT_SECONDS:g} seconds.")


class _Refused(ValueError):
    pass


def check_depth(text: str, what: str) -> None:
    """InvalidInput when JSON ``text`` nests deeper than MAX_JSON_DEPTH (checked before json.loads recurses)."""
    _check_depth(text, what)


def _check_depth(text: str, what: str) -> None:
    # Counting brackets first keeps the common case (shallow documents) to two C-speed scans.
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return
    depth = 0
    for m in _STRING_OR_BRACKET.finditer(text):
        c = m.group()[0]
        if c in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise InvalidInput(f"The {what} is nested more than {MAX_JSON_DEPTH} levels deep (at character "
                                   f"{m.start()}); at most {MAX_JSON_DEPTH} levels are allowed.")
        elif c in "]}":
            depth -= 1


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number; use null or a finite number.")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:40]} is too large for a double (IEEE 754); use a smaller number "
                       "or send it as a string.")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"the key {shown(key)} appears twice in one object; every key must be unique.")
        out[key] = value
    return out
