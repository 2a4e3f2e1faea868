"""What a dashboard is allowed to do and who may use it; one object per door."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..errors import InvalidSetting

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

# App settings read by the Blueprint (documented in the README).
READ_ONLY_SETTING = "DURABLE_DASHBOARD_READ_ONLY"
ALLOWED_USERS_SETTING = "DURABLE_DASHBOARD_ALLOWED_USERS"
ALLOWED_ROLES_SETTING = "DURABLE_DASHBOARD_ALLOWED_ROLES"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class DashboardConfig:
    """``allowed_hosts``: the Host names accepted (None: not checked, for an app behind App Service, whose
    front end already routes by host). ``allowed_users`` / ``allowed_roles``: when either is non-empty, a
    request must carry an App Service authentication principal whose name or one of whose roles is listed.
    ``webhook_base``: where the management API is served, for the management URLs shown on instance pages.
    """

    read_only: bool = False
    allowed_hosts: frozenset[str] | None = LOOPBACK_NAMES
    allowed_users: frozenset[str] = field(default_factory=frozenset)
    allowed_roles: frozenset[str] = field(default_factory=frozenset)
    webhook_base: str | None = None
    page_size: int = 50
    bulk_rate_limit: float = 10.0  # default actions per second of a bulk run; the form may lower or raise it
    title: str = "Durable Functions"

    @property
    def requires_principal(self) -> bool:
        return bool(self.allowed_users or self.allowed_roles)

    @classmethod
    def from_settings(cls, get: "Mapping[str, str] | None" = None, **overrides) -> "DashboardConfig":
        """From app settings (the environment in a deployed app): read-only and the allow-lists."""
        import os

        values = os.environ if get is None else get
        read_only = parse_flag(values.get(READ_ONLY_SETTING, ""), READ_ONLY_SETTING)
        users = _names(values.get(ALLOWED_USERS_SETTING, ""))
        roles = _names(values.get(ALLOWED_ROLES_SETTING, ""))
        base = dict(read_only=read_only, allowed_users=users, allowed_roles=roles, allowed_hosts=None)
        base.update(overrides)
        return cls(**base)


def parse_flag(value: str, name: str) -> bool:
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidSetting(f"App setting {name}={value!r} is not a yes/no value: use true or false.")


def _names(value: str) -> frozenset[str]:
    # Names compared case-insensitively, as App Service user names (e-mail addresses) are.
    return frozenset(n.strip().lower() for n in value.replace(";", ",").split(",") if n.strip())
