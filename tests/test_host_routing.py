"""Route templates and timer schedules: pure parsing and matching, no servers."""

from datetime import datetime, timedelta, timezone

import pytest

from funchost.routing import RouteError, RouteTemplate
from funchost.timespan import parse_timespan
from funchost.triggers.schedule import CronSchedule, IntervalSchedule, default_use_monitor, parse_schedule


@pytest.mark.parametrize("template,path,expected", [
    ("hello/{name?}", "hello", {}),
    ("hello/{name?}", "hello/bob", {"name": "bob"}),
    ("hello/{name?}", "HELLO/bob", {"name": "bob"}),           # literals ignore case
    ("hello/{name?}", "hello/bob/x", None),
    ("items/{id:int}", "items/42", {"id": "42"}),               # values stay strings, as in Azure
    ("items/{id:int}", "items/-7", {"id": "-7"}),
    ("items/{id:int}", "items/x", None),
    ("items/{id:int}", "items/99999999999", None),              # beyond int32
    ("items/{id:long}", "items/99999999999", {"id": "99999999999"}),
    ("p/{cat:alpha}/{id:int?}", "p/books", {"cat": "books"}),
    ("p/{cat:alpha}/{id:int?}", "p/books/3", {"cat": "books", "id": "3"}),
    ("p/{cat:alpha}/{id:int?}", "p/b00ks", None),
    ("files/{*path}", "files/a/b/c.txt", {"path": "a/b/c.txt"}),
    ("files/{*path}", "files", {}),
    ("f/{name}.{ext}", "f/archive.tar.gz", {"name": "archive.tar", "ext": "gz"}),
    ("d/{page=1}", "d", {"page": "1"}),
    ("d/{page=1}", "d/4", {"page": "4"}),
    ("g/{id:guid}", "g/6f9619ff-8b86-d011-b42d-00c04fc964ff", {"id": "6f9619ff-8b86-d011-b42d-00c04fc964ff"}),
    ("g/{id:guid}", "g/nope", None),
    ("b/{flag:bool}", "b/True", {"flag": "True"}),
    ("r/{n:range(1,5)}", "r/5", {"n": "5"}),
    ("r/{n:range(1,5)}", "r/6", None),
    ("s/{code:length(3)}", "s/abc", {"code": "abc"}),
    ("s/{code:length(3)}", "s/abcd", None),
    ("x/{v:regex(^a:b$)}", "x/a:b", {"v": "a:b"}),
    ("", "", {}),
])
def test_match(template, path, expected):
    assert RouteTemplate.parse(template).match(path) == expected


def test_precedence_literal_then_constrained_then_parameter_then_catch_all():
    templates = ["items/{*rest}", "items/{name}", "items/{id:int}", "items/special"]
    ordered = sorted((RouteTemplate.parse(t) for t in templates), key=lambda t: t.precedence)
    assert [t.text for t in ordered] == ["items/special", "items/{id:int}", "items/{name}", "items/{*rest}"]


@pytest.mark.parametrize("template,message", [
    ("a/{x:nosuch}", "unknown route constraint 'nosuch'. Allowed: alpha"),
    ("a/{x?}/b", "only optional parameters may follow"),
    ("a/{*r}/b", "must be the last segment"),
    ("a/{1x}", "is not a valid parameter"),
    ("a//b", "empty segment"),
    ("a/{x}/{X}", "appears twice"),
    ("a/{x?}.txt", "optional parameter must be a whole segment"),
])
def test_malformed_templates_say_what_is_wrong(template, message):
    with pytest.raises(RouteError, match="route .*" + message.replace("(", r"\(").replace("?", r"\?")):
        RouteTemplate.parse(template)


T0 = datetime(2024, 1, 1, 0, 0, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("text,first,second", [
    ("*/5 * * * * *", T0.replace(second=5), T0.replace(second=10)),      # six fields: seconds first
    ("0 30 9 * * *", T0.replace(hour=9, minute=30, second=0), T0.replace(day=2, hour=9, minute=30, second=0)),
    ("*/10 * * * *", T0.replace(minute=10, second=0), T0.replace(minute=20, second=0)),  # five fields accepted
    ("00:00:30", T0 + timedelta(seconds=30), T0 + timedelta(seconds=60)),               # TimeSpan
])
def test_schedules(text, first, second):
    schedule = parse_schedule(text, "test")
    assert schedule.next_after(T0) == first
    assert schedule.next_after(first) == second


def test_ncrontab_day_and_weekday_must_both_match():
    # 13th of a month that is a Friday: NCrontab requires both (Vixie cron would take either).
    schedule = parse_schedule("0 0 0 13 * 5", "test")
    assert isinstance(schedule, CronSchedule)
    assert schedule.next_after(T0) == datetime(2024, 9, 13, tzinfo=timezone.utc)


def test_use_monitor_defaults_on_for_schedules_a_minute_apart_or_more():
    assert default_use_monitor(parse_schedule("0 */5 * * * *", "t"))
    assert not default_use_monitor(parse_schedule("*/10 * * * * *", "t"))
    assert not default_use_monitor(IntervalSchedule(timedelta(seconds=30)))


@pytest.mark.parametrize("text", ["every day", "* * * *", "61 * * * * *", "00:00:00", "25:00:00"])
def test_bad_schedules_explain_the_forms(text):
    with pytest.raises(ValueError, match="fn: "):
        parse_schedule(text, "fn")


def test_timespan():
    assert parse_timespan("1.02:03:04.5", "x") == timedelta(days=1, hours=2, minutes=3, seconds=4.5)
    with pytest.raises(ValueError, match="hh:mm:ss"):
        parse_timespan("5s", "host.json extensions.queues.visibilityTimeout")
