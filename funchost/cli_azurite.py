"""``funcpy azurite``: run only the storage emulator, as ``funcpy start`` would, with no app.

For working on a local task hub while no host runs (``funcpy durable
delete-task-hub``, ``purge-history``...): same ports, same ``.azurite/``
folder as ``make run``, so the hub is the one the app uses.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from durable_mgmt.errors import DurableError
from durable_mgmt.settings import load_settings

from .azurite import Azurite, AzuriteError
from .cli_start import AZURITE_FOLDER


@click.command("azurite")
@click.option("--script-root", default=".", show_default=True,
              type=click.Path(file_okay=False, dir_okay=True, path_type=Path),
              help="Folder whose local.settings.json names the storage and whose .azurite/ keeps the data.")
def azurite(script_root: Path) -> None:
    """Run Azurite for the app's development storage until Ctrl-C (data in <script-root>/.azurite).

    \b
    Example (host stopped):
      funcpy azurite &
      funcpy durable delete-task-hub --yes
    """
    root = script_root.resolve()
    try:
        settings = load_settings(root)
        account = settings.storage_account(settings.durable_connection_setting())
    except DurableError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(2)
    if not account.is_development:
        click.echo("Error: the app's storage is not the development storage (UseDevelopmentStorage=true); "
                   "there is no emulator to run.", err=True)
        sys.exit(2)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        server = Azurite.ensure(account, location=root / AZURITE_FOLDER, cwd=root)
    except AzuriteError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)
    if not server.owned:
        click.echo(f"Azurite is already listening on {server.host} (ports {server.ports}); nothing to do.")
        return
    click.echo(f"Azurite listening on {server.host}: blob {server.ports['blob']}, queue {server.ports['queue']}, "
               f"table {server.ports['table']}; data in {root / AZURITE_FOLDER}. Ctrl-C stops it.")
    try:
        while not stop.wait(1.0) and server.process and server.process.poll() is None:
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        click.echo("Stopped Azurite.")
