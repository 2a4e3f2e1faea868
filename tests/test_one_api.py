"""One management API under every door (issue 11).

* The transport protocol is one abstract method per operation: a transport missing one cannot be built,
  and both transports implement every one; what the binding cannot do is refused with one error.
* Validation happens once, in the typed inputs: both transports see the same refusals.
* The doors (the CLI, the management webhooks and their hub directory, the app) reach storage only
  through ``InstanceManager``: they import nothing from the task hub layer beyond an allow-list of names
  that do no storage work, the app imports only public names, and a management call on the host goes
  through the manager's transport.
"""

from __future__ import annotations

import ast
import json
import pathlib
import uuid
from datetime import datetime, timezone
from typing import Any

import pytest

import durable_mgmt
import durable_mgmt.dashboard
from durable_mgmt import InstanceManager, InvalidInstanceId, NotSupportedByTransport
from durable_mgmt import requests as r
from durable_mgmt.transports import OPERATIONS, BindingTransport, StorageTransport, Transport

ROOT = pathlib.Path(__file__).resolve().parent.parent

# --- the protocol ------------------------------------------------------------------------------------


def test_the_protocol_has_one_method_per_operation():
    assert OPERATIONS == {"start", "restart", "status", "history", "page", "pages", "count", "management_urls",
                          "terminate", "raise_event", "suspend", "resume", "rewind", "purge_instance", "purge",
                          "hub_exists", "delete_hub", "get_entity"}


@pytest.mark.parametrize("transport", [StorageTransport, BindingTransport])
def test_both_transports_implement_every_operation_themselves(transport):
    assert not transport.__abstractmethods__
    inherited = sorted(op for op in OPERATIONS if op not in vars(transport))
    assert inherited == [], f"{transport.__name__} leaves {inherited} to the abstract base"


def test_a_transport_missing_one_operation_cannot_be_built():
    whole = {op: getattr(BindingTransport, op) for op in OPERATIONS}
    for missing in sorted(OPERATIONS):
        partial = type("Partial", (Transport,), {op: f for op, f in whole.items() if op != missing})
        with pytest.raises(TypeError, match=missing):
            partial()
    type("Whole", (Transport,), whole)()  # and with all of them, it can


UNSUPPORTED_OVER_BINDING = {
    "history": (lambda m: m.history("i1"), "raw history", "show_history=True"),
    "count": (lambda m: m.count_by_status(), "Counting", "CountRequest"),
    "hub_exists": (lambda m: m.hub_exists(), "task hub exists", "InstanceManager.connect"),
    "delete_hub": (lambda m: m.delete_hub(), "Deleting the task hub", "delete-task-hub"),
    "jobs": (lambda m: m.jobs(), "Listing jobs", "InstanceManager.connect"),
}


@pytest.mark.parametrize("case", sorted(UNSUPPORTED_OVER_BINDING))
async def test_the_binding_refuses_what_it_cannot_do_with_one_error_naming_what_to_use(case):
    call, operation, instead = UNSUPPORTED_OVER_BINDING[case]
    # Nothing listens on port 9: a refusal must come before any call.
    async with InstanceManager(BindingTransport("http://127.0.0.1:9/runtime/webhooks/durabletask/x")) as manager:
        with pytest.raises(NotSupportedByTransport) as refused:
            await call(manager)
    text = str(refused.value)
    assert operation.lower() in text.lower() and instead in text and "durable client binding" in text
    assert isinstance(refused.value, durable_mgmt.InvalidSetting)  # callers catching InvalidSetting still do


# --- validation once ---------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [
    lambda: r.GetStatus(""), lambda: r.TerminateInstance(""), lambda: r.RaiseEvent("", "e"),
    lambda: r.RaiseEvent.of_json("", "e", "1"), lambda: r.PurgeInstance(""), lambda: r.GetHistory(""),
    lambda: r.RewindInstance(""), lambda: r.RestartInstance(""), lambda: r.GetManagementUrls(""),
])
def test_an_empty_id_is_the_same_error_for_every_operation(build):
    with pytest.raises(InvalidInstanceId, match="it is empty"):
        build()


def test_a_datetime_input_is_written_by_one_rule_whatever_the_door():
    at = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)
    from_value = r.StartInstance("Orch", {"at": at}).input_json
    assert json.loads(from_value) == {"at": "2024-05-01T12:30:00+00:00"}
    assert json.loads(r.RaiseEvent("i1", "E", [at]).data_json) == ["2024-05-01T12:30:00+00:00"]
    assert r.StartInstance.of_json("Orch", from_value).input_json == from_value  # JSON text is kept as given
    assert r.StartInstance.of_json("Orch", None).input_json is None  # no input at all


