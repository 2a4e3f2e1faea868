"""What the query-driven commands share: the --query option, its errors with a caret, the manager.

A query error is shown on three lines (message, the query, a caret under
the column where reading failed) rather than the usual one: the caret is
the point of the message.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Awaitable, Callable, TypeVar

import click

from ..manager import InstanceManager
from ..query import Query, QuerySyntaxError
from .context import Target
from .errors import EXIT_USAGE, CliError

T = TypeVar("T")

QUERY_HELP = ("Filter query, e.g. \"status IN (Running, Pending) AND createdTime < -2h AND name STARTS_WITH "
              "'Order'\" (see docs/cli.md, 'Filter language').")


class QueryError(CliError):
    def __init__(self, err: QuerySyntaxError):
        super().__init__(err.reason, EXIT_USAGE)
        self.text = str(err)

    def show(self, file=None) -> None:
        click.echo(f"Error: {self.text}", err=True)


def parse_query(text: str | None) -> Query:
    try:
        return Query.parse(text or "")
    except QuerySyntaxError as err:
        raise QueryError(err) from None


def query_option(func: Callable[..., Any]) -> Callable[..., Any]:
    @click.option("--query", "-q", "query_text", default=None, metavar="QUERY", help=QUERY_HELP)
    @click.option("--explain", is_flag=True, help="Print what storage evaluates and what is filtered here; do nothing else.")
    @functools.wraps(func)
    def wrapper(*args: Any, query_text: str | None, explain: bool, **kwargs: Any) -> Any:
        return func(*args, query=parse_query(query_text) if query_text is not None else None, explain=explain,
                    **kwargs)

    return wrapper


def run_with_manager(target: Target, work: Callable[[InstanceManager], Awaitable[T]]) -> T:
    """Run ``work(manager)`` on a fresh event loop, over the task hub in storage."""

    async def main() -> T:
        async with target.manager() as manager:
            return await work(manager)

    return asyncio.run(main())


def print_plan(target: Target, query: Query) -> None:
    """``--explain``: what storage evaluates and what is filtered here (no storage call)."""
    plan = InstanceManager.explain(query)
    out = target.output
    if out.is_json:
        out.json(plan.to_json())
        return
    out.console.print(
        f"Query:            {plan.query or '(none: every orchestration instance)'}\n"
        f"Pushed down:      {plan.pushed_down or '(nothing)'}\n"
        f"Storage filter:   {plan.storage_filter}\n"
        f"Filtered here:    {plan.filtered_here or '(nothing)'}\n"
        f"Columns read:     {', '.join(plan.columns)}", markup=False)
