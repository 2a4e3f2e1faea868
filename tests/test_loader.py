"""Loading function_app.py: the index by trigger, and start-up problems reported by file/line or function."""

from __future__ import annotations

import os
import subprocess

import pytest

from funchost.errors import AppLoadError
from funchost.host import plan_triggers
from funchost.loader import load_app
from durable_mgmt.settings import load_settings
from tests.apps.support import APPS, REPO, funcpy_command


def test_index_by_trigger_type():
    index = load_app(APPS / "http_app")
    assert "hello" in index.http and "items/{id:int}" == index.http["item"].trigger["route"]
    assert list(index.orchestrators) == ["hello_orchestrator"]
    assert list(index.activities) == ["say_hello"]
    assert index.queues == {} and index.timers == {} and index.has_durable_functions

    activity = index.activities["say_hello"]
    assert activity.trigger_type == "activityTrigger" and activity.trigger_parameter == "name"
    assert activity.user_function("x") == "Hello x"  # the user's function itself
    orchestrator = index.orchestrators["hello_orchestrator"]
    assert orchestrator.trigger == {"direction": "in", "type": "orchestrationTrigger", "name": "context"}

    enqueue = index["enqueue"]
    assert [b["type"] for b in enqueue.outputs] == ["queue", "http"]
    assert enqueue.return_binding["type"] == "http"
    assert index.find("HELLO") is index["hello"]  # names ignore case, as in the Functions host
    assert index.find("hello", "queueTrigger") is None
    assert index["files"].is_async and not index["hello"].is_async
    assert index["hello"].location == "function_app.py:11"


def test_durable_client_functions_are_indexed_with_their_binding():
    index = load_app(APPS / "client_app")
    starter = index["start_orchestration"]
    assert starter.durable_client == {"direction": "in", "type": "durableClient", "name": "client"}
    assert starter.is_async  # the SDK wraps client functions in an async middleware


def test_syntax_error_names_file_and_line():
    with pytest.raises(AppLoadError) as caught:
        load_app(APPS / "broken_syntax")
    text = caught.value.render()
    assert caught.value.location == (str(APPS / "broken_syntax" / "function_app.py"), 8)
    assert 'function_app.py", line 8' in text and "SyntaxError" in text and 'return "ok" +' in text


def test_import_error_names_every_frame_of_the_app():
    with pytest.raises(AppLoadError) as caught:
        load_app(APPS / "broken_nested")
    text = caught.value.render()
    assert 'function_app.py", line 3' in text and 'helpers.py", line 3' in text
    assert "KeyError: 'port'" in text and "site-packages" not in text
    assert caught.value.location == (str(APPS / "broken_nested" / "helpers.py"), 3)


def test_problems_name_the_function_and_are_reported_together():
    index = load_app(APPS / "broken_bindings", strict=False)
    with pytest.raises(AppLoadError) as caught:
        plan_triggers(index, load_settings(APPS / "broken_bindings"))
    problems = caught.value.problems
    assert len(problems) == 5, problems
    assert "'same'" in problems[0] and "'Same'" in problems[0] and "unique" in problems[0]
    assert "'reads_blob' (function_app.py:16)" in problems[1] and "'blob'" in problems[1]
    assert "'extra_param'" in problems[2] and "unbound" in problems[2]
    assert "'bad_route'" in problems[3] and "nosuch" in problems[3] and "Allowed:" in problems[3]
    assert "'bad_schedule'" in problems[4] and "NCRONTAB" in problems[4]
    with pytest.raises(AppLoadError):
        load_app(APPS / "broken_bindings")  # strict by default


def test_missing_app_and_app_without_function_app():
    with pytest.raises(AppLoadError, match="There is no function_app.py"):
        load_app(APPS / "does_not_exist")
    with pytest.raises(AppLoadError, match="defines no function app"):
        load_app(APPS / "no_app")


@pytest.mark.parametrize("app,where,error", [
    ("broken_syntax", 'function_app.py", line 8', "SyntaxError"),
    ("broken_import", 'function_app.py", line 5', "ModuleNotFoundError"),
    ("broken_bindings", "function 'bad_route'", "nosuch"),
])
def test_funcpy_start_fails_fast_on_one_screen(app, where, error):
    # No storage is touched: the app is checked before Azurite would start.
    env = {**os.environ, "AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    done = subprocess.run(funcpy_command("--script-root", str(APPS / app), "--port", "0"), capture_output=True,
                          text=True, timeout=60, cwd=REPO, env=env)
    assert done.returncode == 1
    assert where in done.stderr and error in done.stderr
    assert len(done.stderr.splitlines()) <= 25
    assert "Traceback" not in done.stderr and "Azurite" not in done.stdout + done.stderr
