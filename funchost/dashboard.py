"""The dashboard served by the local host at ``/dashboard/``, beside the app, on the host's own task hub."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from durable_mgmt import InstanceManager
from durable_mgmt.dashboard import Dashboard, DashboardConfig
from durable_mgmt.dashboard.aiohttp_door import mount
from durable_mgmt.dashboard.web import text
from durable_mgmt.transports import StorageTransport

if TYPE_CHECKING:
    from .host import LocalHost

DASHBOARD_PATH = "/dashboard"


def mount_dashboard(app: web.Application, host: "LocalHost") -> None:
    """Add the dashboard to the host's public app (before the HTTP triggers' catch-all route)."""
    # The host's own HttpGuard (durable_mgmt.http_guard) has already checked Host and Origin for every
    # request, with the names --allowed-host adds; a second, narrower check here would refuse those.
    config = DashboardConfig(allowed_hosts=None, webhook_base=host.webhook_base_url)
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
