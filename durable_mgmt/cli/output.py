"""What the commands print: JSON for scripts, rich tables for people.

``--output json`` (the default when stdout is not a terminal) writes one JSON
document to stdout and nothing else, so it can be piped to ``jq``; messages,
prompts and progress go to stderr. ``--output table`` (the default on a
terminal) renders tables and Core Tools' messages. Runtime statuses are
printed by name, times as ISO 8601 UTC.

Long listings stream: ``InstanceList`` writes each storage page as it
arrives, so ``get-instances --all`` holds one page in memory, whatever the
size of the hub.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from enum import Enum
from typing import Any, Iterable, Mapping

from ..models import InstanceStatus, RuntimeStatus, iso_seconds
from ..taskhub.timefmt import to_iso

_STATUS_STYLE = {
    RuntimeStatus.COMPLETED: "green", RuntimeStatus.FAILED: "red", RuntimeStatus.TERMINATED: "yellow",
    RuntimeStatus.CANCELED: "yellow", RuntimeStatus.RUNNING: "cyan", RuntimeStatus.PENDING: "blue",
    RuntimeStatus.SUSPENDED: "magenta", RuntimeStatus.CONTINUED_AS_NEW: "cyan",
}
_CELL_LIMIT = 80  # characters of an input/output shown in a table cell
# Shown in their own columns, or bookkeeping that says nothing to a person reading the history.
_HISTORY_TABLE_HIDDEN = {"EventType", "EventId", "IsPlayed", "Timestamp", "Name", "OrchestrationInstance",
                         "Version", "Tags", "Correlation", "Generation"}


class OutputFormat(str, Enum):
    TABLE = "table"
    JSON = "json"
    JSONL = "jsonl"  # get-instances: one instance per line (other commands print JSON)
    CSV = "csv"      # get-instances: one instance per row (other commands print tables)

    @classmethod
    def choose(cls, explicit: str | None) -> "OutputFormat":
        if explicit:
            return cls(explicit.lower())
        return cls.TABLE if sys.stdout.isatty() else cls.JSON


class Output:
    """The two consoles of a command: stdout for results, stderr for everything else."""

    def __init__(self, fmt: OutputFormat):
        self.format = fmt
        self._out = self._err = None

    @property
    def is_json(self) -> bool:
        return self.format in (OutputFormat.JSON, OutputFormat.JSONL)

    @property
    def console(self):
        if self._out is None:
            from rich.console import Console

            self._out = Console(highlight=False, soft_wrap=False)
        return self._out

    @property
    def err_console(self):
        if self._err is None:
            from rich.console import Console

            self._err = Console(stderr=True, highlight=False)
        return self._err

    # --- building blocks -------------------------------------------------

    def json(self, value: Any) -> None:
        sys.stdout.write(dumps(value, indent=2) + "\n")
        sys.stdout.flush()

    def result(self, text: str, data: Any) -> None:
        """A command's outcome: ``data`` as JSON, or ``text`` for people (printed as is, no markup)."""
        if self.is_json:
            self.json(data)
        else:
            self.console.print(text, markup=False)

    def note(self, text: str) -> None:
        """A remark for the person at the terminal (stderr, so JSON on stdout stays clean); one line, unwrapped.

        Plain text, without rich: every command writes one (the hub it uses), and a JSON run imports no rich.
        """
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def table(self, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
        from rich.table import Table

        table = Table(header_style="bold")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        self.console.print(table)

    # --- one thing each ----------------------------------------------------

    def status(self, status: InstanceStatus, *, show_input: bool, show_output: bool) -> None:
        body = status_json(status, show_input=show_input, show_output=show_output)
        if self.is_json:
            self.json(body)
            return
        rows = [(key, styled_status(status.runtime_status) if key == "runtimeStatus" else _cell(value, limit=None))
                for key, value in body.items()]
        self.table(["Field", "Value"], rows)

    def history(self, events: list[dict[str, Any]]) -> None:
        if self.is_json:
            self.json(events)
            return
        rows = []
        for i, ev in enumerate(events):
            details = {k: v for k, v in ev.items() if k not in _HISTORY_TABLE_HIDDEN}
            rows.append((str(i), ev["EventType"], str(ev.get("EventId", "")), ev["Timestamp"],
                         _cell(ev.get("Name")), _cell(details or None)))
        self.table(["#", "Event", "EventId", "Timestamp (UTC)", "Name", "Details"], rows)

    def counts(self, counts: Mapping[RuntimeStatus, int]) -> None:
        body = {s.value: counts.get(s, 0) for s in RuntimeStatus}
        body["Total"] = sum(counts.values())
        if self.is_json:
            self.json(body)
            return
        rows = [(styled_status(s), f"{counts.get(s, 0):,}") for s in RuntimeStatus if counts.get(s, 0)]
        rows.append(("[bold]Total[/]", f"[bold]{body['Total']:,}[/]"))
        self.table(["Runtime status", "Instances"], rows)


class InstanceList:
    """Writes a list of instances page by page: a streamed JSON object, or one table per page.

    JSON shape: ``{"instances": [status, ...], "continuationToken": "..." | null}``.
    """

    def __init__(self, output: Output, *, show_input: bool, show_output: bool):
        self._output = output
        self._show_input = show_input
        self._show_output = show_output
        self.count = 0
        self._pages = 0

    def __enter__(self) -> "InstanceList":
        return self

    def _open(self) -> None:
        # Written with the first page, not before: a query that fails at once leaves stdout empty.
        if not self._pages:
            sys.stdout.write('{"instances": [')
        self._pages += 1

    def add(self, items: Iterable[InstanceStatus]) -> None:
        if self._output.is_json:
            self._open()
            bodies = [dumps(status_json(s, show_input=self._show_input, show_output=self._show_output)) for s in items]
            if bodies:
                sys.stdout.write(("\n" if not self.count else ",\n") + ",\n".join(bodies))
                self.count += len(bodies)
            return
        items = list(items)
        if not items and self._pages:
            return
        columns = ["Instance ID", "Name", "Status", "Created (UTC)", "Last updated (UTC)"]
        columns += ["Input"] * self._show_input + ["Output"] * self._show_output
        rows = []
        for s in items:
            row = [_cell(s.instance_id, None), _cell(s.name, None), styled_status(s.runtime_status), iso(s.created_time), iso(s.last_updated_time)]
            row += [_cell(s.input)] * self._show_input + [_cell(s.output)] * self._show_output
            rows.append(row)
        self._output.table(columns, rows)
        self.count += len(items)
        self._pages += 1

    def finish(self, continuation_token: str | None) -> None:
        if self._output.is_json:
            if not self._pages:
                self._open()
            sys.stdout.write(("\n" if self.count else "") + "], \"continuationToken\": " + dumps(continuation_token) + "}\n")
            sys.stdout.flush()
            return
        noun = "instance" if self.count == 1 else "instances"
        self._output.console.print(f"{self.count:,} {noun}.")
        if continuation_token:
            self._output.console.print(f"Continuation token for next set of results: '{continuation_token}'")

    def __exit__(self, *exc) -> None:
        if exc[0] is not None and self._output.is_json:
            sys.stdout.flush()  # keep what was written; the error goes to stderr


# --- plain functions -------------------------------------------------------


def status_json(status: InstanceStatus, *, show_input: bool, show_output: bool) -> dict[str, Any]:
    """The HTTP management API's status body, without the values that were not asked for."""
    body = status.to_json()
    if not show_input:
        body.pop("input", None)
    if not show_output:
        body.pop("output", None)
    return body


def event_json(event) -> dict[str, Any]:
    """A stored history event as Core Tools prints it: EventType by name, times as ISO 8601 UTC."""
    out: dict[str, Any] = {"EventType": event.type.name, "EventId": event.event_id, "IsPlayed": event.is_played,
                           "Timestamp": to_iso(event.timestamp)}
    for key, value in event.props.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            value = to_iso(value)
        elif isinstance(value, Enum):
            value = value.name
        out[key] = value
    return out


def iso(value: datetime | None) -> str:
    return iso_seconds(value) if value else ""


def styled_status(status: RuntimeStatus) -> str:
    return f"[{_STATUS_STYLE.get(status, 'white')}]{status.value}[/]"


def dumps(value: Any, indent: int | None = None) -> str:
    if indent is None:
        return _COMPACT.encode(value)  # one encoder for every row of a listing, not one per call
    return json.dumps(value, ensure_ascii=False, indent=indent, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_iso(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_COMPACT = json.JSONEncoder(ensure_ascii=False, default=_default)


def _cell(value: Any, limit: int | None = _CELL_LIMIT) -> str:
    from rich.markup import escape

    if value is None:
        return ""
    text = value if isinstance(value, str) else dumps(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return escape(text)
