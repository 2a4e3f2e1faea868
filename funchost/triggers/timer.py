"""Timer triggers: NCRONTAB or TimeSpan schedules, ``runOnStartup`` and ``useMonitor``.

With ``useMonitor`` the schedule status (last run, next due run) is kept in
blob storage where the Functions host keeps it: container
``azure-webjobs-hosts``, blob ``timers/{hostId}/Host.Functions.{name}/status``.
At start, a status whose next run is already past means the host was down
when the run was due: the function runs once at once with ``past_due=True``,
then follows its schedule. Runs of one timer never overlap: the next
occurrence is computed after a run finishes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from azure.functions.timer import TimerRequest  # the worker's concrete one (func.TimerRequest is abstract)

from durable_mgmt.errors import DurableError, InvalidSetting
from durable_mgmt.settings import AppSettings
from durable_mgmt.taskhub.primitives import create_if_missing, read_blob
from durable_mgmt.taskhub.storage import map_storage_errors
from durable_mgmt.taskhub.timefmt import utcnow

from ..invoker import Invoker, log_crash
from ..loader import FunctionIndex, FunctionInfo
from .schedule import Schedule, default_use_monitor, parse_schedule

log = logging.getLogger("funchost")

MONITOR_CONTAINER = "azure-webjobs-hosts"
TIME_ZONE_SETTING = "WEBSITE_TIME_ZONE"


@dataclass(frozen=True)
class TimerBinding:
    function: FunctionInfo
    schedule: Schedule
    run_on_startup: bool
    use_monitor: bool


def build_timers(index: FunctionIndex, settings: AppSettings, problems: list[str]) -> list[TimerBinding]:
    """The timer functions' schedules; malformed ones go to ``problems`` naming the function."""
    tz: Any = timezone.utc
    zone = settings.get(TIME_ZONE_SETTING)
    if zone and index.timers:
        try:
            tz = zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            problems.append(f"App setting {TIME_ZONE_SETTING} is not a known IANA time zone "
                            "(e.g. Europe/Paris, America/New_York).")
    out = []
    for info in index.timers.values():
        t = info.trigger
        where = f"{info.describe()}: schedule"
        try:
            template = str(t.get("schedule") or "")
            expanded = settings.expand(template, where)
            schedule = parse_schedule(expanded, where, tz)
        except InvalidSetting as e:
            problems.append(str(e))
            continue
        except ValueError as e:
            # A schedule read from a setting is described by the setting's name, never its value.
            problems.append(str(e) if expanded == template else
                            f"{where}: {template!r} does not expand to a valid NCRONTAB or TimeSpan schedule.")
            continue
        monitor = t.get("useMonitor")
        out.append(TimerBinding(info, schedule, bool(t.get("runOnStartup", False)),
                                default_use_monitor(schedule) if monitor is None else bool(monitor)))
    return out


class TimerStatusStore:
    """Schedule status blobs of one host."""

    def __init__(self, blob_service, host_id: str):
        self._container = blob_service.get_container_client(MONITOR_CONTAINER)
        self._host_id = host_id
        self._created = False

    def _blob(self, function: str):
        return self._container.get_blob_client(f"timers/{self._host_id}/Host.Functions.{function}/status")

    async def read(self, function: str) -> dict[str, datetime] | None:
        content = await read_blob(self._blob(function), f"reading the schedule status of timer {function!r}")
        if content is None:
            return None
        try:
            data = json.loads(content)
            return {k: datetime.fromisoformat(data[k]).astimezone(timezone.utc) for k in ("Last", "Next")}
        except (KeyError, TypeError, ValueError):
            log.warning("Ignoring the unreadable schedule status of timer '%s'.", function)
            return None

    async def write(self, function: str, last: datetime | None, next_: datetime) -> None:
        if not self._created:
            await create_if_missing(self._container.create_container, f"creating container {MONITOR_CONTAINER!r}")
            self._created = True
        body = {"Last": (last or datetime(1, 1, 1, tzinfo=timezone.utc)).isoformat(), "Next": next_.isoformat(),
                "LastUpdated": utcnow().isoformat()}
        with map_storage_errors(f"writing the schedule status of timer {function!r}"):
            await self._blob(function).upload_blob(json.dumps(body), overwrite=True)


class TimerRunner:
    """Runs one timer function on its schedule until stopped."""

    def __init__(self, binding: TimerBinding, invoker: Invoker, store: TimerStatusStore | None):
        self.binding = binding
        self._invoker = invoker
        self._store = store if binding.use_monitor else None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._running: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"timer:{self.binding.function.name}")
        self._task.add_done_callback(log_crash)

    async def stop(self, drain_timeout: float) -> None:
        """Stop scheduling; let a run in progress finish for up to ``drain_timeout`` seconds."""
        self._stopping.set()
        if self._running is not None and not self._running.done():
            await asyncio.wait([self._running], timeout=drain_timeout)
            self._running.cancel()  # still running: abandon it (a sync function's thread is left to finish)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        name = self.binding.function.name
        schedule = self.binding.schedule
        status = await self._read_status()
        now = utcnow()
        next_due = schedule.next_after(now)
        last = status["Last"] if status else None
        if status is not None and status["Next"] < now:
            log.info("Timer '%s' missed its run due at %s while the host was down: running it now (past due).",
                     name, status["Next"].isoformat())
            last = await self._fire(status["Next"], past_due=True, last=last, next_=next_due)
        elif self.binding.run_on_startup:
            last = await self._fire(now, past_due=False, last=last, next_=next_due)
        else:
            await self._write_status(last, next_due)
        if next_due <= utcnow():  # the start-up run overran the first occurrence: do not chase it
            next_due = schedule.next_after(utcnow())
        while not self._stopping.is_set():
            delay = (next_due - utcnow()).total_seconds()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                    return
                except asyncio.TimeoutError:
                    pass
            due = next_due
            next_due = schedule.next_after(max(due, utcnow()))
            # More than a second late (the loop was blocked, or a run overran): report it as past due.
            late = (utcnow() - due).total_seconds() > 1.0
            last = await self._fire(due, past_due=late, last=last, next_=next_due)

    async def _fire(self, due: datetime, *, past_due: bool, last: datetime | None, next_: datetime) -> datetime:
        info = self.binding.function
        status = {"Last": (last or datetime(1, 1, 1, tzinfo=timezone.utc)).isoformat(), "Next": next_.isoformat(),
                  "LastUpdated": utcnow().isoformat()}
        request = TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})
        value: Any = request
        if info.trigger_annotation in (str, "str"):
            value = json.dumps({"IsPastDue": past_due, "ScheduleStatus": status})
        self._running = asyncio.create_task(
            self._invoker.invoke(info, value, reason=f"Timer fired at {due.isoformat()}"))
        try:
            await asyncio.shield(self._running)
        except asyncio.CancelledError:
            raise
        except Exception:
            pass  # logged by the invoker; the schedule goes on, as in Azure
        await self._write_status(due, next_)
        return due

    async def _read_status(self) -> dict[str, datetime] | None:
        if self._store is None:
            return None
        try:
            return await self._store.read(self.binding.function.name)
        except DurableError as e:
            log.warning("Timer '%s': cannot read its schedule status (%s); missed runs will not be detected.",
                        self.binding.function.name, e)
            return None

    async def _write_status(self, last: datetime | None, next_: datetime) -> None:
        if self._store is None:
            return
        try:
            await self._store.write(self.binding.function.name, last, next_)
        except DurableError as e:
            log.warning("Timer '%s': cannot save its schedule status: %s", self.binding.function.name, e)

