"""``funcpy``: the command-line entry point.

    funcpy start      serve a Python v2 Functions app locally (like `func start`)
    funcpy durable    manage task hubs and instances (like `func durable`)
    funcpy queue      send a message to a Storage queue, or peek at one
    funcpy azurite    run only the local storage emulator (no app)
    funcpy monitor    the web dashboard for a task hub
"""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="durable-mgmt", prog_name="funcpy")
def main() -> None:
    """Run and manage Azure Functions Python apps with Durable Functions, locally or on Azure Storage."""


def _register() -> None:
    from funchost.cli_azurite import azurite
    from funchost.cli_monitor import monitor
    from funchost.cli_queue import queue
    from funchost.cli_start import start
    from durable_mgmt.cli import durable

    main.add_command(start)
    main.add_command(durable)
    main.add_command(queue)
    main.add_command(azurite)
    main.add_command(monitor)


_register()

if __name__ == "__main__":
    main()