# --- the doors ---------------------------------------------------------------------------------------

# What the doors may import from the task hub layer: names that do no storage work.
ALLOWED_FROM_TASKHUB = {
    "durable_mgmt.taskhub": {"StorageAccount", "validate_hub_name"},  # connection strings, hub-name rules
    "durable_mgmt.taskhub.discovery": {"list_task_hubs"},             # which hubs an account holds
    "durable_mgmt.taskhub.timefmt": {"parse_iso", "to_iso"},          # time text
    "durable_mgmt.taskhub.instances": {"MAX_PAGE"},                   # the most rows one table page holds
}


def _doors() -> list[pathlib.Path]:
    cli = sorted((ROOT / "durable_mgmt" / "cli").glob("*.py"))
    return [*cli, ROOT / "funchost" / "webhooks.py", ROOT / "funchost" / "hubs.py", ROOT / "function_app.py"]


def _imported(path: pathlib.Path) -> list[tuple[str, str]]:
    """(module, name) of every import in ``path``, relative ones resolved."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found += [(module, a.name) for a in node.names]
    return found


@pytest.mark.parametrize("door", _doors(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_door_reaches_storage_only_through_the_instance_manager(door):
    text = door.read_text(encoding="utf-8")
    assert "TaskHubClient" not in text and "TaskHub(" not in text
    offenders = [f"{module}.{name}" for module, name in _imported(door)
                 if (module == "durable_mgmt.taskhub" or module.startswith("durable_mgmt.taskhub."))
                 and name not in ALLOWED_FROM_TASKHUB.get(module, set())]
    assert offenders == []


def test_the_app_imports_only_public_names_of_durable_mgmt():
    imported = [(m, n) for m, n in _imported(ROOT / "function_app.py") if m.split(".")[0] == "durable_mgmt"]
    assert imported
    public = {"durable_mgmt": set(durable_mgmt.__all__),
              "durable_mgmt.dashboard": set(durable_mgmt.dashboard.__all__)}
    assert [(m, n) for m, n in imported if n not in public.get(m, set())] == []


class RecordingTransport(StorageTransport):
    """The storage transport, remembering which operations it was asked for."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.asked: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        if name in OPERATIONS:
            object.__getattribute__(self, "asked").append(name)
        return object.__getattribute__(self, name)


async def test_the_management_webhooks_work_through_the_hosts_instance_manager(hub):
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from durable_mgmt.settings import AppSettings
    from funchost.durable_links import DurableLinks
    from funchost.hubs import HubDirectory
    from funchost.webhooks import ManagementApi

    await hub.create_if_not_exists()
    transport = RecordingTransport(hub)
    hubs = HubDirectory(InstanceManager(transport), AppSettings(ROOT, environ={}))
    base = "/runtime/webhooks/durabletask"
    api = ManagementApi(hubs, DurableLinks("http://127.0.0.1:1", "http://127.0.0.1:2", hub.name, None,
                                           rpc_secret="s"), base_path=base)
    app = web.Application()
    app.router.add_route("*", base + "/{tail:.*}", api.handle)
    async with TestClient(TestServer(app)) as http:
        started = await http.post(f"{base}/orchestrators/Hello/door-{uuid.uuid4().hex[:8]}", json=1)
        assert started.status == 202
        iid = (await started.json())["id"]
        assert (await http.get(f"{base}/instances/{iid}")).status == 202  # Pending: still in flight
        assert (await http.get(f"{base}/instances/?top=5")).status == 200
    assert transport.asked == ["start", "status", "page"]


async def test_the_one_wait_ends_when_its_caller_is_gone_and_takes_a_ramp(hub):
    from durable_mgmt import InvalidInput, RuntimeStatus, WaitTimeout

    manager = InstanceManager(StorageTransport(hub))
    iid = await manager.start("NobodyRunsThis", 1)  # no host: it stays Pending
    asked = []

    def gone() -> bool:
        asked.append(True)
        return len(asked) >= 3

    with pytest.raises(WaitTimeout) as ended:
        await manager.wait_for_completion(iid, timeout=60, retry_interval=(0.1, 0.2), stop=gone)
    assert ended.value.status.runtime_status == RuntimeStatus.PENDING and len(asked) == 3  # not 60 s later
    with pytest.raises(InvalidInput, match="empty sequence"):
        await manager.wait_for_completion(iid, retry_interval=())
    with pytest.raises(InvalidInput, match="retry_interval=0.01"):
        await manager.wait_for_completion(iid, retry_interval=(0.5, 0.01))
