"""``funcpy durable …``: the Core Tools ``func durable`` commands, and what they lack.

Operators manage task hubs from a terminal, often with no app running,
against local Azurite or a production storage account. Every command works on
the task hub in storage through ``InstanceManager`` (over its storage
transport: no host needed), as the app and the management webhooks do;
settings are resolved as the Functions host resolves them
(``durable_mgmt.settings``).

Modules, one job each: ``context`` (which hub, common options), ``filters``
and ``params`` (option values), ``output`` and ``progress`` (what is
printed), ``errors`` (one-line errors and exit codes), and the commands in
``commands_instance``, ``commands_query`` and ``commands_cleanup``.
"""

from __future__ import annotations

import click

from . import commands_bulk, commands_cleanup, commands_instance, commands_query
from .errors import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, DurableGroup

__all__ = ["durable", "EXIT_OK", "EXIT_REFUSED", "EXIT_USAGE"]


@click.group("durable", cls=DurableGroup, context_settings={"help_option_names": ["-h", "--help"],
                                                           "max_content_width": 110})
def durable() -> None:
    """Manage Durable Functions task hubs and orchestration instances in Azure Storage.

    The `func durable` commands of Core Tools, with the same option names,
    plus filters by id prefix and name, counts, suspend/resume, purge of one
    instance, table or JSON output, and progress on long purges. No host needs
    to be running; a host must run for queued requests (start, terminate,
    events, rewind) to take effect.

    The connection string is read from the app setting named by
    --connection-string-setting (default AzureWebJobsStorage): the environment
    first, then local.settings.json Values in --script-root (default: the
    current folder). The task hub is --task-hub-name, else host.json's
    hubName, else the extension's default (WEBSITE_SITE_NAME sanitized, else
    TestHubName; DurableFunctionsHub for a 1.x host.json). Every command says
    on stderr which hub it uses and why.

    Exit codes: 0 done, 1 not found or refused, 2 usage error.

    \b
    Examples:
      funcpy durable get-instances --runtime-status failed --top 20
      funcpy durable count --task-hub-name ProdHub
      funcpy durable purge-history --created-before 2024-05-01 --yes
    """


for _command in (commands_instance.COMMANDS + commands_query.COMMANDS + commands_cleanup.COMMANDS
                 + commands_bulk.COMMANDS):
    durable.add_command(_command)
