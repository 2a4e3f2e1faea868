"""The dashboard's pure parts: the URL filter, guards' parsing, JSON folding, the Gantt axis, the assets."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, quote

import pytest

from durable_mgmt import RuntimeStatus
from durable_mgmt.dashboard.filters import ListFilter
from durable_mgmt.dashboard.render import json_view
from durable_mgmt.dashboard.security import host_name, principal_of
from durable_mgmt.dashboard.timeline import Span, gantt
from durable_mgmt.dashboard.web import Request

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "durable_mgmt" / "dashboard" / "static" / "vendor"


def test_a_filter_survives_the_url_round_trip():
    args = parse_qs("range=custom&from=2026-01-02T03:04&to=2026-01-03T00:00&status=Failed&status=running"
                    "&prefix=order-&name=Checkout&custom=waiting&refresh=5&size=20&ct=abc")
    flt = ListFilter.from_args(args)
    assert flt.errors == ()
    assert flt.statuses == (RuntimeStatus.RUNNING, RuntimeStatus.FAILED)
    assert flt.time_range() == (datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc),
                                datetime(2026, 1, 3, tzinfo=timezone.utc))
    assert ListFilter.from_args(parse_qs(flt.query_string())) == flt
    q = flt.query()
    assert (q.instance_id_prefix, q.name, q.page_size, q.continuation_token) == ("order-", "Checkout", 20, "abc")


def test_a_preset_range_ends_now_and_bad_values_are_named():
    now = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
    assert ListFilter.from_args(parse_qs("range=90d")).time_range(now) == (now - timedelta(days=90), None)
    assert ListFilter.from_args({}).time_range(now) == (now - timedelta(days=1), None)
    bad = ListFilter.from_args(parse_qs("range=custom&from=yesterday&refresh=3&size=5000&status=Done"))
    assert len(bad.errors) == 4
    assert "'yesterday'" in bad.errors[0] and "Done" in " ".join(bad.errors) and bad.page_size == 50


def test_app_service_principal_names_and_roles():
    claims = {"auth_typ": "aad", "claims": [{"typ": "roles", "val": "Operators"}, {"typ": "name", "val": "x"}]}
    encoded = base64.b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    p = principal_of(Request.build("GET", "/", "", {"X-MS-CLIENT-PRINCIPAL": encoded,
                                                    "X-MS-CLIENT-PRINCIPAL-NAME": "Ann@Example.com"}))
    assert p.name == "ann@example.com" and p.roles == {"operators"}
    assert principal_of(Request.build("GET", "/", "", {})) is None
    assert principal_of(Request.build("GET", "/", "", {"X-MS-CLIENT-PRINCIPAL": "%%%"})) is None


def test_host_names():
    assert host_name("localhost:7071") == "localhost"
    assert host_name("[::1]:8080") == "::1"
    assert host_name("Example.COM") == "example.com"
    assert host_name("") is None and host_name(None) is None


def test_large_json_is_folded_small_json_is_not():
    small = json_view({"a": 1})
    assert not small.large and small.full == '{\n  "a": 1\n}'
    big = json_view({"items": list(range(1000)), "text": "x" * 5000})
    assert big.large and big.size == len(big.full) and len(big.preview) < 1000
    assert "… (+980 items)" in big.preview and "(+4840 characters)" in big.preview


def test_gantt_places_spans_on_one_axis_and_caps_their_number():
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    spans = (Span("activity", "A", t0, t0 + timedelta(seconds=1), "completed"),
             Span("timer", "T", t0 + timedelta(seconds=1), t0 + timedelta(seconds=4), "completed"),
             Span("activity", "B", t0 + timedelta(seconds=2), None, "pending"))
    bars, total = gantt(spans, now=t0 + timedelta(seconds=5))
    assert total == 5 and [(b.x, b.width) for b in bars] == [(0, 20), (20, 60), (40, 60)]
    assert len(gantt(spans * 300, now=t0 + timedelta(seconds=5), limit=500)[0]) == 500


def test_vendored_assets_are_the_npm_packages_pinned_in_package_json():
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]
    htmx, chart = (VENDOR / "htmx.min.js").read_text(), (VENDOR / "chart.umd.min.js").read_text()
    assert re.search(r'version:"([\d.]+)"', htmx)[1] == pinned["htmx.org"]
    assert re.search(r"Chart\.js v([\d.]+)", chart)[1] == pinned["chart.js"]
    # Byte for byte what npm installed (make setup runs npm ci): provenance without a build step.
    assert (ROOT / "node_modules/htmx.org/dist/htmx.min.js").read_bytes() == htmx.encode()
    assert (ROOT / "node_modules/chart.js/dist/chart.umd.min.js").read_bytes() == chart.encode()


# --- hostile review of issue 14 -------------------------------------------------------------------

def _principal_header(raw: bytes) -> Request:
    return Request.build("GET", "/", "", {"X-MS-CLIENT-PRINCIPAL": base64.b64encode(raw).decode()})


def test_malformed_principal_headers_give_no_roles_instead_of_an_error():
    for raw in (b'{"claims": null}', b'{"claims": 5}', b"5", b"null", b'{"claims": [{"typ": "roles", "val": [1]}]}',
                b"[" * 100_000 + b"]" * 100_000, b'{"claims": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"):
        assert principal_of(_principal_header(raw)) is None
    huge = json.dumps({"claims": [{"typ": "roles", "val": "Operators"}], "pad": "x" * 20_000}).encode()
    assert principal_of(_principal_header(huge)) is None  # over MAX_PRINCIPAL_HEADER: not App Service's


@pytest.mark.parametrize("value,words", [("9999-12-31T23:59", "outside 1601-01-01 to 9998-12-31"),
                                         ("0001-01-01T00:00", "outside 1601-01-01 to 9998-12-31"),
                                         ("2999-01-01T00:00", "is in the future")])
def test_a_custom_range_out_of_the_calendar_or_in_the_future_is_named(value, words):
    flt = ListFilter.from_args(parse_qs(f"range=custom&from={value}"))
    assert flt.time_range() == (None, None) and len(flt.errors) == 1
    assert words in flt.errors[0] and repr(value) in flt.errors[0]


def test_the_history_download_name_is_ascii_with_the_exact_name_beside_it():
    from durable_mgmt.dashboard.core import _attachment

    header = _attachment('정렬-"a"/b')
    assert header.isascii()
    assert 'filename="history-__-_a__b.json"' in header
    assert "filename*=UTF-8''history-%EC%A0%95%EB%A0%AC-%22a%22%2Fb.json" in header


def test_the_form_fields_compose_a_query_joined_to_the_box():
    args = parse_qs("range=24h&status=Running&status=Failed&prefix=it's&name=Checkout&custom=wait"
                    "&q=" + quote("input CONTAINS 'x' OR name = 'Y'"))
    flt = ListFilter.from_args(args)
    assert flt.text() == ("createdTime >= -24h AND status IN (Running, Failed) AND instanceId STARTS_WITH 'it''s' "
                          "AND name = 'Checkout' AND customStatus CONTAINS 'wait' AND (input CONTAINS 'x' OR "
                          "name = 'Y')")
    assert flt.parsed() is not None and ListFilter.from_args(parse_qs(flt.query_string())) == flt
    custom = ListFilter.from_args(parse_qs("range=custom&from=2026-01-02T03:04&to=2026-01-03T00:00"))
    assert custom.text() == "createdTime >= 2026-01-02T03:04:00Z AND createdTime <= 2026-01-03T00:00:00Z"
    assert ListFilter.from_args(parse_qs("range=all")).text() == ""


def test_a_malformed_query_keeps_its_position_and_lists_nothing():
    flt = ListFilter.from_args(parse_qs("range=all&q=" + quote("status = Running AND (name = 'x'")))
    assert flt.q_error is not None and flt.q_error.column == 33 and flt.parsed() is None
    too_long = ListFilter.from_args(parse_qs("q=" + "a" * 5000))
    assert too_long.q == "" and "at most 4000" in too_long.errors[0]
