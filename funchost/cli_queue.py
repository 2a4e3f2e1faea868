"""``funcpy queue``: put a message on a Storage queue, or look at one, the way the app's triggers read them.

Queue-triggered functions decode messages as host.json says
(``extensions.queues.messageEncoding``, Base64 by default), so ``send``
encodes them the same way; ``peek`` decodes them back. Handy for the
walkthrough, and for looking into a ``<queue>-poison`` queue.
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import click

from durable_mgmt.errors import DurableError
from durable_mgmt.settings import DEFAULT_CONNECTION_SETTING, load_settings
from durable_mgmt.taskhub.primitives import create_if_missing, get_or_none
from durable_mgmt.taskhub.storage import map_storage_errors

from .bindings import encode_queue_message
from .config import HostConfig
from .triggers.queue import decode_queue_message

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


@asynccontextmanager
async def _open_queue(script_root: Path, setting: str, queue_name: str, doing: str):
    """The queue's client and host.json's message encoding, with storage errors mapped for ``doing``.

    Opened through the account's queue service, so its client options (such as proxy settings) apply.
    """
    settings = load_settings(script_root)
    encoding = HostConfig.from_settings(settings).queues.message_encoding
    async with settings.storage_account(setting).queue_service() as service:
        with map_storage_errors(f"{doing} {queue_name!r}"):
            yield service.get_queue_client(queue_name), encoding


def _fail(message: object) -> int:
    click.echo(f"Error: {message}", err=True)
    return 1


async def _send(queue_name: str, message: str, script_root: Path, setting: str) -> int:
    try:
        async with _open_queue(script_root, setting, queue_name, "sending to queue") as (client, encoding):
            await create_if_missing(client.create_queue, f"creating queue {queue_name!r}")
            await client.send_message(encode_queue_message(message, encoding))
    except (DurableError, ValueError) as e:
        return _fail(e)
    click.echo(f"Sent a message to queue '{queue_name}' ({encoding} encoding).")
    return 0


async def _peek(queue_name: str, max_messages: int, script_root: Path, setting: str) -> int:
    try:
        async with _open_queue(script_root, setting, queue_name, "reading queue") as (client, encoding):
            messages = await get_or_none(lambda: client.peek_messages(max_messages=max_messages),
                                         f"reading queue {queue_name!r}")
            if messages is None:
                return _fail(f"queue '{queue_name}' does not exist.")
    except (DurableError, ValueError) as e:
        return _fail(e)
    for m in messages:
        text = m.content
        if encoding == "base64":
            try:
                text = decode_queue_message(text, encoding).decode()
            except ValueError:  # not Base64 or not UTF-8: show it as stored
                pass
        click.echo(f"{m.inserted_on:%Y-%m-%dT%H:%M:%SZ}  dequeued {m.dequeue_count}x  {text}")
    click.echo(f"{len(messages)} message(s) on '{queue_name}'.", err=True)
    return 0
