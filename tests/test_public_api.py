"""The public surface of durable_mgmt is pinned (httpx's tests/test_exported_members.py habit), documented,
and the layering rules of DESIGN.md hold in product code."""

from __future__ import annotations

import ast
import inspect
import pathlib

import durable_mgmt

ROOT = pathlib.Path(__file__).resolve().parent.parent

EXPORTED = sorted([
    "BulkAction", "BulkRequest", "ConcurrencyConflict", "CountRequest", "CountResult", "DurableError", "ExportRequest",
    "GroupBy", "InstanceAlreadyExists", "InstanceManager", "InstanceNotFailed", "InstanceNotFound",
    "InstanceNotRunning", "InstanceNotTerminal", "InstanceOutcome", "InstanceQuery", "InstanceStatus", "InvalidFilter",
    "InvalidHubName", "InvalidInput", "InvalidInstanceId", "InvalidSetting", "JobBusy", "JobInfo", "JobNotFound",
    "JobState", "ManagementApiError", "ManagementUrls", "NotFound", "Outcome", "Page", "PurgeProgress", "PurgeResult",
    "Query", "QueryPlan", "QuerySyntaxError", "RuntimeStatus", "StorageRefused", "StorageUnavailable",
    "TaskHubNotFound", "WaitTimeout", "WrongState", "http_status_of",
    # What apps and tools need beside the manager (issue 11): the transport protocol and its one refusal,
    # the storage account, and the request readers function_app.py uses.
    "Transport", "NotSupportedByTransport", "StorageAccount", "QueryString", "CONTINUATION_HEADER",
    "parse_json_body", "check_wait", "EntityState",
])


def test_the_exported_names_are_exactly_the_pinned_ones():
    # Adding or removing a public name is a decision: change this list with it.
    assert sorted(durable_mgmt.__all__) == EXPORTED
    assert len(set(durable_mgmt.__all__)) == len(durable_mgmt.__all__)
    for name in durable_mgmt.__all__:
        assert hasattr(durable_mgmt, name), name


def test_every_public_name_is_documented():
    undocumented = [n for n in durable_mgmt.__all__ if not (inspect.getdoc(getattr(durable_mgmt, n)) or "").strip()]
    assert undocumented == []


def test_every_error_has_the_one_root():
    errors = [getattr(durable_mgmt, n) for n in durable_mgmt.__all__
              if inspect.isclass(getattr(durable_mgmt, n)) and issubclass(getattr(durable_mgmt, n), Exception)]
    assert errors and all(issubclass(e, durable_mgmt.DurableError) for e in errors)


def _imports(path: pathlib.Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _product_files():
    yield ROOT / "function_app.py"
    for package in ("durable_mgmt", "funchost"):
        yield from (ROOT / package).rglob("*.py")


def test_azure_core_exceptions_are_seen_only_by_the_task_hub_layer():
    taskhub = ROOT / "durable_mgmt" / "taskhub"
    offenders = [str(p.relative_to(ROOT)) for p in _product_files()
                 if taskhub not in p.parents and "azure.core.exceptions" in _imports(p)]
    assert offenders == []


def test_the_library_never_imports_the_host():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "durable_mgmt").rglob("*.py")
                 if any(m == "funchost" or m.startswith("funchost.") for m in _imports(p))]
    assert offenders == []
