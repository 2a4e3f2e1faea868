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
                                     "(name = 'a' OR input = 'x') AND instanceId STARTS_WITH 'ord-'")
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


# --- hostile review of issue 13 -------------------------------------------------------------------

REFUSED = [
    ("createdTime > -999999999d", 15, "reaches before 1601"),
    ("createdTime > -9999999999d", 15, "reaches before 1601"),
    ("createdTime > 0001-01-01", 15, "outside the times storage keeps"),
    ("createdTime < 9999-12-31T23:59:59.9999999Z", 15, "outside the times storage keeps"),
    ("(" * 3000 + "status = Running" + ")" * 3000, 65, "nested too deeply"),
    ("NOT " * 5000 + "status = Running", 257, "nested too deeply"),
    ("name = 'a\ud800'", 10, "lone UTF-16 surrogate"),
    ("instanceId = 'x\udcff'", 16, "lone UTF-16 surrogate"),
]


@pytest.mark.parametrize("text,column,words", REFUSED)
def test_hostile_values_are_refused_at_their_column(text, column, words):
    with pytest.raises(QuerySyntaxError) as err:
        q(text)
    assert err.value.column == column and words in str(err.value)


def test_sixty_four_levels_of_nesting_still_parse():
    assert q("(" * 64 + "status = Running" + ")" * 64).matches_client_side is not None
    assert q("NOT " * 64 + "status = Running").expr is not None


def test_times_at_the_edges_of_storage_are_pushed_down_without_overflow():
    for text in ("createdTime > 1601-01-01", "createdTime < 9999-12-31T23:59:59Z", "createdTime = 1601-01-01"):
        assert instances_query_filter(q(text).pushed).text


@pytest.mark.parametrize("prefix", ["e\U0001F600", "a\ud7ff", "\uffff", "x\ue000"])
def test_prefixes_storage_cannot_order_like_python_stay_client_side(prefix):
    for field in ("instanceId", "name"):
        for op in ("STARTS_WITH", "NOT STARTS_WITH", ">", "<=", "BETWEEN 'a' AND"):
            text = f"{field} {op} '{prefix}'"
            query = q(text)
            assert query.pushed is None and to_text(query.client) == to_text(query.expr)
            instances_query_filter(query.pushed).text.encode("utf-8")  # no lone surrogate is ever sent


def test_pushed_prefixes_are_checked_client_side_as_well():
    query = q("instanceId STARTS_WITH 'e1' AND name > 'b'")
    assert to_text(query.pushed) == to_text(query.client) == "instanceId STARTS_WITH 'e1' AND name > 'b'"


def test_a_large_in_list_is_filtered_client_side_within_the_comparison_budget():
    from durable_mgmt.query.plan import MAX_FILTER_COMPARISONS

    ids = ", ".join(f"'id-{i}'" for i in range(2000))
    query = q(f"status = Running AND instanceId IN ({ids}) AND name = 'n'")
    assert to_text(query.pushed) == "status = Running AND name = 'n'"
    assert to_text(query.client).startswith("instanceId IN ('id-0', ")
    text = instances_query_filter(query.pushed, after_key="k").text
    assert sum(text.count(f" {op} ") for op in ("eq", "ne", "lt", "le", "gt", "ge")) <= MAX_FILTER_COMPARISONS
    small = q("instanceId IN ('a', 'b', 'c')")
    assert to_text(small.pushed) == "instanceId IN ('a', 'b', 'c')" and small.client is None
