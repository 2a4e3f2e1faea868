"""``funcpy queue``: put a message on a Storage queue, or look at one, the way the app's triggers read them.

Queue-triggered functions decode messages as host.json says
(``extensions.queues.messageEncoding``, Base64 by default), so ``send``
encodes them the same way; ``peek`` decodes them back. Handy for the
walkthrough, and for looking into a ``<queue>-poison`` queue.
"""

from __future__ import annotations

import asyncio
import base64
import sys
from pathlib import Path

import click
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from durable_mgmt.errors import DurableError
from durable_mgmt.settings import DEFAULT_CONNECTION_SETTING, load_settings
from durable_mgmt.taskhub.storage import map_storage_errors

from .config import HostConfig

_COMMON = [
    click.option("--script-root", default=".", show_default=True,
                 type=click.Path(file_okay=False, dir_okay=True, path_type=Path),
                 help="Folder with host.json and local.settings.json."),
    click.option("--connection-string-setting", default=DEFAULT_CONNECTION_SETTING, show_default=True,
                 help="App setting holding the storage connection string."),
]


def _common(f):
    for option in reversed(_COMMON):
        f = option(f)
    return f


@click.group("queue")
def queue() -> None:
    """Send messages to Storage queues, or peek at them (e.g. a poison queue)."""


@queue.command("send")
@click.argument("queue_name")
@click.argument("message")
@_common
def send(queue_name: str, message: str, script_root: Path, connection_string_setting: str) -> None:
    """Put MESSAGE on QUEUE_NAME, encoded as host.json says (Base64 by default).

    \b
    Examples:
      funcpy queue send start-queue "Kim"
      funcpy queue send event-queue 0ab8c55a66644d68a3a8b220b12d209c
    """
    sys.exit(asyncio.run(_send(queue_name, message, script_root, connection_string_setting)))


@queue.command("peek")
@click.argument("queue_name")
@click.option("--max", "max_messages", default=32, show_default=True, type=click.IntRange(1, 32))
@_common
def peek(queue_name: str, max_messages: int, script_root: Path, connection_string_setting: str) -> None:
    """Show the messages waiting on QUEUE_NAME without taking them.

    \b
    Example:
      funcpy queue peek check-status-queue-poison
    """
    sys.exit(asyncio.run(_peek(queue_name, max_messages, script_root, connection_string_setting)))


def _client(script_root: Path, setting: str, queue_name: str):
    settings = load_settings(script_root)
    encoding = HostConfig.from_settings(settings).queues.message_encoding
    account = settings.storage_account(setting)
    from azure.storage.queue.aio import QueueClient

    return QueueClient.from_connection_string(account.connection_string, queue_name), encoding


async def _send(queue_name: str, message: str, script_root: Path, setting: str) -> int:
    try:
        client, encoding = _client(script_root, setting, queue_name)
        async with client:
            with map_storage_errors(f"sending to queue {queue_name!r}"):
                try:
                    await client.create_queue()
                except ResourceExistsError:
                    pass
                body = base64.b64encode(message.encode()).decode() if encoding == "base64" else message
                await client.send_message(body)
    except (DurableError, ValueError) as e:
        click.echo(f"Error: {e}", err=True)
        return 1
    click.echo(f"Sent a message to queue '{queue_name}' ({encoding} encoding).")
    return 0


async def _peek(queue_name: str, max_messages: int, script_root: Path, setting: str) -> int:
    try:
        client, encoding = _client(script_root, setting, queue_name)
        async with client:
            with map_storage_errors(f"reading queue {queue_name!r}"):
                try:
                    messages = await client.peek_messages(max_messages=max_messages)
                except ResourceNotFoundError:
                    click.echo(f"Error: queue '{queue_name}' does not exist.", err=True)
                    return 1
    except (DurableError, ValueError) as e:
        click.echo(f"Error: {e}", err=True)
        return 1
    for m in messages:
        text = m.content
        if encoding == "base64":
            try:
                text = base64.b64decode(text, validate=True).decode()
            except ValueError:
                pass
        click.echo(f"{m.inserted_on:%Y-%m-%dT%H:%M:%SZ}  dequeued {m.dequeue_count}x  {text}")
    click.echo(f"{len(messages)} message(s) on '{queue_name}'.", err=True)
    return 0
