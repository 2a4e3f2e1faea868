"""``funcpy start``: serve a Python v2 Functions app on this machine, like ``func start``.

Order of work: read the settings and load the app first, so a broken
function_app.py fails in a second with its file and line (exit code 1),
before any emulator starts; then find or start Azurite when the storage is
the development storage; then run the host until Ctrl-C or SIGTERM, and stop
everything this command started, in order.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import click

from durable_mgmt.errors import DurableError
from durable_mgmt.settings import load_settings

from .azurite import Azurite, AzuriteError
from .config import HostConfig
from .diagnostics import install_stack_dump
from .errors import AppLoadError, HostError
from .host import SCRIPT_FILE_SETTING, LocalHost, plan_triggers
from .loader import load_app

log = logging.getLogger("funchost")
AZURITE_FOLDER = ".azurite"


@click.command("start")
@click.option("--port", default=7071, show_default=True, type=click.IntRange(0, 65535),
              help="Port for HTTP functions and the management API (0: any free port).")
@click.option("--script-root", default=".", show_default=True,
              type=click.Path(file_okay=False, dir_okay=True, path_type=Path),
              help="Folder with function_app.py, host.json and local.settings.json.")
@click.option("--enable-auth", is_flag=True,
              help="Honour auth levels: function/admin HTTP functions and the management API need keys.")
@click.option("--host", "bind_host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="A host name requests may be addressed to, besides localhost and IP addresses (repeatable; "
                   "'*' for any). Guards against DNS rebinding.")
@click.option("--cors", default="", metavar="ORIGINS",
              help="Comma-separated origins whose web pages may call this host (like func start --cors; "
                   "also read from local.settings.json Host.CORS).")
@click.option("--public-url", default=None, metavar="URL",
              help="The address links handed out start with (default: the listening address).")
def start(port: int, script_root: Path, enable_auth: bool, bind_host: str, allowed_hosts: tuple[str, ...],
          cors: str, public_url: str | None) -> None:
    """Serve the Functions app in --script-root: HTTP, queue and timer triggers, Durable Functions."""
    sys.exit(run(script_root, port=port, enable_auth=enable_auth, bind_host=bind_host,
                 allowed_hosts=allowed_hosts, cors=[o for o in cors.split(",") if o.strip()], public_url=public_url))


def run(script_root: Path, *, port: int = 7071, enable_auth: bool = False, bind_host: str = "127.0.0.1",
        allowed_hosts: tuple[str, ...] = (), cors: list[str] | None = None, public_url: str | None = None) -> int:
    """Run the host until stopped; returns the process exit code."""
    root = script_root.resolve()
    try:
        settings = load_settings(root)
        config = HostConfig.from_settings(settings)
        _configure_logging(config.log_level)
        index = load_app(root, settings.get(SCRIPT_FILE_SETTING), strict=False)
        plan = plan_triggers(index, settings)
        account = settings.storage_account(settings.durable_connection_setting())
    except AppLoadError as e:
        _say(e.render(), err=True)
        return 1
    except DurableError as e:
        _say(f"funcpy start: {e}", err=True)
        return 1

    azurite = None
    try:
        if account.is_development:
            azurite = Azurite.ensure(account, location=root / AZURITE_FOLDER, cwd=root)
            if azurite.owned:
                _say(f"Started Azurite on {azurite.host} (data in {root / AZURITE_FOLDER}); "
                           "it stops with this host.")
            else:
                _say(f"Using the Azurite already listening on {azurite.host}.")
        host = LocalHost(root, port=port, host=bind_host, enable_auth=enable_auth, index=index, plan=plan,
                         allowed_hosts=allowed_hosts, cors=cors or (), public_url=public_url)
        return asyncio.run(_serve(host))
    except AppLoadError as e:
        _say(e.render(), err=True)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        _say("Stopped without waiting for running functions.", err=True)
        return 130
    except (HostError, DurableError, AzuriteError) as e:
        _say(f"funcpy start: {e}", err=True)
        return 1
    finally:
        if azurite is not None and azurite.owned:
            azurite.stop()
            _say("Stopped Azurite.")


async def _serve(host: LocalHost) -> int:
    from .banner import render

    stop = asyncio.Event()
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():  # a second Ctrl-C: stop waiting for in-flight work
            main.cancel()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    install_stack_dump(loop)  # kill -USR1: what every task awaits, should a stop ever hang
    try:
        await host.start()
        _say(render(host, show_keys=sys.stdout.isatty()))
        await stop.wait()
        _say("Stopping: waiting for running functions to finish (Ctrl+C again to abandon them)...")
    finally:
        await host.stop()
    return 0


def _say(text: str, err: bool = False) -> None:
    # print(), not click.echo: the same sys.stdout object as the log handler, so lines keep their order.
    print(text, file=sys.stderr if err else sys.stdout, flush=True)


def _configure_logging(level: int) -> None:
    logging.basicConfig(level=level, format="[%(asctime)s] %(message)s", datefmt="%Y-%m-%dT%H:%M:%S",
                        stream=sys.stdout)
    logging.getLogger().setLevel(level)
    # The storage SDKs log every request at INFO; keep them for real problems.
    for noisy in ("azure", "aiohttp.access", "urllib3"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


if __name__ == "__main__":
    start()
