"""The filter language, pure: parsing, error columns, normalization, the pushdown split, the OData text."""

from datetime import datetime, timedelta, timezone

import pytest

from durable_mgmt import InvalidFilter, QuerySyntaxError, RuntimeStatus
from durable_mgmt.query import And, Field, Op, Or, Predicate, Query, parse, to_text
from durable_mgmt.taskhub.query_odata import instances_query_filter, render

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def q(text: str) -> Query:
    return Query.parse(text, now=NOW)


# (query, 1-based column of the error, words the message must contain)
MALFORMED = [
    ("status =", 9, "expected a value for status"),
    ("status", 7, "expected an operator"),
    ("= Running", 1, "expected a field"),
    ("foo = 1", 1, "unknown field 'foo'"),
    ("name = 'abc", 8, "never closed"),
    ('name = "abc', 8, "never closed"),
    ("status < Running", 8, "status does not take <"),
    ("status STARTS_WITH 'Run'", 8, "status does not take STARTS_WITH"),
    ("createdTime CONTAINS '2024'", 13, "createdTime does not take CONTAINS"),
    ("createdTime > yesterday", 15, "not a time"),
    ("createdTime > '2024-13-01'", 15, "not a time"),
    ("createdTime > -2x", 15, "relative time"),
    ("createdTime > -h", 15, "relative time"),
    ("createdTime > -2hours", 15, "relative time"),
    ("(status = Running", 18, "expected ')' to close the '(' at column 1"),
    ("status = Running)", 17, "closes no '('"),
    ("()", 2, "empty parentheses"),
    ("status = Running AND", 21, "expected a field"),
    ("status = Running OR OR name = 'x'", 21, "expected a field"),
    ("status = Running name = 'x'", 18, "expected AND, OR or the end"),
    ("name IN ('a', 'b'", 18, "expected ',' or ')'"),
    ("name IN 'a'", 9, "expected '(' to open the list of IN"),
    ("name IN ()", 10, "expected a value for name"),
    ("name IN ('a',)", 14, "expected a value for name"),
    ("name NOT = 'a'", 10, "expected IN, STARTS_WITH, BETWEEN or CONTAINS after NOT"),
    ("status = Runing", 10, "unknown runtime status 'Runing'"),
    ("status IN (Running, Done)", 21, "unknown runtime status 'Done'"),
    ("createdTime BETWEEN -1h AND -2h", 21, "lower bound of BETWEEN is greater"),
    ("createdTime BETWEEN -1h -2h", 25, "expected AND between the two bounds"),
    ("name = AND", 8, "expected a value for name"),
    ("name = -2h", 8, "name is text: quote the value"),
    ("name == 'a'", 7, "expected a value for name"),
    ("name = 'a' ; drop", 12, "unexpected character ';'"),
    ("status = 'Running' AND NOT", 27, "expected a field"),
    ("NOT", 4, "expected a field"),
    ("instanceId STARTS_WITH", 23, "expected a value for instanceId"),
    ("name = 'a' AND (status = Running OR (name = 'b')", 49, "expected ')' to close the '(' at column 16"),
    ("name ~ 'a'", 6, "unexpected character '~'"),
]


@pytest.mark.parametrize("text,column,words", MALFORMED)
def test_malformed_queries_fail_at_their_column(text, column, words):
    with pytest.raises(QuerySyntaxError) as info:
        q(text)
    err = info.value
    assert isinstance(err, InvalidFilter)
    assert err.column == column, (text, str(err))
    assert err.position == column - 1
    assert words in str(err)
    # The message shows the query and a caret under the failing column.
    lines = str(err).splitlines()
    assert lines[0].startswith(f"Invalid query at column {column}:")
    assert lines[1] == "  " + text
    assert lines[2] == "  " + " " * (column - 1) + "^"


def test_a_query_that_is_not_text_is_refused():
    with pytest.raises(InvalidFilter, match="A query is text, not int"):
        parse(42)


def test_fields_keywords_and_statuses_are_case_insensitive_and_values_typed():
    expr = q("Status in (running, 'PENDING') and NAME starts_with 'Ord' and createdtime >= 2024-04-30T00:00:00Z").expr
    assert expr == And((
        Predicate(Field.STATUS, Op.IN, (RuntimeStatus.RUNNING, RuntimeStatus.PENDING), 0),
        Predicate(Field.NAME, Op.STARTS_WITH, ("Ord",), 35),
        Predicate(Field.CREATED_TIME, Op.GE, (datetime(2024, 4, 30, tzinfo=timezone.utc),), 62),
    ))


