"""The page tokens of ``InstanceManager.find_page``: a position tied to the query it pages.

A token is ``fp1.<digest>.<now>.<position>``:

* ``digest``: 16 hex digits of the SHA-256 of the query with every time
  resolved (``to_text`` of its syntax tree), so two texts that mean the same
  share tokens, and a token of another query is refused instead of silently
  continuing at that query's position;
* ``now``: the moment the query's relative times (``-2h``) were resolved, in
  microseconds since the epoch. A query given as text on a later page is parsed
  at that moment, so "the last 24 hours" means the same hours on every page;
* ``position``: where the transport continues (an escaped instance key over
  storage, the management API's continuation token over the binding).

Tokens are client text (a dashboard URL): anything else is refused with
``InvalidInput`` saying to start from the first page.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .errors import InvalidInput
from .query import Query, to_text

_VERSION = "fp1"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_RESTART = "start from the first page (after=None; in the dashboard, open the list again from its first page)"


def digest(query: Query) -> str:
    return hashlib.sha256(to_text(query.expr).encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True)
class PageToken:
    digest: str
    now: datetime
    position: str

    @classmethod
    def of(cls, query: Query, position: str) -> "PageToken":
        return cls(digest(query), query.now, position)

    def __str__(self) -> str:
        micros = (self.now - _EPOCH) // timedelta(microseconds=1)
        return f"{_VERSION}.{self.digest}.{micros}.{self.position}"

    @classmethod
    def parse(cls, text: str) -> "PageToken":
        """A token as ``__str__`` wrote it; InvalidInput for anything else."""
        parts = text.split(".", 3)
        try:
            if len(parts) != 4 or parts[0] != _VERSION or len(parts[1]) != 16 or not parts[3]:
                raise ValueError
            int(parts[1], 16)
            if not parts[2].isascii() or not parts[2].isdigit() or len(parts[2]) > 17:  # up to year 5138
                raise ValueError
            now = _EPOCH + timedelta(microseconds=int(parts[2]))
        except (ValueError, OverflowError):
            raise InvalidInput(f"Page token {text[:40]!r} is not one find_page returned: pass back exactly the "
                               f"token of the previous page, or {_RESTART}.") from None
        return cls(parts[1], now, parts[3])

    def check(self, query: Query) -> None:
        """Refuse a token of another query (InvalidInput): continuing there would page some other list."""
        if digest(query) != self.digest:
            raise InvalidInput(
                "This page token belongs to another query (the query changed since the previous page, or a "
                "query with relative times such as -2h was parsed again at another moment): "
                f"{_RESTART}. To keep relative times fixed across pages, give find_page the query as text "
                "(each page parses it at the token's moment).")

    def resolve(self, query: Query | str | None) -> Query:
        """The query of this page: text is parsed at the token's moment; a Query must be the token's."""
        q = query if isinstance(query, Query) else Query.parse(query, now=self.now)
        self.check(q)
        return q
