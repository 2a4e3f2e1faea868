"""Timer schedules: NCRONTAB expressions and TimeSpan intervals.

NCRONTAB (what Azure Functions uses) is cron with a leading seconds field:
``{second} {minute} {hour} {day} {month} {day-of-week}``; five-field
expressions (no seconds) are accepted as the host accepts them. Unlike Vixie
cron, NCrontab requires *both* day-of-month and day-of-week to match when
both are restricted, so croniter runs with ``day_or=False``. A TimeSpan
(``hh:mm:ss``) schedule fires at that interval after each run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Protocol

from croniter import croniter

from ..timespan import looks_like_timespan, parse_timespan


class Schedule(Protocol):
    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after ``moment`` (aware, UTC)."""

    def describe(self) -> str:
        """How the schedule is shown at start-up."""


@dataclass(frozen=True)
class CronSchedule:
    expression: str
    tz: tzinfo = timezone.utc

    def next_after(self, moment: datetime) -> datetime:
        it = croniter(self.expression, moment.astimezone(self.tz), day_or=False,
                      second_at_beginning=self._with_seconds)
        return it.get_next(datetime).astimezone(timezone.utc)

    @property
    def _with_seconds(self) -> bool:
        return len(self.expression.split()) == 6

    def describe(self) -> str:
        return self.expression


@dataclass(frozen=True)
class IntervalSchedule:
    interval: timedelta

    def next_after(self, moment: datetime) -> datetime:
        return moment + self.interval

    def describe(self) -> str:
        return f"every {self.interval}"


def parse_schedule(text: str, where: str, tz: tzinfo = timezone.utc) -> Schedule:
    """A schedule from its text; ValueError naming ``where`` and the accepted forms when malformed."""
    text = (text or "").strip()
    if looks_like_timespan(text):
        interval = parse_timespan(text, where)
        if interval <= timedelta(0):
            raise ValueError(f"{where}: the interval {text!r} must be longer than zero.")
        return IntervalSchedule(interval)
    fields = text.split()
    if len(fields) in (5, 6) and croniter.is_valid(text, second_at_beginning=len(fields) == 6):
        return CronSchedule(" ".join(fields), tz)
    raise ValueError(f"{where}: {text!r} is not a valid schedule. Use an NCRONTAB expression with six fields "
                     "'{second} {minute} {hour} {day} {month} {day-of-week}' (e.g. '0 */5 * * * *' for every "
                     "five minutes) or a time span 'hh:mm:ss' (e.g. '00:00:30').")


def default_use_monitor(schedule: Schedule) -> bool:
    """The host's default for ``useMonitor``: on when occurrences are at least a minute apart."""
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    first = schedule.next_after(start)
    return schedule.next_after(first) - first >= timedelta(minutes=1)
