"""The errors of the local host, one tree with one root.

    HostError
    ├── AppLoadError        function_app.py cannot be imported or indexed, or a
    │                       function's trigger/bindings are not usable here
    └── HostStartError      the host itself cannot start (port taken, storage down)

Errors of the task hub layer (``durable_mgmt.errors``) pass through unchanged;
``AzuriteError`` (``funchost.azurite``) is raised where Azurite is managed.
"""

from __future__ import annotations

from pathlib import Path


class HostError(Exception):
    """Root of every error raised on purpose by funchost."""


class AppLoadError(HostError):
    """The app cannot be served. ``problems`` holds one line (or short block) per problem.

    ``location`` is ``(file, line)`` when the problem is in a source file
    (a syntax or import error), else None (the problem names its function).
    """

    def __init__(self, problems: list[str], *, app_file: Path | None = None,
                 location: tuple[str, int] | None = None):
        self.problems = list(problems)
        self.app_file = app_file
        self.location = location
        super().__init__("\n".join(self.problems))

    def render(self) -> str:
        """A one-screen report for the terminal."""
        where = f" in {self.app_file}" if self.app_file else ""
        head = f"funcpy start: cannot load the functions{where}:"
        body = "\n\n".join(_indent(p) for p in self.problems[:10])
        more = f"\n\n  ... and {len(self.problems) - 10} more." if len(self.problems) > 10 else ""
        return f"{head}\n\n{body}{more}\n"


class HostStartError(HostError):
    """The host could not start: the message says what to change."""


def _indent(text: str) -> str:
    return "\n".join("  " + line if line else line for line in text.splitlines())
