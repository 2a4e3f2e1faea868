"""What host.json and the app settings say about the host itself (not the task hub).

Read once at start and validated, so a wrong value stops the host with a
message naming the setting, instead of surfacing later in a trigger loop.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Mapping

from durable_mgmt.errors import InvalidSetting
from durable_mgmt.settings import AppSettings

from .timespan import duration

HOST_ID_SETTING = "AzureFunctionsWebHost__hostid"
_LOG_LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "information": logging.INFO,
               "warning": logging.WARNING, "error": logging.ERROR, "critical": logging.CRITICAL,
               "none": logging.CRITICAL + 10}


@dataclass(frozen=True)
class QueueOptions:
    """host.json ``extensions.queues``, with the Functions defaults."""

    message_encoding: str = "base64"
    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout: timedelta = timedelta(0)
    max_polling_interval: timedelta = timedelta(minutes=1)
    # How long a message stays invisible while its function runs (the WebJobs SDK's 10 minutes,
    # renewed at half-time), so a host that dies mid-run gives the message back.
    processing_visibility: timedelta = timedelta(minutes=10)


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    queues: QueueOptions = field(default_factory=QueueOptions)
    host_id: str = "funcpy"
    log_level: int = logging.INFO

    @classmethod
    def from_settings(cls, settings: AppSettings) -> "HostConfig":
        ext = settings.host_json.get("extensions") or {}
        http = ext.get("http") or {}
        prefix = str(http.get("routePrefix", "api")).strip("/")
        return cls(prefix, _queue_options(ext.get("queues") or {}), host_id(settings), _log_level(settings))


def host_id(settings: AppSettings) -> str:
    """The id that keys this app's secrets and timer status in storage.

    Like the Functions host: the ``AzureFunctionsWebHost__hostid`` setting, else
    one derived from the app (here its folder name plus a short hash of its
    path, so two apps sharing one storage account never share keys or timers).
    """
    explicit = settings.get(HOST_ID_SETTING)
    if explicit:
        if not re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?", explicit):
            raise InvalidSetting(f"App setting {HOST_ID_SETTING} is not a valid host id: use 1-32 "
                                 "lower-case letters, digits and dashes, not starting or ending with a dash.")
        return explicit
    root = settings.script_root
    name = re.sub(r"[^a-z0-9]+", "-", root.name.lower()).strip("-")[:23] or "app"
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:8]
    return f"{name}-{digest}"


def _queue_options(q: Mapping[str, Any]) -> QueueOptions:
    where = "host.json extensions.queues"
    d = QueueOptions()
    encoding = str(q.get("messageEncoding", d.message_encoding)).lower()
    if encoding not in ("base64", "none"):
        raise InvalidSetting(f"{where}.messageEncoding is {q.get('messageEncoding')!r}; allowed: base64, none.")
    batch = _int(q, "batchSize", d.batch_size, 1, 32, where)
    threshold = _int(q, "newBatchThreshold", batch // 2, 0, 10_000, where)
    try:
        visibility = duration(q.get("visibilityTimeout", "00:00:00"), f"{where}.visibilityTimeout")
        polling = duration(q.get("maxPollingInterval", "00:01:00"), f"{where}.maxPollingInterval")
    except ValueError as e:
        raise InvalidSetting(str(e)) from None
    if polling < timedelta(milliseconds=100):
        raise InvalidSetting(f"{where}.maxPollingInterval must be at least 00:00:00.100 (100 ms).")
    return QueueOptions(encoding, batch, threshold, _int(q, "maxDequeueCount", d.max_dequeue_count, 1, 10_000, where),
                        visibility, polling)


def _int(section: Mapping[str, Any], key: str, default: int, low: int, high: int, where: str) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidSetting(f"{where}.{key} is {value!r}; it must be an integer from {low} to {high}.")
    return value


def _log_level(settings: AppSettings) -> int:
    levels = ((settings.host_json.get("logging") or {}).get("logLevel") or {})
    text = str(levels.get("default", "Information"))
    level = _LOG_LEVELS.get(text.lower())
    if level is None:
        raise InvalidSetting(f"host.json logging.logLevel.default is {text!r}; allowed: "
                             "Trace, Debug, Information, Warning, Error, Critical, None.")
    return level
