"""The dashboard served by the local host at ``/dashboard/``, beside the app, on the host's own task hub."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from durable_mgmt import InstanceManager
from durable_mgmt.dashboard import Dashboard, DashboardConfig
from durable_mgmt.dashboard.aiohttp_door import mount
from durable_mgmt.dashboard.config import LOOPBACK_NAMES
from durable_mgmt.dashboard.web import text
from durable_mgmt.transports import StorageTransport

if TYPE_CHECKING:
    from .host import LocalHost

DASHBOARD_PATH = "/dashboard"
_WILDCARDS = {"0.0.0.0", "::", ""}


def mount_dashboard(app: web.Application, host: "LocalHost") -> None:
    """Add the dashboard to the host's public app (before the HTTP triggers' catch-all route)."""
    bind = host.bind_address
    names = LOOPBACK_NAMES | ({bind.lower()} if bind not in _WILDCARDS else set())
    # Bound to every interface, other names may reach it: Host cannot be pinned, keys must protect it.
    config = DashboardConfig(allowed_hosts=None if bind in _WILDCARDS else frozenset(names),
                             webhook_base=host.webhook_base_url)
    manager = InstanceManager(StorageTransport(host.hub, webhook_base=host.webhook_base_url))

    async def get_manager() -> InstanceManager:
        return manager

    def guard(request: web.Request):
        # With --enable-auth the dashboard is an admin tool: the master key, as for the /admin endpoints.
        if host.admits_admin(request):
            return None
        return text(401, "With --enable-auth the dashboard needs the host's master key: add ?code=<master key>.")

    mount(app, Dashboard(get_manager, config), DASHBOARD_PATH, guard=guard)


def dashboard_url(host: "LocalHost") -> str:
    return f"{host.base_url}{DASHBOARD_PATH}/"
