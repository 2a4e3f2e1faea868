"""Listings streamed as JSON Lines or CSV: one instance per line, written as pages arrive.

For exports to other tools: nothing is held beyond the page being written,
and the CSV header is fixed by the options, not by the data.
"""

from __future__ import annotations

import csv
import sys
from typing import Iterable

from ..models import InstanceStatus
from .output import OutputFormat, dumps, iso, status_json

_CSV_COLUMNS = ["instanceId", "name", "runtimeStatus", "createdTime", "lastUpdatedTime", "customStatus"]


class LineWriter:
    def __init__(self, fmt: OutputFormat, *, show_input: bool, show_output: bool):
        self._fmt = fmt
        self._show_input = show_input
        self._show_output = show_output
        self.count = 0
        self._csv = None
        if fmt is OutputFormat.CSV:
            self._csv = csv.writer(sys.stdout, lineterminator="\n")
            self._csv.writerow(_CSV_COLUMNS + ["input"] * show_input + ["output"] * show_output)

    def add(self, items: Iterable[InstanceStatus]) -> None:
        for s in items:
            if self._csv is not None:
                row = [s.instance_id, s.name, s.runtime_status.value, iso(s.created_time), iso(s.last_updated_time),
                       _text(s.custom_status)]
                row += [_text(s.input)] * self._show_input + [_text(s.output)] * self._show_output
                self._csv.writerow(row)
            else:
                sys.stdout.write(dumps(status_json(s, show_input=self._show_input, show_output=self._show_output))
                                 + "\n")
            self.count += 1

    def finish(self, continuation_token: str | None) -> None:
        sys.stdout.flush()
        if continuation_token:
            # Not part of the data: a line of its own on stderr.
            print(f"Continuation token for next set of results: '{continuation_token}'", file=sys.stderr)

    def __enter__(self) -> "LineWriter":
        return self

    def __exit__(self, *exc) -> None:
        sys.stdout.flush()


def _text(value) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else dumps(value)


def instance_writer(output, *, show_input: bool, show_output: bool):
    """The writer for ``output``'s format: lines for jsonl/csv, else the JSON/table ``InstanceList``."""
    from .output import InstanceList

    if output.format in (OutputFormat.JSONL, OutputFormat.CSV):
        return LineWriter(output.format, show_input=show_input, show_output=show_output)
    return InstanceList(output, show_input=show_input, show_output=show_output)
