"""Evaluation of a syntax tree against one instance, in Python: the client-side half of a plan.

JSON-text fields (``customStatus``, ``input``, ``output``) are compared as
text: a JSON string as its content, any other value as its compact JSON, and
no value as the empty string (so ``customStatus = ''`` finds instances that
never set one). A missing time matches nothing.
"""

from __future__ import annotations

import json
from typing import Any

from ..models import InstanceStatus
from .ast import And, Expr, Field, Not, Op, Or, Predicate


def field_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def field_value(field: Field, status: InstanceStatus) -> Any:
    if field is Field.INSTANCE_ID:
        return status.instance_id
    if field is Field.NAME:
        return status.name or ""
    if field is Field.STATUS:
        return status.runtime_status
    if field is Field.CREATED_TIME:
        return status.created_time
    if field is Field.LAST_UPDATED_TIME:
        return status.last_updated_time
    if field is Field.CUSTOM_STATUS:
        return field_text(status.custom_status)
    if field is Field.INPUT:
        return field_text(status.input)
    return field_text(status.output)


def evaluate(expr: Expr | None, status: InstanceStatus) -> bool:
    """Whether ``status`` matches ``expr`` (None matches everything)."""
    if expr is None:
        return True
    if isinstance(expr, Predicate):
        return _predicate(expr, field_value(expr.field, status))
    if isinstance(expr, And):
        return all(evaluate(e, status) for e in expr.items)
    if isinstance(expr, Or):
        return any(evaluate(e, status) for e in expr.items)
    if isinstance(expr, Not):
        return not evaluate(expr.item, status)
    raise TypeError(f"not a query node: {expr!r}")


def _predicate(p: Predicate, v: Any) -> bool:
    if v is None:
        return False
    vals = p.values
    op = p.op
    if op is Op.EQ:
        return v == vals[0]
    if op is Op.NE:
        return v != vals[0]
    if op is Op.LT:
        return v < vals[0]
    if op is Op.LE:
        return v <= vals[0]
    if op is Op.GT:
        return v > vals[0]
    if op is Op.GE:
        return v >= vals[0]
    if op is Op.IN:
        return v in vals
    if op is Op.NOT_IN:
        return v not in vals
    if op is Op.STARTS_WITH:
        return v.startswith(vals[0])
    if op is Op.NOT_STARTS_WITH:
        return not v.startswith(vals[0])
    if op is Op.BETWEEN:
        return vals[0] <= v <= vals[1]
    if op is Op.NOT_BETWEEN:
        return not vals[0] <= v <= vals[1]
    if op is Op.CONTAINS:
        return vals[0] in v
    if op is Op.NOT_CONTAINS:
        return vals[0] not in v
    raise TypeError(f"unknown operator {op!r}")
