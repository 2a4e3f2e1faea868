"""The error of a query that cannot be read: where, and why."""

from __future__ import annotations

from ..errors import InvalidFilter


class QuerySyntaxError(InvalidFilter):
    """A filter query that does not parse, or names a field, operator or value that is not allowed.

    ``position`` is the 0-based offset in ``query`` where reading failed,
    ``column`` the same counted from 1; the message shows the query with a
    caret under that column.
    """

    def __init__(self, query: str, position: int, reason: str):
        self.query = query
        self.position = position
        self.column = position + 1
        self.reason = reason
        one_line = query.replace("\n", " ").replace("\t", " ")
        super().__init__(f"Invalid query at column {self.column}: {reason}.\n  {one_line}\n  {' ' * position}^")
