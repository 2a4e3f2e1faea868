"""Commands over many instances that only read: get-instances and count."""

from __future__ import annotations

import dataclasses

import click

from .context import Target, hub_options
from .filters import Filters, filter_options
from .output import InstanceList
from .params import bool_option
from ..taskhub.instances import MAX_PAGE  # the most rows Azure Tables returns in one response



@click.command("get-instances")
@filter_options
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
              help="Most instances to list; the continuation token fetches the next ones.")
@click.option("--continuation-token", default=None, metavar="TOKEN",
              help="Token printed by the previous page, to list the next one.")
@click.option("--all", "list_all", is_flag=True, help="List every match, following continuation tokens (--top is ignored).")
@bool_option("--show-input", "Include each instance's input.")
@bool_option("--show-output", "Include each instance's output.")
@hub_options
def get_instances(target: Target, filters: Filters, top: int, continuation_token: str | None, list_all: bool,
                  show_input: bool, show_output: bool) -> None:
    """List instances in id order, filtered by creation time, runtime status, id prefix or orchestrator.

    Lists --top instances and prints the continuation token for the next ones;
    --all follows the tokens to the end, one storage page in memory at a time.
    JSON output is {"instances": [...], "continuationToken": ...}.

    \b
    Examples:
      funcpy durable get-instances
      funcpy durable get-instances --runtime-status "running pending" --top 50
      funcpy durable get-instances --created-after 2024-05-01 --created-before 2024-05-02T12:00:00Z --all
      funcpy durable get-instances --instance-id-prefix order- --name ProcessOrder --all --output json
      funcpy durable get-instances --continuation-token eyJuZXh0UGFydGl0aW9uS2V5Ijo...
    """
    limit = None if list_all else top
    first = filters.query(show_input=show_input, show_output=show_output,
                          page_size=MAX_PAGE if limit is None else min(limit, MAX_PAGE),
                          continuation_token=continuation_token)

    async def work(client) -> None:
        listed, query = 0, first
        with InstanceList(target.output, show_input=show_input, show_output=show_output) as out:
            if limit is None:
                async for page in client.pages(query):  # the next page is fetched while this one is written
                    out.add(page.items)
                out.finish(None)
                return
            while True:
                page = await client.query(query)
                out.add(page.items)
                listed += len(page)
                token = page.continuation_token
                # A page may hold fewer rows than asked for (the service decides); keep going until --top is met.
                if not token or listed >= limit:
                    break
                query = dataclasses.replace(query, page_size=min(limit - listed, MAX_PAGE), continuation_token=token)
            out.finish(token)

    target.run(work)


@click.command("count")
@filter_options
@hub_options
def count(target: Target, filters: Filters) -> None:
    """Count instances per runtime status (reads only the status column of each match).

    \b
    Examples:
      funcpy durable count
      funcpy durable count --created-after 2024-05-01 --name ProcessOrder
      funcpy durable count --output json | jq .Failed
    """
    query = filters.query()
    counts = target.run(lambda client: client.count(query))
    target.output.counts(counts)


COMMANDS = [get_instances, count]
