"""Tokens of a filter query, each with the offset where it starts.

Strings are quoted with ' or " (the quote doubled inside: 'it''s'); a bare
word starting with a digit (``2024-05-01T10:00:00Z``) and a relative time
(``-2h``) are tokens of their own, so times need no quotes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from .errors import QuerySyntaxError


class Kind(Enum):
    WORD = "word"          # field names, keywords, bare values
    STRING = "string"      # quoted text
    BARE = "value"         # a bare value starting with a digit: a time or a number
    RELATIVE = "relative time"
    OP = "operator"
    LPAREN = "'('"
    RPAREN = "')'"
    COMMA = "','"
    END = "end of query"


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str      # the value (a string's content, unquoted)
    pos: int

    def is_keyword(self, *words: str) -> bool:
        return self.kind is Kind.WORD and self.text.upper() in words


KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "STARTS_WITH", "BETWEEN", "CONTAINS"})

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE = re.compile(r"[0-9][0-9A-Za-z:.+\-_]*")
RELATIVE = re.compile(r"-([0-9]+)([smhdw])")
_SURROGATE = re.compile("[\ud800-\udfff]")
_OPS = ("!=", "<>", "<=", ">=", "=", "<", ">")


def tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    # A lone surrogate (from argv's surrogateescape or a JSON "\\ud800") cannot be sent to storage
    # as UTF-8 nor compared consistently: refuse it where it stands, before anything acts.
    if (bad := _SURROGATE.search(query)) is not None:
        raise QuerySyntaxError(query, bad.start(), f"invalid character U+{ord(bad.group()):04X} (a lone UTF-16 "
                                                   "surrogate); the query must be valid Unicode text")
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
        elif ch == "(":
            tokens.append(Token(Kind.LPAREN, ch, i)); i += 1
        elif ch == ")":
            tokens.append(Token(Kind.RPAREN, ch, i)); i += 1
        elif ch == ",":
            tokens.append(Token(Kind.COMMA, ch, i)); i += 1
        elif ch in "'\"":
            text, end = _string(query, i)
            tokens.append(Token(Kind.STRING, text, i)); i = end
        elif ch == "-":
            m = RELATIVE.match(query, i)
            if not m or (m.end() < n and (query[m.end()].isalnum() or query[m.end()] == "_")):
                raise QuerySyntaxError(query, i, "a relative time is a minus sign, a whole number and one unit "
                                                 "of s, m, h, d or w (e.g. -2h, -7d)")
            tokens.append(Token(Kind.RELATIVE, m.group(0), i)); i = m.end()
        elif (op := next((o for o in _OPS if query.startswith(o, i)), None)) is not None:
            tokens.append(Token(Kind.OP, "!=" if op == "<>" else op, i)); i += len(op)
        elif m := _WORD.match(query, i):
            tokens.append(Token(Kind.WORD, m.group(0), i)); i = m.end()
        elif m := _BARE.match(query, i):
            tokens.append(Token(Kind.BARE, m.group(0), i)); i = m.end()
        else:
            raise QuerySyntaxError(query, i, f"unexpected character {ch!r}")
    tokens.append(Token(Kind.END, "", n))
    return tokens


def _string(query: str, start: int) -> tuple[str, int]:
    quote = query[start]
    out: list[str] = []
    i = start + 1
    while i < len(query):
        ch = query[i]
        if ch == quote:
            if query.startswith(quote * 2, i):
                out.append(quote)
                i += 2
                continue
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise QuerySyntaxError(query, start, f"string opened here is never closed (add the closing {quote})")
