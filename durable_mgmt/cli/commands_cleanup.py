"""Commands that delete: purge-history, purge-instance and delete-task-hub.

Bulk deletions count what they will delete, ask before doing it (``--yes``
skips the question; an empty or closed stdin is a no), show progress on
stderr, and end with the counts of what was deleted.
"""

from __future__ import annotations

import click

from ..models import PurgeProgress, PurgeResult, purgeable_statuses
from .context import Target, hub_options
from .errors import CliError
from .filters import Filters, filter_options
from .params import id_option
from .progress import ProgressReporter


def yes_option(func):
    return click.option("--yes", "-y", "assume_yes", is_flag=True,
                        help="Do not ask for confirmation (needed when no one can answer, e.g. in scripts).")(func)


def confirm(target: Target, question: str, *, assume_yes: bool, refusal: str) -> None:
    """Ask on stderr; anything but yes (including end of input) refuses with exit code 1."""
    if assume_yes:
        return
    try:
        answer = click.confirm(question, default=False, err=True)
    except click.Abort:
        answer = False
    if not answer:
        raise CliError(f"{refusal}: not confirmed. Pass --yes to go ahead without the question.")


@click.command("purge-history")
@filter_options
@yes_option
@hub_options
def purge_history(target: Target, filters: Filters, assume_yes: bool) -> None:
    """Delete finished instances and their history, by creation time, status, id prefix or name.

    Only Completed, Failed, Terminated and Canceled instances are purged
    (all four unless --runtime-status narrows them). Counts the matches and
    asks first; shows progress while deleting; prints the instances and
    history rows deleted.

    \b
    Examples:
      funcpy durable purge-history --created-before 2024-05-01
      funcpy durable purge-history --runtime-status "completed terminated" --created-before 2024-05-01 --yes
      funcpy durable purge-history --instance-id-prefix test- --name LoadTest --yes --output json
    """
    statuses = purgeable_statuses(filters.statuses)
    query = filters.query(statuses=statuses)
    out = target.output

    async def work(manager):
        counts = await manager.count_by_status(query)
        total = sum(counts.values())
        if total == 0:
            return None
        confirm(target, f"Purge {total:,} finished instances of task hub '{target.hub_name}' ({filters.describe()}) "
                        "with their history? This cannot be undone.", assume_yes=assume_yes, refusal="Nothing purged")
        with ProgressReporter(out, "Purging", total=total, unit="instances") as progress:
            def report(p: PurgeProgress) -> None:
                progress.update(p.instances_deleted, extra=f"{p.rows_deleted:,} history rows")

            return await manager.purge(query=query, progress=report)

    result = target.run(work)
    if result is None:
        text, result = f"No finished instances match ({filters.describe()}); nothing purged.", PurgeResult(0)
    else:
        text = (f"Purged orchestration history of finished instances ({filters.describe()}).\n"
                f"Instances deleted: {result.instances_deleted:,}\nRows deleted: {result.rows_deleted:,}")
        text += f"\nLarge values deleted: {result.blobs_deleted:,}" if result.blobs_deleted else ""
    out.result(text, {"instancesDeleted": result.instances_deleted, "rowsDeleted": result.rows_deleted,
                      "blobsDeleted": result.blobs_deleted})


@click.command("purge-instance")
@id_option()
@hub_options
def purge_instance(target: Target, instance_id: str) -> None:
    """Delete one finished instance and its history.

    \b
    Examples:
      funcpy durable purge-instance --id order-42
    """
    result = target.run(lambda manager: manager.purge_instance(instance_id))
    target.output.result(
        f"Purged instance '{instance_id}': {result.rows_deleted:,} history rows deleted.",
        {"instanceId": instance_id, "instancesDeleted": result.instances_deleted, "rowsDeleted": result.rows_deleted,
         "blobsDeleted": result.blobs_deleted})


@click.command("delete-task-hub")
@yes_option
@hub_options
def delete_task_hub(target: Target, assume_yes: bool) -> None:
    """Delete the task hub: every instance, its tables, queues and containers.

    Counts the instances and asks first. Hosts running on the hub must be
    stopped; a host started later creates the hub again, empty.

    \b
    Examples:
      funcpy durable delete-task-hub --task-hub-name OldHub
      funcpy durable delete-task-hub --task-hub-name OldHub --yes --output json
    """
    out = target.output

    async def work(manager) -> int:
        with ProgressReporter(out, "Counting instances", total=None, unit="instances"):
            total = sum((await manager.count_by_status()).values())
        confirm(target, f"Delete task hub '{target.hub_name}' with its {total:,} instances, tables, queues and "
                        "containers? This cannot be undone.", assume_yes=assume_yes, refusal="Task hub not deleted")
        with ProgressReporter(out, f"Deleting task hub '{target.hub_name}'", total=1, unit="step") as progress:
            await manager.delete_hub()
            progress.update(1)
        return total

    total = target.run(work)
    out.result(f"Task hub '{target.hub_name}' successfully deleted ({total:,} instances).",
               {"taskHub": target.hub_name, "deleted": True, "instancesDeleted": total})


COMMANDS = [purge_history, purge_instance, delete_task_hub]
