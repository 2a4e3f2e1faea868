"""The filter language shared by listing, counting, bulk jobs, exports and the dashboard.

    status IN (Running, Pending) AND createdTime < -2h AND name STARTS_WITH 'Order'

``Query.parse(text)`` reads a query (``QuerySyntaxError``, an
``InvalidFilter``, points at the column where reading failed) and splits it
into what the task hub's Instances table evaluates and what is filtered
here (``plan``). Pure: no I/O; the task hub layer turns the pushed-down half
into an OData filter (``durable_mgmt.taskhub.query_odata``).
"""

from .ast import And, Expr, Field, Not, Op, Or, Predicate
from .errors import QuerySyntaxError
from .evaluate import evaluate, field_text
from .parser import parse
from .plan import Query, normalize, to_text

__all__ = ["Query", "QuerySyntaxError", "parse", "normalize", "evaluate", "field_text", "to_text",
           "Expr", "Field", "Op", "Predicate", "And", "Or", "Not"]
