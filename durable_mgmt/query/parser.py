"""Recursive-descent parser: query text to a typed syntax tree.

    query     := [or] END
    or        := and ("OR" and)*
    and       := unary ("AND" unary)*
    unary     := "NOT" unary | "(" or ")" | predicate
    predicate := FIELD op value
               | FIELD ["NOT"] "IN" "(" value ("," value)* ")"
               | FIELD ["NOT"] ("STARTS_WITH" | "CONTAINS") value
               | FIELD ["NOT"] "BETWEEN" value "AND" value

Keywords and field names are case-insensitive. Relative times (``-2h``) are
resolved against ``now`` once, here, so a query means the same instances for
as long as its parsed form is used (a bulk job stores ``now`` with the text).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import InvalidFilter
from ..models import RuntimeStatus
from ..taskhub.timefmt import MIN_DATETIME, as_utc, parse_iso, to_iso, utcnow
from .ast import FIELD_NAMES, And, Expr, Field, Not, Op, Or, Predicate, allowed_ops
from .errors import QuerySyntaxError
from .lexer import KEYWORDS, RELATIVE, Kind, Token, tokenize

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_COMPARISONS = {o.value: o for o in (Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE)}
_FIELD_LIST = ", ".join(f.value for f in Field)
# Nesting of ( and NOT beyond this is refused at its column: the parser, normalizer and evaluator are
# recursive, and no real filter nests this deep (the same cap as durable_mgmt.limits' JSON nesting).
MAX_DEPTH = 64
# Times storage can hold (Azure Tables: 1601-01-01 to 9999-12-31), with room for the millisecond the
# pushed-down filter widens a time by (taskhub.query_odata._SLACK).
MIN_TIME = MIN_DATETIME
MAX_TIME = datetime(9999, 12, 31, 23, 59, 59, 990000, tzinfo=timezone.utc)


def parse(query: str, *, now: datetime | None = None) -> Expr | None:
    """The syntax tree of ``query`` (None for an empty query: every instance). Raises QuerySyntaxError."""
    if not isinstance(query, str):
        raise InvalidFilter(f"A query is text, not {type(query).__name__}.")
    return _Parser(query, as_utc(now) if now else utcnow()).parse()


class _Parser:
    def __init__(self, query: str, now: datetime):
        self.query = query
        self.now = now
        self.tokens = tokenize(query)
        self.i = 0
        self.depth = 0

    # --- helpers -------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, tok: Token | int, reason: str) -> QuerySyntaxError:
        return QuerySyntaxError(self.query, tok if isinstance(tok, int) else tok.pos, reason)

    def found(self, tok: Token) -> str:
        if tok.kind is Kind.END:
            return "the end of the query"
        return f"{tok.text!r}" if tok.kind is not Kind.STRING else f"string {tok.text!r}"

    def expect(self, kind: Kind, what: str) -> Token:
        if self.tok.kind is not kind:
            raise self.fail(self.tok, f"expected {what}, found {self.found(self.tok)}")
        return self.advance()

    # --- grammar -------------------------------------------------------------

    def parse(self) -> Expr | None:
        if self.tok.kind is Kind.END:
            return None
        expr = self.or_()
        if self.tok.kind is not Kind.END:
            if self.tok.kind is Kind.RPAREN:
                raise self.fail(self.tok, "this ')' closes no '('")
            raise self.fail(self.tok, f"expected AND, OR or the end of the query, found {self.found(self.tok)}")
        return expr

    def or_(self) -> Expr:
        return self.joined("OR", self.and_, Or)

    def and_(self) -> Expr:
        return self.joined("AND", self.unary, And)

    def joined(self, keyword: str, operand, node) -> Expr:
        """``operand (keyword operand)*``: one operand as it is, several as one ``node`` (AND/OR are flat)."""
        items = [operand()]
        while self.tok.is_keyword(keyword):
            self.advance()
            items.append(operand())
        return items[0] if len(items) == 1 else node(tuple(items))

    def unary(self) -> Expr:
        tok = self.tok
        if tok.is_keyword("NOT") or tok.kind is Kind.LPAREN:
            if self.depth >= MAX_DEPTH:
                raise self.fail(tok, f"nested too deeply: at most {MAX_DEPTH} levels of '(' and NOT")
            self.depth += 1
            try:
                return self._nested(tok)
            finally:
                self.depth -= 1
        return self.predicate()

    def _nested(self, tok: Token) -> Expr:
        if tok.is_keyword("NOT"):
            self.advance()
            return Not(self.unary())
        if tok.kind is Kind.LPAREN:
            self.advance()
            if self.tok.kind is Kind.RPAREN:
                raise self.fail(self.tok, "empty parentheses: put a condition inside")
            expr = self.or_()
            if self.tok.kind is not Kind.RPAREN:
                raise self.fail(self.tok, f"expected ')' to close the '(' at column {tok.pos + 1}, "
                                          f"found {self.found(self.tok)}")
            self.advance()
            return expr
        return self.predicate()

    def predicate(self) -> Predicate:
        tok = self.tok
        if tok.kind is not Kind.WORD or tok.text.upper() in KEYWORDS:
            raise self.fail(tok, f"expected a field ({_FIELD_LIST}) or '(' or NOT, found {self.found(tok)}")
        field = FIELD_NAMES.get(tok.text.lower())
        if field is None:
            raise self.fail(tok, f"unknown field {tok.text!r}; fields are {_FIELD_LIST}")
        self.advance()
        op_tok = self.tok
        negated = False
        if op_tok.is_keyword("NOT"):
            self.advance()
            negated = True
            if not self.tok.is_keyword("IN", "STARTS_WITH", "BETWEEN", "CONTAINS"):
                raise self.fail(self.tok, f"expected IN, STARTS_WITH, BETWEEN or CONTAINS after NOT, "
                                          f"found {self.found(self.tok)}")
        op_word = self.tok
        if op_word.kind is Kind.OP and not negated:
            op = _COMPARISONS[op_word.text]
            self.advance()
            values: tuple[Any, ...] = (self.value(field),)
        elif op_word.is_keyword("IN"):
            op = Op.NOT_IN if negated else Op.IN
            self.advance()
            values = self.value_list(field)
        elif op_word.is_keyword("STARTS_WITH", "CONTAINS"):
            op = Op[("NOT_" if negated else "") + op_word.text.upper()]
            self._check_op(field, op, op_tok)
            self.advance()
            values = (self.value(field),)
        elif op_word.is_keyword("BETWEEN"):
            op = Op.NOT_BETWEEN if negated else Op.BETWEEN
            self._check_op(field, op, op_tok)
            self.advance()
            low_tok = self.tok
            low = self.value(field)
            if not self.tok.is_keyword("AND"):
                raise self.fail(self.tok, f"expected AND between the two bounds of BETWEEN, found {self.found(self.tok)}")
            self.advance()
            high = self.value(field)
            if low > high:
                raise self.fail(low_tok, "the lower bound of BETWEEN is greater than the upper bound")
            values = (low, high)
        else:
            raise self.fail(op_word, f"expected an operator (= != < <= > >= IN NOT IN STARTS_WITH BETWEEN "
                                     f"CONTAINS) after {field.value}, found {self.found(op_word)}")
        self._check_op(field, op, op_tok)
        return Predicate(field, op, values, tok.pos)

    def _check_op(self, field: Field, op: Op, at: Token) -> None:
        allowed = allowed_ops(field)
        if op not in allowed:
            names = " ".join(o.value for o in Op if o in allowed)
            raise self.fail(at, f"{field.value} does not take {op.value}; it takes {names}")

    def value_list(self, field: Field) -> tuple[Any, ...]:
        self.expect(Kind.LPAREN, "'(' to open the list of IN")
        values = [self.value(field)]
        while self.tok.kind is Kind.COMMA:
            self.advance()
            values.append(self.value(field))
        if self.tok.kind is not Kind.RPAREN:
            raise self.fail(self.tok, f"expected ',' or ')' in the list of IN, found {self.found(self.tok)}")
        self.advance()
        return tuple(values)

    def value(self, field: Field) -> Any:
        tok = self.tok
        if tok.kind in (Kind.END, Kind.OP, Kind.LPAREN, Kind.RPAREN, Kind.COMMA) or tok.is_keyword(*KEYWORDS):
            raise self.fail(tok, f"expected a value for {field.value}, found {self.found(tok)}")
        self.advance()
        if field is Field.STATUS:
            if tok.kind not in (Kind.STRING, Kind.WORD):
                raise self.fail(tok, f"{tok.text!r} is not a runtime status")
            try:
                return RuntimeStatus.parse(tok.text)
            except InvalidFilter:
                allowed = ", ".join(s.value for s in RuntimeStatus)
                raise self.fail(tok, f"unknown runtime status {tok.text!r}; allowed: {allowed}") from None
        if field.is_time:
            return self.time(tok, field)
        if tok.kind is Kind.RELATIVE:
            raise self.fail(tok, f"{field.value} is text: quote the value ('{tok.text}')")
        return tok.text

    def time(self, tok: Token, field: Field) -> datetime:
        if tok.kind is Kind.RELATIVE:
            m = RELATIVE.fullmatch(tok.text)
            try:
                when = self.now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
            except (OverflowError, ValueError):
                when = None
            if when is None or not MIN_TIME <= when <= MAX_TIME:
                raise self.fail(tok, f"{tok.text!r} reaches before {to_iso(MIN_TIME)}, the earliest time storage "
                                     "keeps; use a smaller relative time")
            return when
        if tok.kind in (Kind.STRING, Kind.BARE):
            try:
                when = parse_iso(tok.text)
            except (ValueError, OverflowError):
                pass
            else:
                if not MIN_TIME <= when <= MAX_TIME:
                    raise self.fail(tok, f"{tok.text!r} is outside the times storage keeps "
                                         f"({to_iso(MIN_TIME)} to {to_iso(MAX_TIME)})")
                return when
        raise self.fail(tok, f"{tok.text!r} is not a time for {field.value}; give ISO 8601 "
                             "(2024-05-01 or 2024-05-01T13:30:00Z) or a relative time (-2h, -7d)")
