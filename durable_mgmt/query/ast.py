"""The syntax tree of a filter query: fields, operators, predicates and their combinations.

Values are already typed when a predicate is built: ``RuntimeStatus`` for
``status``, aware UTC ``datetime`` for the time fields, ``str`` for the rest.
Every node keeps the position (0-based offset in the query text) it came
from, so later checks can point at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Union


class Field(str, Enum):
    INSTANCE_ID = "instanceId"
    NAME = "name"
    STATUS = "status"
    CREATED_TIME = "createdTime"
    LAST_UPDATED_TIME = "lastUpdatedTime"
    CUSTOM_STATUS = "customStatus"
    INPUT = "input"
    OUTPUT = "output"

    @property
    def is_time(self) -> bool:
        return self in (Field.CREATED_TIME, Field.LAST_UPDATED_TIME)

    @property
    def is_json_text(self) -> bool:
        """Fields stored as JSON text and compared as text (see ``evaluate.field_text``)."""
        return self in (Field.CUSTOM_STATUS, Field.INPUT, Field.OUTPUT)


# Spellings accepted for each field (case-insensitive).
FIELD_NAMES: dict[str, Field] = {f.value.lower(): f for f in Field}
FIELD_NAMES.update({"runtimestatus": Field.STATUS, "id": Field.INSTANCE_ID})


class Op(str, Enum):
    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    IN = "IN"
    NOT_IN = "NOT IN"
    STARTS_WITH = "STARTS_WITH"
    NOT_STARTS_WITH = "NOT STARTS_WITH"
    BETWEEN = "BETWEEN"
    NOT_BETWEEN = "NOT BETWEEN"
    CONTAINS = "CONTAINS"
    NOT_CONTAINS = "NOT CONTAINS"

    @property
    def negated(self) -> "Op":
        return _NEGATION[self]


_NEGATION = {Op.EQ: Op.NE, Op.NE: Op.EQ, Op.LT: Op.GE, Op.GE: Op.LT, Op.GT: Op.LE, Op.LE: Op.GT,
             Op.IN: Op.NOT_IN, Op.NOT_IN: Op.IN, Op.STARTS_WITH: Op.NOT_STARTS_WITH,
             Op.NOT_STARTS_WITH: Op.STARTS_WITH, Op.BETWEEN: Op.NOT_BETWEEN, Op.NOT_BETWEEN: Op.BETWEEN,
             Op.CONTAINS: Op.NOT_CONTAINS, Op.NOT_CONTAINS: Op.CONTAINS}

# Which operators each kind of field takes. Statuses are a closed set: ordering them means nothing.
STATUS_OPS = frozenset({Op.EQ, Op.NE, Op.IN, Op.NOT_IN})
TIME_OPS = frozenset({Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE, Op.IN, Op.NOT_IN, Op.BETWEEN, Op.NOT_BETWEEN})
TEXT_OPS = frozenset(Op)


def allowed_ops(field: Field) -> frozenset[Op]:
    if field is Field.STATUS:
        return STATUS_OPS
    if field.is_time:
        return TIME_OPS
    return TEXT_OPS


@dataclass(frozen=True)
class Predicate:
    """``field op values``: one value for comparisons, two for BETWEEN, one or more for IN."""

    field: Field
    op: Op
    values: tuple[Any, ...]
    pos: int = 0

    def negate(self) -> "Predicate":
        return Predicate(self.field, self.op.negated, self.values, self.pos)


@dataclass(frozen=True)
class And:
    items: tuple["Expr", ...]


@dataclass(frozen=True)
class Or:
    items: tuple["Expr", ...]


@dataclass(frozen=True)
class Not:
    item: "Expr"


Expr = Union[Predicate, And, Or, Not]
