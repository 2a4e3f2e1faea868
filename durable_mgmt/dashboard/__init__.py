"""A web dashboard for Durable Functions instances: see, filter, inspect and act.

One implementation (``Dashboard``: framework-free handlers and Jinja2 templates,
htmx and Chart.js vendored as static files) served three ways:

* ``funcpy monitor``: standalone, on any task hub (``StandaloneServer``);
* ``funcpy start``: beside the app, at ``/dashboard/`` (``mount`` on an aiohttp app);
* in a deployed Function App: ``app.register_functions(dashboard_blueprint())``.
"""

from .config import DashboardConfig
from .core import Dashboard
from .web import Request, Response

__all__ = ["Dashboard", "DashboardConfig", "Request", "Response", "dashboard_blueprint", "StandaloneServer", "mount"]


def __getattr__(name: str):
    # The doors import their frameworks only when asked for: a deployed app never loads the aiohttp server.
    if name == "dashboard_blueprint":
        from .blueprint import dashboard_blueprint

        return dashboard_blueprint
    if name == "StandaloneServer":
        from .standalone import StandaloneServer

        return StandaloneServer
    if name == "mount":
        from .aiohttp_door import mount

        return mount
    raise AttributeError(name)
