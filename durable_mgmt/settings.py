"""App settings resolved the way Azure Functions resolves them.

Values: the process environment first, then ``local.settings.json`` ``Values``.
Task hub name: an explicit name, else host.json
``extensions.durableTask.hubName`` (``%Setting%`` references expanded), else
``DurableFunctionsHub``. Partition count: host.json
``extensions.durableTask.storageProvider.partitionCount``, else 4.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import InvalidSetting
from .taskhub.names import DEFAULT_HUB_NAME, DEFAULT_PARTITION_COUNT, validate_hub_name, validate_partition_count
from .taskhub.storage import StorageAccount

DEFAULT_CONNECTION_SETTING = "AzureWebJobsStorage"
# The extension's name for that default connection in management URLs (connection=Storage).
DEFAULT_CONNECTION_NAME = "Storage"
_REFERENCE = re.compile(r"%([^%]+)%")


@dataclass(frozen=True)
class AppSettings:
    script_root: Path
    local_values: Mapping[str, str] = field(default_factory=dict)
    host_json: Mapping[str, Any] = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def get(self, name: str, default: str | None = None) -> str | None:
        """A setting's value: environment first, then local.settings.json Values."""
        if name in self.environ:
            return self.environ[name]
        value = self.local_values.get(name)
        return default if value is None else str(value)

    def expand(self, text: str, where: str) -> str:
        """Replace ``%Name%`` references with setting values (as the Functions host does)."""
        def sub(m: re.Match) -> str:
            value = self.get(m.group(1))
            if value is None:
                raise InvalidSetting(
                    f"{where} refers to %{m.group(1)}%, but no app setting {m.group(1)!r} is set "
                    "(in the environment or local.settings.json Values).")
            return value
        return _REFERENCE.sub(sub, text)

    def connection_string(self, setting_name: str = DEFAULT_CONNECTION_SETTING) -> str:
        value = self.get(setting_name)
        if value is None:
            # Functions also accepts the name without the AzureWebJobs prefix, and vice versa.
            alt = setting_name[len("AzureWebJobs"):] if setting_name.startswith("AzureWebJobs") else "AzureWebJobs" + setting_name
            value = self.get(alt)
        if value is None or not value.strip():
            known = sorted(k for k in {**self.local_values, **self.environ}
                           if "storage" in k.lower() or "connection" in k.lower())
            hint = f" Settings that look like connections: {', '.join(known)}." if known else ""
            raise InvalidSetting(
                f"No connection string in app setting {setting_name!r}: set it in the environment or in "
                f"local.settings.json Values (UseDevelopmentStorage=true for Azurite).{hint}")
        return value

    def storage_account(self, setting_name: str = DEFAULT_CONNECTION_SETTING) -> StorageAccount:
        return StorageAccount.from_connection_string(self.connection_string(setting_name),
                                                     f"app setting {setting_name!r}")

    @property
    def durable_task(self) -> Mapping[str, Any]:
        ext = self.host_json.get("extensions") or {}
        return ext.get("durableTask") or {}

    def durable_connection_setting(self, explicit: str | None = None) -> str:
        """The app setting holding the task hub's storage: ``explicit``, else host.json's
        ``storageProvider.connectionName`` (or ``connectionStringName``, or 1.x's
        ``azureStorageConnectionStringName``), else AzureWebJobsStorage."""
        if explicit:
            return explicit
        provider = self.durable_task.get("storageProvider") or {}
        for key in ("connectionName", "connectionStringName"):
            if provider.get(key):
                return str(provider[key])
        legacy = self.durable_task.get("azureStorageConnectionStringName")
        return str(legacy) if legacy else DEFAULT_CONNECTION_SETTING

    def hub_name(self, explicit: str | None = None) -> str:
        if explicit:
            return self.expanded_hub_name(explicit, "--task-hub-name")
        configured = self.durable_task.get("hubName")
        if configured:
            return self.expanded_hub_name(str(configured), "host.json extensions.durableTask.hubName")
        return DEFAULT_HUB_NAME

    def expanded_hub_name(self, text: str, where: str) -> str:
        """``text`` with ``%Setting%`` expanded, as a valid hub name. When a setting's value makes it invalid
        the error names the setting, never its value: it may be a connection string with its key."""
        expanded = self.expand(text, where)
        if expanded == text:
            return validate_hub_name(text)
        try:
            return validate_hub_name(expanded)
        except InvalidSetting:
            raise
        except ValueError:
            names = ", ".join(sorted(set(_REFERENCE.findall(text))))
            raise InvalidSetting(
                f"{where} is {text!r}, and the value of app setting(s) {names} does not make it a valid task hub "
                "name (3-45 ASCII letters and digits, starting with a letter). The value is not shown: settings "
                "may hold secrets.") from None

    def partition_count(self) -> int:
        provider = self.durable_task.get("storageProvider") or {}
        value = provider.get("partitionCount", DEFAULT_PARTITION_COUNT)
        try:
            count = int(value)
        except (TypeError, ValueError):
            raise InvalidSetting(f"host.json extensions.durableTask.storageProvider.partitionCount is {value!r}; "
                                 "it must be a whole number from 1 to 16.") from None
        return validate_partition_count(count)


def load_settings(script_root: str | Path = ".", environ: Mapping[str, str] | None = None) -> AppSettings:
    """Read host.json and local.settings.json of ``script_root`` (both optional)."""
    root = Path(script_root).resolve()
    host = _read_json(root / "host.json")
    local = _read_json(root / "local.settings.json")
    values = local.get("Values") or {}
    if not isinstance(values, dict):
        raise InvalidSetting(f"{root / 'local.settings.json'}: 'Values' must be a JSON object of setting names to strings.")
    return AppSettings(root, {k: str(v) for k, v in values.items()}, host,
                       dict(os.environ) if environ is None else dict(environ))


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise InvalidSetting(f"{path} is not valid JSON: line {e.lineno}, column {e.colno}: {e.msg}.") from e
    if not isinstance(data, dict):
        raise InvalidSetting(f"{path} must contain a JSON object.")
    return data
