"""The pushed-down half of a filter query as an OData filter on the Instances table.

Every value goes in as a parameter of ``odata.Filter`` (the SDK quotes it),
never as text. Instance ids are compared in their escaped form, because the
PartitionKey holds ``escape_key(id)``: escaping is a prefix code, so equality
and prefixes survive it (ordering does not, which is why ``query.plan`` keeps
< > on ids client-side). Entity rows (``@name@key``) are always excluded, as
in every instance listing.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from ..models import RuntimeStatus
from ..query.ast import And, Expr, Field, Not, Op, Or
from .names import escape_key
from .odata import Filter
from .timefmt import MIN_DATETIME

COLUMNS: dict[Field, str] = {
    Field.INSTANCE_ID: "PartitionKey", Field.NAME: "Name", Field.STATUS: "RuntimeStatus",
    Field.CREATED_TIME: "CreatedTime", Field.LAST_UPDATED_TIME: "LastUpdatedTime",
    Field.CUSTOM_STATUS: "CustomStatus", Field.INPUT: "Input", Field.OUTPUT: "Output",
}
EXCLUDE_ENTITIES = "(PartitionKey lt '@' or PartitionKey ge 'A')"

_COMPARE = {Op.EQ: "eq", Op.NE: "ne", Op.LT: "lt", Op.LE: "le", Op.GT: "gt", Op.GE: "ge"}


def instances_query_filter(pushed: Expr | None, *, after_key: str | None = None) -> Filter:
    """The OData filter for ``pushed`` (None: every orchestration); ``after_key`` starts after that
    PartitionKey (a resumable scan's cursor)."""
    f = Filter()
    if pushed is not None:
        f.raw(_clause(pushed, f))
    if after_key is not None:
        f.raw(f"PartitionKey gt {f.param(after_key)}")
    f.raw(EXCLUDE_ENTITIES)
    return f


def _stored(field: Field, value: Any) -> Any:
    if field is Field.INSTANCE_ID:
        return escape_key(value)
    if isinstance(value, RuntimeStatus):
        return value.value
    return value


def _upper(prefix: str) -> str:
    """The least string above every string starting with ``prefix``.

    Storage orders strings by UTF-16 code unit; ``query.plan`` pushes a prefix down only when every
    character is below U+D7FF (``SAFE_TEXT_LIMIT``), where that order is code point order and the
    last character plus one is still a valid character (never a lone surrogate)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _clause(expr: Expr, f: Filter) -> str:
    # Spaces around every parenthesis and parameter: the SDK finds @parameters by splitting on single spaces.
    if isinstance(expr, And):
        return "( " + " and ".join(_clause(e, f) for e in expr.items) + " )"
    if isinstance(expr, Or):
        return "( " + " or ".join(_clause(e, f) for e in expr.items) + " )"
    if isinstance(expr, Not):
        return "not ( " + _clause(expr.item, f) + " )"
    col = COLUMNS[expr.field]
    vals = [_stored(expr.field, v) for v in expr.values]
    op = expr.op
    if expr.field is Field.LAST_UPDATED_TIME:
        # A row without the column shows (and the client-side half judges) it as its CreatedTime; storage
        # drops a row from any comparison on a column it lacks, so the same condition on CreatedTime is
        # added: still a superset, which the client-side half checks again.
        return f"( {_time_clause(col, op, vals, f)} or {_time_clause(COLUMNS[Field.CREATED_TIME], op, vals, f)} )"
    if expr.field.is_time:
        return _time_clause(col, op, vals, f)
    if op in _COMPARE:
        return f"{col} {_COMPARE[op]} {f.param(vals[0])}"
    if op is Op.IN:
        return "( " + " or ".join(f"{col} eq {f.param(v)}" for v in vals) + " )"
    if op is Op.NOT_IN:
        return "( " + " and ".join(f"{col} ne {f.param(v)}" for v in vals) + " )"
    if op in (Op.STARTS_WITH, Op.NOT_STARTS_WITH):
        prefix = vals[0]
        if op is Op.STARTS_WITH:
            if not prefix:
                return f"{col} ge {f.param('')}"
            return f"( {col} ge {f.param(prefix)} and {col} lt {f.param(_upper(prefix))} )"
        if not prefix:
            return f"{col} lt {f.param('')}"  # nothing: every text starts with ''
        upper = _upper(prefix)
        return f"( {col} lt {f.param(prefix)} or {col} ge {f.param(upper)} )"
    if op is Op.BETWEEN:
        return f"( {col} ge {f.param(vals[0])} and {col} le {f.param(vals[1])} )"
    if op is Op.NOT_BETWEEN:
        return f"( {col} lt {f.param(vals[0])} or {col} gt {f.param(vals[1])} )"
    raise ValueError(f"{expr.field.value} {op.value} cannot be evaluated by storage")


_SLACK = timedelta(milliseconds=1)
_MAX = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc)


def _time_clause(col: str, op: Op, vals: list, f: Filter) -> str:
    """A time condition widened by a millisecond each way: a superset of the exact one, which the
    client-side half of the plan checks again (Azurite truncates times to milliseconds)."""
    lo = [max(v - _SLACK, MIN_DATETIME) for v in vals]
    hi = [min(v + _SLACK, _MAX) for v in vals]
    if op in (Op.LT, Op.LE):
        return f"{col} le {f.param(hi[0])}"
    if op in (Op.GT, Op.GE):
        return f"{col} ge {f.param(lo[0])}"
    if op is Op.EQ:
        return f"( {col} ge {f.param(lo[0])} and {col} le {f.param(hi[0])} )"
    if op is Op.IN:
        return "( " + " or ".join(f"( {col} ge {f.param(a)} and {col} le {f.param(b)} )" for a, b in zip(lo, hi)) + " )"
    if op is Op.BETWEEN:
        return f"( {col} ge {f.param(lo[0])} and {col} le {f.param(hi[1])} )"
    if op is Op.NOT_BETWEEN:
        return f"( {col} le {f.param(hi[0])} or {col} ge {f.param(lo[1])} )"
    # != and NOT IN exclude single instants: widened they would exclude rows that match; keep every row
    # that has the column and let the client-side half decide.
    return f"{col} ge {f.param(datetime(1601, 1, 1, tzinfo=timezone.utc))}"


def render(f: Filter) -> str:
    """The filter as storage receives it (values quoted as the SDK quotes them), for ``explain``."""
    from .timefmt import to_iso

    if not f.text:
        return ""
    out = []
    for word in f.text.split(" "):
        if word.startswith("@") and word[1:] in f.parameters:
            v = f.parameters[word[1:]]
            if hasattr(v, "isoformat"):
                out.append(f"datetime'{to_iso(v)}'")
            else:
                out.append("'" + str(v).replace("'", "''") + "'")
        else:
            out.append(word)
    return " ".join(out)
