"""App settings and host.json, resolved the way Azure Functions resolves them.

* Setting values: the process environment first, then ``local.settings.json``
  ``Values`` (Core Tools copies those into the environment, without
  overriding). Names match in any case, as ``IConfiguration`` matches them.
* host.json keys match in any case too (``HubName``, ``PartitionCount``...):
  the Functions host reads host.json through ``IConfiguration``, whose keys
  are case-insensitive. ``host_json`` is a case-insensitive view.
* Layout: ``"version": "2.0"`` puts the durable settings under
  ``extensions.durableTask`` (partition count and connection under
  ``storageProvider``); anything else is the 1.x layout, a top-level
  ``durableTask`` with ``partitionCount`` and
  ``azureStorageConnectionStringName`` directly in it (Core Tools'
  ``DurableManager.TrySetConnectionStringAndTaskHubName`` decides the same way).
* Task hub name: an explicit name, else host.json ``hubName`` with
  ``%Setting%`` references expanded (the extension's
  ``DurableTaskOptions.ResolveAppSettingOptions``), else the extension's
  default: for 2.x and later the app's ``WEBSITE_SITE_NAME`` sanitized
  (``AzureStorageOptions.IsSanitizedHubName``), else ``TestHubName``
  (``DurableTaskOptions.DefaultHubName``); for the 1.x layout
  ``DurableFunctionsHub`` (the 1.x ``DurableTaskOptions.DefaultHubName``).
  ``hub_choice`` also says where the name came from, for people.
* Storage connection: ``AzureWebJobs{name}`` first, then ``{name}``, as the
  extension's ``ConfigurationExtensions.GetWebJobsConnectionSection`` looks.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from .errors import InvalidSetting
from .taskhub.names import DEFAULT_HUB_NAME, DEFAULT_PARTITION_COUNT, validate_hub_name, validate_partition_count
from .taskhub.storage import StorageAccount

DEFAULT_CONNECTION_SETTING = "AzureWebJobsStorage"
# The extension's name for that default connection in management URLs (connection=Storage).
DEFAULT_CONNECTION_NAME = "Storage"
# The extension's defaults when host.json names no hub (DurableTaskOptions.DefaultHubName, 2.x and later;
# the site name comes from the environment, as in DurableTaskOptions.HubName's getter).
EXTENSION_DEFAULT_HUB_NAME = "TestHubName"
V1_DEFAULT_HUB_NAME = DEFAULT_HUB_NAME  # "DurableFunctionsHub": 1.x's DurableTaskOptions.DefaultHubName
SITE_NAME_SETTING = "WEBSITE_SITE_NAME"
_REFERENCE = re.compile(r"%([^%]+)%")
# AzureStorageOptions: MaxTaskHubNameSize, MinTaskHubNameSize, TaskHubPadding, and the name used when nothing is left.
_SANITIZED_MAX, _SANITIZED_MIN, _SANITIZED_PADDING, _SANITIZED_EMPTY = 45, 3, "Hub", "DefaultTaskHub"
# char.IsLetterOrDigit: the Unicode letter categories and decimal digits.
_LETTER_OR_DIGIT = {"Lu", "Ll", "Lt", "Lm", "Lo", "Nd"}


class ConfigSection(Mapping[str, Any]):
    """A JSON object read as ``IConfiguration`` reads it: keys match in any case (the last spelling wins)."""

    def __init__(self, data: Mapping[str, Any] | None = None):
        self._data = dict(data or {})
        self._keys = {str(k).lower(): k for k in self._data}

    def __getitem__(self, key: str) -> Any:
        value = self._data[self._keys[key.lower()]]
        return ConfigSection(value) if isinstance(value, dict) else value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def section(self, key: str) -> "ConfigSection":
        """The object at ``key``, or an empty section when it is missing or not an object."""
        value = self.get(key)
        return value if isinstance(value, ConfigSection) else ConfigSection()


@dataclass(frozen=True)
class HubChoice:
    """The task hub a command or host works on, and where its name came from (for people, never parsed)."""

    name: str
    source: str

    def describe(self) -> str:
        return f"Task hub '{self.name}' ({self.source})"


@dataclass(frozen=True)
class AppSettings:
    script_root: Path
    local_values: Mapping[str, str] = field(default_factory=dict)
    host_json: Mapping[str, Any] = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def __post_init__(self) -> None:
        if not isinstance(self.host_json, ConfigSection):
            object.__setattr__(self, "host_json", ConfigSection(self.host_json))
        # Lower-cased indexes: setting names match in any case, an exact match first.
        object.__setattr__(self, "_env_keys", {k.lower(): k for k in self.environ})
        object.__setattr__(self, "_local_keys", {k.lower(): k for k in self.local_values})

    def get(self, name: str, default: str | None = None) -> str | None:
        """A setting's value: environment first, then local.settings.json Values; names in any case."""
        found = self._lookup(name)
        return default if found is None else found[0]

    def origin(self, name: str) -> str | None:
        """Where setting ``name`` is set: 'the environment', 'local.settings.json', or None."""
        found = self._lookup(name)
        return None if found is None else found[1]

    def _lookup(self, name: str) -> tuple[str, str] | None:
        env_key = name if name in self.environ else self._env_keys.get(name.lower())  # type: ignore[attr-defined]
        if env_key is not None and self.environ[env_key] != "":
            return self.environ[env_key], "the environment"
        # Core Tools (StartHostAction: a local setting is skipped only when the variable is non-empty) lets
        # local.settings.json fill a variable that is set but empty.
        key = self._local_keys.get(name.lower())  # type: ignore[attr-defined]
        if key is not None and self.local_values[key] is not None:
            return str(self.local_values[key]), "local.settings.json"
        if env_key is not None:
            return "", "the environment"
        return None

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

    def _references(self, text: str) -> str:
        """', app setting X from the environment' for each ``%X%`` of ``text`` (for HubChoice.source)."""
        return "".join(f", app setting {m.group(1)} from {self.origin(m.group(1))}" for m in _REFERENCE.finditer(text))

    def connection_string(self, setting_name: str = DEFAULT_CONNECTION_SETTING) -> str:
        # The extension looks for AzureWebJobs{name} first, then {name} (GetWebJobsConnectionSection).
        value = self.get("AzureWebJobs" + setting_name)
        if value is None or not value.strip():
            value = self.get(setting_name)
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

    # --- host.json -----------------------------------------------------------

    @property
    def is_v1_layout(self) -> bool:
        """True unless host.json says ``"version": "2.0"`` (then durable settings sit under ``extensions``)."""
        return str(self.host_json.get("version", "")).strip() != "2.0"

    @property
    def durable_task_path(self) -> str:
        """Where the durable settings are in host.json, as people write it in messages."""
        return "durableTask" if self.is_v1_layout else "extensions.durableTask"

    @property
    def durable_task(self) -> ConfigSection:
        section = self.host_json if self.is_v1_layout else self.host_json.section("extensions")
        return section.section("durableTask")  # type: ignore[union-attr]

    @property
    def storage_provider(self) -> ConfigSection:
        """The provider's settings: ``storageProvider`` (2.0 layout), or ``durableTask`` itself (1.x layout)."""
        return self.durable_task if self.is_v1_layout else self.durable_task.section("storageProvider")

    def durable_connection_setting(self, explicit: str | None = None) -> str:
        """The app setting holding the task hub's storage: ``explicit``, else host.json's
        ``storageProvider.connectionName`` (or ``connectionStringName``, or 1.x's
        ``azureStorageConnectionStringName``), else AzureWebJobsStorage."""
        if explicit:
            return explicit
        for section in (self.storage_provider, self.durable_task):
            for key in ("connectionName", "connectionStringName", "azureStorageConnectionStringName"):
                if section.get(key):
                    return str(section[key])
        return DEFAULT_CONNECTION_SETTING

    def hub_choice(self, explicit: str | None = None) -> HubChoice:
        """The task hub name and where it came from; InvalidSetting/InvalidHubName when it is not usable."""
        if explicit:
            return HubChoice(self.expanded_hub_name(explicit, "--task-hub-name"),
                             "--task-hub-name" + self._references(explicit))
        where = f"host.json {self.durable_task_path}.hubName"
        configured = self.durable_task.get("hubName")
        if configured:
            raw = str(configured)
            name = self.expand(raw, where)
            source = where + (f" {raw!r}" if raw != name else "") + self._references(raw)
            # (An empty WEBSITE_SITE_NAME is no default name to compare with: a hub name given here is used.)
            default = None if self.get(SITE_NAME_SETTING) == "" else self._default_hub()
            if default and not self.is_v1_layout and name.lower() == default.unsanitized.lower():
                # The extension treats a name equal to its default as the default, and sanitizes it
                # (DurableTaskOptions.IsDefaultHubName, AzureStorageDurabilityProviderFactory).
                if name != default.name:
                    source += f", sanitized to '{default.name}' as the extension does for its default name"
                name = default.name
            return HubChoice(self._valid_hub_name(name, raw, where), source)
        default = self._default_hub()
        return HubChoice(validate_hub_name(default.name), default.source)

    def hub_name(self, explicit: str | None = None) -> str:
        return self.hub_choice(explicit).name

    def _default_hub(self) -> "_DefaultHub":
        if self.is_v1_layout:
            return _DefaultHub(V1_DEFAULT_HUB_NAME, V1_DEFAULT_HUB_NAME,
                               "the Durable Functions 1.x default: host.json has no \"version\": \"2.0\" and no "
                               "durableTask.hubName")
        site = self.get(SITE_NAME_SETTING)
        where = f"host.json {self.durable_task_path}.hubName is not set"
        if site == "":
            # DurableTaskOptions.HubName is WEBSITE_SITE_NAME ?? "TestHubName": only an unset variable falls
            # back, an empty one is an empty hub name, which DurableTaskOptions.Validate refuses.
            raise InvalidSetting(
                f"App setting {SITE_NAME_SETTING} is set but empty (in {self.origin(SITE_NAME_SETTING)}), and "
                f"{where}: the Durable Functions extension then has an empty task hub name and refuses to start "
                "(\"A non-empty HubName configuration is required.\"). Set the hub name in host.json "
                f"{self.durable_task_path}.hubName, give {SITE_NAME_SETTING} a value, or remove it (the default "
                f"hub is then '{EXTENSION_DEFAULT_HUB_NAME}').")
        if site:
            name = sanitize_hub_name(site)
            shown = f"'{site}'" + (f" sanitized to '{name}'" if name != site else "")
            return _DefaultHub(name, site, f"the extension's default: {where}, so app setting {SITE_NAME_SETTING} "
                                           f"{shown}, from {self.origin(SITE_NAME_SETTING)}")
        return _DefaultHub(EXTENSION_DEFAULT_HUB_NAME, EXTENSION_DEFAULT_HUB_NAME,
                           f"the extension's default: {where} and no {SITE_NAME_SETTING} app setting")

    def expanded_hub_name(self, text: str, where: str) -> str:
        """``text`` with ``%Setting%`` expanded, as a valid hub name. When a setting's value makes it invalid
        the error names the setting, never its value: it may be a connection string with its key."""
        return self._valid_hub_name(self.expand(text, where), text, where)

    def _valid_hub_name(self, expanded: str, text: str, where: str) -> str:
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

    @property
    def partition_count_configured(self) -> bool:
        """Whether host.json sets ``partitionCount`` (else the default 4 applies): a configured count is what
        the app's workers route by (AzureStorageOrchestrationService.GetControlQueueAsync)."""
        return self.storage_provider.get("partitionCount") is not None

    def partition_count(self) -> int:
        where = f"host.json {self.durable_task_path}{'' if self.is_v1_layout else '.storageProvider'}.partitionCount"
        value = self.storage_provider.get("partitionCount", DEFAULT_PARTITION_COUNT)
        try:
            if isinstance(value, bool):
                raise ValueError
            count = int(value)
        except (TypeError, ValueError):
            raise InvalidSetting(f"{where} is {value!r}; it must be a whole number from 1 to 16.") from None
        return validate_partition_count(count)


