"""Progress of long operations, on stderr: a rich bar on a terminal, plain lines otherwise.

Purging tens of thousands of instances takes minutes; the person waiting
should see how far it got. When stderr is not a terminal (CI logs, a pipe), a
redrawn bar would be noise, so a line is written at every tenth of the work
instead. Nothing here writes to stdout, which may carry JSON.
"""

from __future__ import annotations

from .output import Output

_PLAIN_STEPS = 10  # lines per run when stderr is not a terminal


class ProgressReporter:
    """``with ProgressReporter(output, "Purging", total=2000, unit="instances") as p: p.update(done, rows=...)``."""

    def __init__(self, output: Output, description: str, *, total: int | None, unit: str):
        self._console = output.err_console
        self._description = description
        self._total = total
        self._unit = unit
        self._progress = None
        self._task = None
        self._next_line = 0.0
        self._last_text = ""

    def __enter__(self) -> "ProgressReporter":
        if self._console.is_terminal:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskProgressColumn,
                                       TextColumn, TimeElapsedColumn, TimeRemainingColumn)

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                                      TimeRemainingColumn(), TextColumn("{task.fields[extra]}"),
                                      console=self._console)
            self._progress.start()
            self._task = self._progress.add_task(self._description, total=self._total, extra="")
        return self

    def update(self, completed: int, extra: str = "", *, total: int | None = None) -> None:
        """``total``: a new total, when it grows as the work goes (a bulk job's scan still finding matches)."""
        if total is not None:
            self._total = total
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, extra=extra, total=self._total)
            return
        if self._total:
            fraction = completed / self._total
            if fraction + 1e-9 < self._next_line and completed < self._total:
                return
            self._next_line = (int(fraction * _PLAIN_STEPS) + 1) / _PLAIN_STEPS
            self._line(f"{self._description}: {completed:,}/{self._total:,} {self._unit} ({fraction:.0%})"
                       + (f", {extra}" if extra else ""))
        else:
            self._line(f"{self._description}: {completed:,} {self._unit}" + (f", {extra}" if extra else ""))

    def _line(self, text: str) -> None:
        if text != self._last_text:
            self._console.print(text, markup=False)
            self._last_text = text

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
