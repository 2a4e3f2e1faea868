"""Functions conventions the sample app relies on (issue 10, item 11), checked without storage.

* An HTTP function without a route is served at ``/{routePrefix}/{FunctionName}``
  (azure-functions' decorators set ``route`` to the function name when none is
  given); the document's GetAllStatus and QueryStatus have no route, so a user
  following it calls ``/api/GetAllStatus`` and ``/api/QueryStatus``.
* Queue triggers back off to host.json ``extensions.queues.maxPollingInterval``
  on an empty queue (WebJobs ``QueuesOptions.MaxPollingInterval``, 1 minute by
  default); the sample app sets 2 seconds so its queue triggers answer within
  a few seconds of a message.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from durable_mgmt.errors import InvalidSetting
from durable_mgmt.settings import load_settings
from funchost.config import HostConfig
from funchost.loader import load_app
from funchost.triggers.http import build_routes
from tests.apps.support import REPO


@pytest.fixture(scope="module")
def repo_routes():
    problems: list[str] = []
    routes = build_routes(load_app(REPO), problems)
    assert problems == []
    return routes


@pytest.mark.parametrize("path,function", [
    ("GetAllStatus", "GetAllStatus"),
    ("QueryStatus", "QueryStatus"),
    ("getallstatus", "GetAllStatus"),           # ASP.NET routing ignores case
    ("orchestrators/E1_HelloSequence", "HttpStart"),
    ("orchestrators/E1_HelloSequence/wait", "HttpSyncStart"),
])
def test_the_documents_urls_reach_the_documents_functions(repo_routes, path, function):
    # The host tries routes in this order and serves the first match (funchost.triggers.http.HttpTriggers).
    first = next(r for r in repo_routes if r.template.match(path) is not None)
    assert first.function.name == function
    if function in ("GetAllStatus", "QueryStatus"):
        assert first.url("http://localhost:7071", "api") == f"http://localhost:7071/api/{function}"
        assert first.methods == {"GET", "POST"}


def test_the_sample_apps_queue_triggers_poll_at_most_every_two_seconds():
    queues = HostConfig.from_settings(load_settings(REPO, environ={})).queues
    assert queues.max_polling_interval <= timedelta(seconds=2)


def test_max_polling_interval_default_and_spelling(tmp_path):
    def options(host_json):
        (tmp_path / "host.json").write_text(json.dumps(host_json))
        return HostConfig.from_settings(load_settings(tmp_path, environ={})).queues

    assert options({"version": "2.0"}).max_polling_interval == timedelta(minutes=1)  # the WebJobs default
    # Keys in any case, as the host reads host.json through IConfiguration.
    spelled = options({"version": "2.0", "Extensions": {"Queues": {"MaxPollingInterval": "00:00:01.500"}}})
    assert spelled.max_polling_interval == timedelta(seconds=1.5)
    with pytest.raises(InvalidSetting, match="maxPollingInterval must be at least 00:00:00.100"):
        options({"version": "2.0", "extensions": {"queues": {"maxPollingInterval": "00:00:00.010"}}})