@dataclass(frozen=True)
class _DefaultHub:
    name: str          # after sanitizing
    unsanitized: str   # what the extension compares a configured name with (IsDefaultHubName)
    source: str


def sanitize_hub_name(text: str) -> str:
    """The extension's ``AzureStorageOptions.IsSanitizedHubName``: the default hub name made valid.

    Keeps letters and digits only; prefixes ``t`` when that starts with a
    digit; keeps the first 45 characters; pads with ``Hub`` below 3; and
    uses ``DefaultTaskHub`` when nothing is left (e.g. site ``my-app`` gives
    ``myapp``, ``1st-app`` gives ``t1stapp``, ``a-b`` gives ``abHub``).
    """
    kept = [c for c in text if unicodedata.category(c) in _LETTER_OR_DIGIT]
    if not kept:
        return _SANITIZED_EMPTY
    if unicodedata.category(kept[0]) == "Nd":
        kept.insert(0, "t")
    name = "".join(kept[:_SANITIZED_MAX])
    return name + _SANITIZED_PADDING if len(name) < _SANITIZED_MIN else name


def load_settings(script_root: str | Path = ".", environ: Mapping[str, str] | None = None) -> AppSettings:
    """Read host.json and local.settings.json of ``script_root`` (both optional)."""
    root = Path(script_root).resolve()
    host = _read_json(root / "host.json")
    local = _read_json(root / "local.settings.json")
    values = ConfigSection(local).get("Values") or {}
    if not isinstance(values, Mapping):
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
