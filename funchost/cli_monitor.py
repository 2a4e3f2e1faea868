"""``funcpy monitor``: the web dashboard alone, on any task hub (no app needed)."""

from __future__ import annotations

import asyncio
import signal
import sys

import click

from durable_mgmt.cli.context import Target, hub_options
from durable_mgmt.dashboard.config import LOOPBACK_NAMES, DashboardConfig
from durable_mgmt.errors import DurableError


@click.command("monitor")
@hub_options
@click.option("--port", default=7072, show_default=True, type=click.IntRange(0, 65535),
              help="Port to serve the dashboard on (0: any free port).")
@click.option("--host", "bind_host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The dashboard has no login of its own: keep it on loopback.")
@click.option("--read-only", is_flag=True, help="Show instances; refuse every action.")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="Another Host name to answer to (besides localhost, 127.0.0.1 and ::1); repeatable.")
@click.option("--webhook-base", metavar="URL", default=None,
              help="Where the app's management API is served (e.g. http://localhost:7071/runtime/webhooks/"
                   "durabletask), to show each instance's management URLs.")
def monitor(target: Target, port: int, bind_host: str, read_only: bool, allow_hosts: tuple[str, ...],
            webhook_base: str | None) -> None:
    """Serve the web dashboard for the task hub: list, overview, instance pages and actions."""
    config = DashboardConfig(read_only=read_only,
                             allowed_hosts=LOOPBACK_NAMES | {h.lower() for h in allow_hosts}
                             | ({bind_host.lower()} if bind_host not in ("0.0.0.0", "::") else set()))
    try:
        account = target.settings.storage_account(target.connection_setting)
        sys.exit(asyncio.run(_serve(account, target.hub_name, config, bind_host, port, webhook_base)))
    except DurableError as e:
        print(f"funcpy monitor: {e}", file=sys.stderr)
        sys.exit(1)


async def _serve(account, hub_name: str, config: DashboardConfig, bind_host: str, port: int,
                 webhook_base: str | None) -> int:
    from durable_mgmt.dashboard.standalone import serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve(account, hub_name, config, host=bind_host, port=port, webhook_base=webhook_base) as server:
        mode = "read-only" if config.read_only else "actions allowed"
        print(f"Dashboard for task hub {hub_name!r} ({account.describe()}), {mode}: {server.url}", flush=True)
        print("Press Ctrl+C to stop.", flush=True)
        await stop.wait()
    return 0