@pytest.mark.parametrize("text,delta", [("-30s", timedelta(seconds=30)), ("-5m", timedelta(minutes=5)),
                                        ("-2h", timedelta(hours=2)), ("-7d", timedelta(days=7)),
                                        ("-1w", timedelta(weeks=1))])
def test_relative_times_are_resolved_against_now(text, delta):
    (pred,) = [q(f"lastUpdatedTime < {text}").expr]
    assert pred.values == (NOW - delta,)


def test_strings_double_their_quote_and_keep_everything_else():
    assert q("name = 'it''s'").expr.values == ("it's",)
    assert q('customStatus = "say ""hi"""').expr.values == ('say "hi"',)
    assert q("input CONTAINS 'a AND b OR (c)'").expr.values == ("a AND b OR (c)",)
    assert q("name = ''").expr.values == ("",)


def test_not_is_pushed_to_the_predicates_with_de_morgan():
    expr = q("NOT (status = Running OR name STARTS_WITH 'a') AND NOT NOT createdTime > -1h").expr
    assert to_text(expr) == ("status != Running AND name NOT STARTS_WITH 'a' AND createdTime > 2024-05-01T11:00:00Z")
    expr = q("NOT (status IN (Failed) AND createdTime BETWEEN -2d AND -1d)").expr
    assert isinstance(expr, Or)
    assert to_text(expr) == ("status NOT IN (Failed) OR createdTime NOT BETWEEN 2024-04-29T12:00:00Z "
                             "AND 2024-04-30T12:00:00Z")


def test_the_plan_pushes_down_what_the_table_evaluates_and_keeps_the_rest():
    query = q("status = Running AND customStatus CONTAINS 'wait' AND instanceId > 'm' AND "
              "(name = 'a' OR input = 'x') AND instanceId STARTS_WITH 'ord-'")
    assert to_text(query.pushed) == "status = Running AND instanceId STARTS_WITH 'ord-'"
    assert to_text(query.client) == ("customStatus CONTAINS 'wait' AND instanceId > 'm' AND "
                                     "(name = 'a' OR input = 'x')")
    assert query.fields("client") == {Field.CUSTOM_STATUS, Field.INSTANCE_ID, Field.NAME, Field.INPUT}
    everything = q("")
    assert everything.expr is everything.pushed is everything.client is None


def test_the_odata_filter_uses_parameters_escaped_ids_and_excludes_entities():
    query = q("instanceId STARTS_WITH 'a/b' AND name = 'x'' or 1 eq 1' AND instanceId IN ('k#1', 'q?')")
    f = instances_query_filter(query.pushed)
    assert "'" not in f.text.replace("'@'", "").replace("'A'", "")  # no value is pasted into the text
    assert f.parameters == {"p0": "a^0b", "p1": "a^0c", "p2": "x' or 1 eq 1", "p3": "k^21", "p4": "q^3"}
    assert render(f) == ("( ( PartitionKey ge 'a^0b' and PartitionKey lt 'a^0c' ) and Name eq 'x'' or 1 eq 1' and "
                         "( PartitionKey eq 'k^21' or PartitionKey eq 'q^3' ) ) and "
                         "(PartitionKey lt '@' or PartitionKey ge 'A')")
    # The SDK finds parameters by splitting on single spaces: no parameter may touch a parenthesis.
    assert all(not w or w[0] != "@" or w[1:] in f.parameters for w in f.text.split(" "))
    assert "  " not in f.text


def test_reading_a_query_back_gives_the_same_query():
    text = ("status NOT IN (Completed, Failed) AND (name STARTS_WITH 'O''Neil' OR customStatus CONTAINS 'x') "
            "AND createdTime BETWEEN 2024-04-01T00:00:00Z AND 2024-04-02T00:00:00Z")
    once = q(text)
    again = q(to_text(once.expr))
    assert again.expr.__class__ is once.expr.__class__
    assert to_text(again.expr) == to_text(once.expr)
