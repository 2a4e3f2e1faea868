"""Commands over many instances that only read: get-instances and count."""

from __future__ import annotations

import dataclasses

import click

from .context import Target, hub_options
from .errors import CliError, EXIT_USAGE
from .filters import Filters, filter_options
from .params import bool_option
from .query_support import print_plan, query_option, run_with_manager
from .streams import instance_writer
from ..jobs.models import CountRequest
from ..query import Field, Query
from ..taskhub.instances import MAX_PAGE  # the most rows Azure Tables returns in one response


def _query_alone(filters: Filters, query: Query | None, other: str | None = None) -> None:
    if query is not None and (filters.describe() != "no filter" or other):
        raise CliError(f"--query replaces the filter options{' and ' + other if other else ''}: put every "
                       "condition in the query (e.g. \"status = Failed AND createdTime > 2024-05-01\").", EXIT_USAGE)



@click.command("get-instances")
@filter_options
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
              help="Most instances to list; the continuation token fetches the next ones.")
@click.option("--continuation-token", default=None, metavar="TOKEN",
              help="Token printed by the previous page, to list the next one.")
@click.option("--all", "list_all", is_flag=True, help="List every match, following continuation tokens (--top is ignored).")
@bool_option("--show-input", "Include each instance's input.")
@bool_option("--show-output", "Include each instance's output.")
@query_option
@hub_options
def get_instances(target: Target, filters: Filters, top: int, continuation_token: str | None, list_all: bool,
                  show_input: bool, show_output: bool, query: Query | None, explain: bool) -> None:
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
      funcpy durable get-instances -q "status = Failed AND createdTime > -1d" --all --output jsonl
      funcpy durable get-instances -q "customStatus CONTAINS 'waiting'" --top 100 --output csv > waiting.csv
    """
    limit = None if list_all else top
    _query_alone(filters, query, "--continuation-token" if continuation_token else None)
    if explain:
        print_plan(target, query or Query.parse(""))
        return
    if query is not None:
        fields = [Field.CUSTOM_STATUS] + [Field.INPUT] * show_input + [Field.OUTPUT] * show_output

        async def by_query(manager) -> None:
            with instance_writer(target.output, show_input=show_input, show_output=show_output) as out:
                batch, listed = [], 0
                async for status in manager.find(query, fields=fields):
                    batch.append(status)
                    listed += 1
                    if len(batch) >= MAX_PAGE or (limit is not None and listed >= limit):
                        out.add(batch)
                        batch = []
                    if limit is not None and listed >= limit:
                        break
                out.add(batch)
                out.finish(None)

        run_with_manager(target, by_query)
        return
    first = filters.query(show_input=show_input, show_output=show_output,
                          page_size=MAX_PAGE if limit is None else min(limit, MAX_PAGE),
                          continuation_token=continuation_token)

    async def work(manager) -> None:
        listed, query = 0, first
        with instance_writer(target.output, show_input=show_input, show_output=show_output) as out:
            if limit is None:
                async for page in manager.pages(query):  # the next page is fetched while this one is written
                    out.add(page.items)
                out.finish(None)
                return
            while True:
                page = await manager.page(query)
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
@query_option
@click.option("--group-by", type=click.Choice(["status", "name", "customStatus"], case_sensitive=False),
              default=None, help="Count per runtime status, orchestrator name or custom status.")
@hub_options
def count(target: Target, filters: Filters, query: Query | None, explain: bool, group_by: str | None) -> None:
    """Count instances per runtime status (reads only the status column of each match).

    With --query or --group-by, counts what the query matches, grouped by
    status, name or customStatus (JSON: {"total", "groupBy", "groups"}),
    reading only the columns the query and the grouping need.

    \b
    Examples:
      funcpy durable count
      funcpy durable count --created-after 2024-05-01 --name ProcessOrder
      funcpy durable count --output json | jq .Failed
      funcpy durable count -q "createdTime > -1d" --group-by name
      funcpy durable count -q "status = Running AND createdTime < -2h" --group-by customStatus --output json
    """
    _query_alone(filters, query)
    if explain:
        print_plan(target, query or Query.parse(""))
        return
    if query is not None or group_by:
        request = CountRequest(query, group_by or "status")
        result = run_with_manager(target, lambda manager: manager.count(request))
        out = target.output
        if out.is_json:
            out.json(result.to_json())
            return
        out.table([result.group_by.value, "Instances"],
                  [(k if k != "" else "(none)", f"{n:,}") for k, n in result.groups.items()]
                  + [("Total", f"{result.total:,}")])
        return
    query = filters.query()
    counts = target.run(lambda manager: manager.count_by_status(query))
    target.output.counts(counts)


COMMANDS = [get_instances, count]
