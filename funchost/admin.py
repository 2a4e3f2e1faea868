"""The host's admin API for running a non-HTTP function by hand.

``POST /admin/functions/{name}`` with ``{"input": "..."}`` runs a timer or
queue-triggered function once, as the Azure Functions host does (it is how
``func`` users fire a timer without waiting for its schedule). The answer is
202 at once; the run is logged like any other. With ``--enable-auth`` the
master key is required.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timezone

import azure.functions as func
from aiohttp import web
from azure.functions.timer import TimerRequest

from durable_mgmt.errors import InvalidInput
from durable_mgmt.limits import check_json_text

from .loader import QUEUE_TRIGGER, TIMER_TRIGGER
from .webhook_io import BodyTooLarge, read_body

MAX_ADMIN_BODY_BYTES = 1024 * 1024  # a queue message is at most 64 KiB; a timer takes none

log = logging.getLogger("funchost")


class AdminFunctions:
    def __init__(self, host, invoker):
        self._host = host
        self._invoker = invoker
        self._runs: set[asyncio.Task] = set()

    async def run(self, request: web.Request) -> web.Response:
        host = self._host
        if not host.admits_admin(request):
            return web.Response(status=401)
        name = request.match_info["name"]
        info = host.index.find(name)
        if info is None:
            return _error(404, f"No function named {name!r}. Functions: {', '.join(host.index.functions)}.")
        if info.trigger_type not in (TIMER_TRIGGER, QUEUE_TRIGGER):
            return _error(400, f"{name!r} is triggered by {info.trigger_type}: only timer and queue functions run "
                               "through /admin/functions (call an HTTP function at its URL).")
        try:
            raw = await read_body(request, MAX_ADMIN_BODY_BYTES)
            body = check_json_text(raw.decode("utf-8-sig") or "{}", "request body")
        except BodyTooLarge as e:
            return _error(413, str(e))
        except (InvalidInput, UnicodeDecodeError) as e:
            return _error(400, f'The body must be JSON: {{"input": "<text>"}} ({e}).')
        text = body.get("input", "") if isinstance(body, dict) else ""
        if not isinstance(text, str):
            return _error(400, 'The "input" must be a string (the queue message text; ignored for timers).')
        if info.trigger_type == TIMER_TRIGGER:
            value = TimerRequest(past_due=False, schedule_status={}, schedule={"AdjustForDST": True})
        else:
            now = datetime.now(timezone.utc)
            value = func.QueueMessage(id=str(uuid.uuid4()), body=text.encode("utf-8"), dequeue_count=1,
                                      insertion_time=now, expiration_time=now, next_visible_time=now,
                                      pop_receipt=None)
        task = asyncio.create_task(self._run(info, value))
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)
        return web.Response(status=202)

    async def _run(self, info, value) -> None:
        try:
            await self._invoker.invoke(info, value, reason="This function was programmatically called via the "
                                                           "host APIs.")
        except Exception:
            pass  # the invoker logged it

    async def drain(self, timeout: float) -> None:
        if self._runs:
            await asyncio.wait(self._runs, timeout=timeout)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
