"""`funcpy queue send/peek` through the real entry point, against Azurite."""

import base64
import os
import subprocess
import sys
import uuid

from azure.storage.queue import QueueClient


def funcpy(cwd, env, *args):
    return subprocess.run([sys.executable, "-m", "funchost", "queue", *args], cwd=cwd, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


def test_send_encodes_as_host_json_says_and_peek_decodes(tmp_path, connection_string):
    (tmp_path / "host.json").write_text('{"version": "2.0"}')
    name = f"q-{uuid.uuid4().hex[:10]}"
    env = {"AzureWebJobsStorage": connection_string}
    sent = funcpy(tmp_path, env, "send", name, "hello Kim", "--script-root", str(tmp_path))
    assert sent.returncode == 0, sent.stderr
    assert f"Sent a message to queue '{name}' (base64 encoding)." in sent.stdout
    q = QueueClient.from_connection_string(connection_string, name)
    [msg] = q.peek_messages(max_messages=5)
    assert base64.b64decode(msg.content).decode() == "hello Kim"
    peeked = funcpy(tmp_path, env, "peek", name, "--script-root", str(tmp_path))
    assert peeked.returncode == 0 and "hello Kim" in peeked.stdout
    (tmp_path / "host.json").write_text('{"version": "2.0", "extensions": {"queues": {"messageEncoding": "none"}}}')
    assert funcpy(tmp_path, env, "send", name, "plain", "--script-root", str(tmp_path)).returncode == 0
    assert "plain" in [m.content for m in q.peek_messages(max_messages=5)]


def test_errors_are_one_line(tmp_path, connection_string):
    env = {"AzureWebJobsStorage": connection_string}
    missing = funcpy(tmp_path, env, "peek", "no-such-queue-here", "--script-root", str(tmp_path))
    assert missing.returncode == 1 and missing.stderr.strip() == "Error: queue 'no-such-queue-here' does not exist."
    no_setting = funcpy(tmp_path, env, "send", "x-queue", "m", "--connection-string-setting", "Nope",
                        "--script-root", str(tmp_path))
    assert no_setting.returncode == 1 and "No connection string in app setting 'Nope'" in no_setting.stderr
    assert "Traceback" not in no_setting.stderr
