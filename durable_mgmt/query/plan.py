"""Splitting a query into what storage evaluates and what this process evaluates.

The query is first put in negation normal form (NOT pushed down to the
predicates, each of which has an exact negation), then its top-level AND
is split: a conjunct whose every predicate the Instances table can evaluate
is pushed down; the rest is filtered here, row by row, as pages stream in.
A row matches when both halves accept it, so the split never changes the
result, only where the work is done.

What the Instances table can evaluate (see ``taskhub.query_odata``):

* ``instanceId`` = != IN NOT IN STARTS_WITH (on the escaped PartitionKey:
  escaping keeps equality and prefixes, but not order, so < > stay here);
* ``name`` every operator but CONTAINS;
* ``status`` every operator it takes;
* ``createdTime``, ``lastUpdatedTime`` every operator they take.

``customStatus``, ``input`` and ``output`` are always filtered here (OData
has no substring test, and large values live in blobs). Time conditions are
pushed down widened by one millisecond and checked exactly here as well:
Azurite compares times at millisecond precision, Azure Tables at 100 ns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterator

from ..models import InstanceStatus, RuntimeStatus
from ..taskhub.timefmt import to_iso, utcnow, as_utc
from .ast import And, Expr, Field, Not, Op, Or, Predicate
from .evaluate import evaluate
from .parser import parse

_PUSHABLE: dict[Field, frozenset[Op]] = {
    Field.INSTANCE_ID: frozenset({Op.EQ, Op.NE, Op.IN, Op.NOT_IN, Op.STARTS_WITH, Op.NOT_STARTS_WITH}),
    Field.NAME: frozenset(Op) - {Op.CONTAINS, Op.NOT_CONTAINS},
    Field.STATUS: frozenset(Op),
    Field.CREATED_TIME: frozenset(Op),
    Field.LAST_UPDATED_TIME: frozenset(Op),
}


def normalize(expr: Expr | None) -> Expr | None:
    """Negation normal form, with nested ANDs and ORs flattened."""
    if expr is None:
        return None
    return _nnf(expr, negate=False)


def _nnf(expr: Expr, negate: bool) -> Expr:
    if isinstance(expr, Predicate):
        return expr.negate() if negate else expr
    if isinstance(expr, Not):
        return _nnf(expr.item, not negate)
    items = tuple(_nnf(e, negate) for e in expr.items)
    conj = isinstance(expr, And) != negate  # De Morgan swaps AND and OR under a NOT
    kind = And if conj else Or
    flat: list[Expr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, kind) else (item,))
    return kind(tuple(flat))


def predicates(expr: Expr | None) -> Iterator[Predicate]:
    if expr is None:
        return
    if isinstance(expr, Predicate):
        yield expr
    elif isinstance(expr, Not):
        yield from predicates(expr.item)
    else:
        for e in expr.items:
            yield from predicates(e)


# Text compared by order (prefixes, < > BETWEEN) is pushed down only when every character of the value
# is below U+D7FF: storage orders by UTF-16 code unit, Python by code point, and the two agree only
# there; below it the prefix's upper bound (last character + 1) is a valid character too.
SAFE_TEXT_LIMIT = 0xD7FF
_ORDERED = frozenset({Op.LT, Op.LE, Op.GT, Op.GE, Op.BETWEEN, Op.NOT_BETWEEN, Op.STARTS_WITH, Op.NOT_STARTS_WITH})

# Azure Table service, "Querying tables and entities": a $filter may hold at most 15 discrete
# comparisons. Every listing adds 2 (the entity exclusion, taskhub.query_odata.EXCLUDE_ENTITIES) and a
# resumable scan 1 more (its cursor); the rest of the query is checked here, row by row.
MAX_FILTER_COMPARISONS = 15
PUSHDOWN_BUDGET = MAX_FILTER_COMPARISONS - 3


def _ordered_text(p: Predicate) -> bool:
    return p.op in _ORDERED and not p.field.is_time and p.field is not Field.STATUS


def _predicate_pushable(p: Predicate) -> bool:
    if p.op not in _PUSHABLE.get(p.field, ()):
        return False
    return not _ordered_text(p) or all(max(map(ord, str(v)), default=0) < SAFE_TEXT_LIMIT for v in p.values)


def is_pushable(expr: Expr) -> bool:
    return all(_predicate_pushable(p) for p in predicates(expr))


def comparisons(expr: Expr) -> int:
    """How many comparisons ``expr`` costs in the pushed-down filter (an upper bound)."""
    total = 0
    for p in predicates(expr):
        per_value = 2 if p.field.is_time or p.op in (Op.STARTS_WITH, Op.NOT_STARTS_WITH) else 1
        if p.field is Field.LAST_UPDATED_TIME:
            per_value *= 2  # also compared on CreatedTime (taskhub.query_odata._clause)
        total += per_value * len(p.values)
    return total


def _needs_client_check(expr: Expr) -> bool:
    # Times are widened by a millisecond when pushed; ordered text is checked here again so that storage
    # order can never add a row (STARTS_WITH is exact here, whatever storage did).
    return any(p.field.is_time or _ordered_text(p) for p in predicates(expr))


def _join(items: list[Expr]) -> Expr | None:
    if not items:
        return None
    return items[0] if len(items) == 1 else And(tuple(items))


@dataclass(frozen=True)
class Query:
    """A parsed filter query and its plan. Build with ``Query.parse(text)``.

    ``now`` is the moment relative times were resolved against: parsing the
    same text with the same ``now`` gives the same query (bulk jobs rely on
    it). ``pushed`` is evaluated by storage, ``client`` here.
    """

    text: str
    now: datetime
    expr: Expr | None
    pushed: Expr | None = field(compare=False)
    client: Expr | None = field(compare=False)

    @classmethod
    def parse(cls, text: str | None, *, now: datetime | None = None) -> "Query":
        text = text or ""
        now = as_utc(now) if now else utcnow()
        expr = normalize(parse(text, now=now))
        conjuncts = list(expr.items) if isinstance(expr, And) else ([expr] if expr is not None else [])
        pushed: list[Expr] = []
        client: list[Expr] = []
        budget = PUSHDOWN_BUDGET
        for c in conjuncts:
            cost = comparisons(c)
            if is_pushable(c) and cost <= budget:
                pushed.append(c)
                budget -= cost
                if _needs_client_check(c):
                    client.append(c)
            else:
                client.append(c)
        return cls(text, now, expr, _join(pushed), _join(client))

    @classmethod
    def of(cls, query: "Query | str | None") -> "Query":
        return query if isinstance(query, Query) else cls.parse(query)

    def matches(self, status: InstanceStatus) -> bool:
        """Whether an instance matches the whole query (both halves), evaluated here."""
        return evaluate(self.expr, status)

    def matches_client_side(self, status: InstanceStatus) -> bool:
        """The half storage cannot evaluate; call it on rows storage already filtered."""
        return evaluate(self.client, status)

    def fields(self, part: str = "all") -> frozenset[Field]:
        expr = {"all": self.expr, "client": self.client, "pushed": self.pushed}[part]
        return frozenset(p.field for p in predicates(expr))


def to_text(expr: Expr | None) -> str:
    """The query language text of a syntax tree, with every time absolute (ISO 8601, UTC)."""
    if expr is None:
        return ""
    if isinstance(expr, Predicate):
        vals = [_literal(v) for v in expr.values]
        op = expr.op
        if op in (Op.IN, Op.NOT_IN):
            return f"{expr.field.value} {op.value} ({', '.join(vals)})"
        if op in (Op.BETWEEN, Op.NOT_BETWEEN):
            return f"{expr.field.value} {op.value} {vals[0]} AND {vals[1]}"
        return f"{expr.field.value} {op.value} {vals[0]}"
    if isinstance(expr, Not):
        return f"NOT ({to_text(expr.item)})"
    word = " AND " if isinstance(expr, And) else " OR "
    return word.join(f"({to_text(e)})" if isinstance(e, (And, Or)) else to_text(e) for e in expr.items)


def _literal(value: object) -> str:
    if isinstance(value, datetime):
        return to_iso(value)
    if isinstance(value, RuntimeStatus):
        return value.value
    return "'" + str(value).replace("'", "''") + "'"
