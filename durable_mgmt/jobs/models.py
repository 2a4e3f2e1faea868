"""Typed inputs and results of counts, bulk jobs and exports."""

from __future__ import annotations

import json
import math

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from ..errors import InvalidInput
from ..limits import check_reason
from ..query import Field, Query


class GroupBy(str, Enum):
    STATUS = "status"
    NAME = "name"
    CUSTOM_STATUS = "customStatus"

    @property
    def field(self) -> Field:
        return {GroupBy.STATUS: Field.STATUS, GroupBy.NAME: Field.NAME,
                GroupBy.CUSTOM_STATUS: Field.CUSTOM_STATUS}[self]

    @classmethod
    def parse(cls, value: "GroupBy | str") -> "GroupBy":
        if isinstance(value, GroupBy):
            return value
        for g in cls:
            if g.value.lower() == str(value).strip().lower():
                return g
        raise InvalidInput(f"Cannot group by {value!r}: group by one of {', '.join(g.value for g in cls)}.")


# Bounds of a bulk job's rate (operations per second). Below MIN_RATE one operation takes longer than a
# job's lease can sensibly cover; inf, nan and huge values would overflow the chunk size.
MIN_RATE = 0.01
MAX_RATE = 1_000_000.0
MAX_BATCH_SIZE = 98  # instances per checkpoint: one transaction holds 100 operations, one is the job row


@dataclass(frozen=True)
class CountRequest:
    """How many instances match ``query``, in total and per ``group_by`` value."""

    query: Query | str | None = None
    group_by: GroupBy | str = GroupBy.STATUS

    def __post_init__(self) -> None:
        object.__setattr__(self, "query", Query.of(self.query))
        object.__setattr__(self, "group_by", GroupBy.parse(self.group_by))


@dataclass(frozen=True)
class CountResult:
    total: int
    group_by: GroupBy
    groups: dict[str, int]  # largest first

    def to_json(self) -> dict[str, Any]:
        return {"total": self.total, "groupBy": self.group_by.value, "groups": dict(self.groups)}


@dataclass(frozen=True)
class QueryPlan:
    """What ``explain`` says about a query: what storage evaluates, what is filtered here."""

    query: str
    pushed_down: str        # the pushed-down half, in the query language ('' if none)
    storage_filter: str     # the OData filter sent to the Instances table
    filtered_here: str      # the client-side half ('' if none)
    columns: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"query": self.query, "pushedDown": self.pushed_down, "storageFilter": self.storage_filter,
                "filteredHere": self.filtered_here, "columns": list(self.columns)}


class BulkAction(str, Enum):
    TERMINATE = "terminate"
    SUSPEND = "suspend"
    RESUME = "resume"
    RAISE_EVENT = "raise-event"
    REWIND = "rewind"
    RESTART = "restart"
    PURGE = "purge"
    EXPORT_HISTORY = "export-history"

    @classmethod
    def parse(cls, value: "BulkAction | str") -> "BulkAction":
        try:
            return value if isinstance(value, BulkAction) else cls(str(value).strip().lower())
        except ValueError:
            raise InvalidInput(f"Unknown bulk action {value!r}: use one of {', '.join(a.value for a in cls)}.") from None


@dataclass(frozen=True)
class BulkRequest:
    """Act on every instance ``query`` matches, as a checkpointed job.

    ``rate`` bounds operations per second (None: no bound), ``concurrency``
    the operations in flight. ``recursive`` (terminate, purge) also reaches
    sub-orchestrations, found in their parents' history. ``terminate_first``
    (purge) terminates active instances and waits up to ``wait_seconds`` for
    them to be Terminated before purging them. ``batch_size`` is how many
    instances each checkpoint records (default: 98, or about five seconds of
    work at ``rate``). ``path`` and ``gzip`` are for export-history.
    """

    action: BulkAction | str
    query: Query | str | None = None
    reason: str | None = None
    event_name: str | None = None
    event_data: Any = None
    recursive: bool = False
    terminate_first: bool = False
    wait_seconds: float = 60.0
    new_instance_id: bool = True
    rate: float | None = None
    concurrency: int = 8
    batch_size: int | None = None
    path: str | None = None
    gzip: bool = False

    def __post_init__(self) -> None:
        action = BulkAction.parse(self.action)
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or not 1 <= self.batch_size <= MAX_BATCH_SIZE):
            raise InvalidInput(f"Invalid batch size {self.batch_size!r}: give an integer from 1 to {MAX_BATCH_SIZE} "
                               "(instances recorded per checkpoint; one transaction holds 100 rows).")
        object.__setattr__(self, "action", action)
        object.__setattr__(self, "query", Query.of(self.query))
        if self.rate is not None and not (isinstance(self.rate, (int, float)) and not isinstance(self.rate, bool)
                                          and math.isfinite(self.rate) and MIN_RATE <= self.rate <= MAX_RATE):
            raise InvalidInput(f"Invalid rate {self.rate!r}: give operations per second from {MIN_RATE} "
                               f"(one every {1 / MIN_RATE:.0f} s) to {MAX_RATE:g} (or none for no bound).")
        if not isinstance(self.concurrency, int) or not 1 <= self.concurrency <= 256:
            raise InvalidInput(f"Invalid concurrency {self.concurrency!r}: give an integer from 1 to 256.")
        if action is BulkAction.RAISE_EVENT and not (self.event_name or "").strip():
            raise InvalidInput("raise-event needs an event name (the name the orchestrator waits for).")
        if self.recursive and action not in (BulkAction.TERMINATE, BulkAction.PURGE):
            raise InvalidInput(f"--recursive applies to terminate and purge, not {action.value}.")
        if self.terminate_first and action is not BulkAction.PURGE:
            raise InvalidInput("terminate_first applies to purge only.")
        check_reason(self.reason)  # as terminate/suspend/... check it for one instance: refused here, not per instance
        stored = len(json.dumps([self.reason, self.event_data], default=str))
        if stored > MAX_STORED_PARAMS:
            raise InvalidInput(f"Invalid reason or event data: a job keeps them in its row, where they take {stored:,} "
                               f"characters once written as JSON; at most {MAX_STORED_PARAMS:,} fit. Shorten them.")
        if self.wait_seconds <= 0:
            raise InvalidInput(f"Invalid wait {self.wait_seconds!r}: give seconds greater than 0.")
        if action is BulkAction.EXPORT_HISTORY and not self.path:
            raise InvalidInput("export-history needs the path of the JSONL file to write.")


# The job row keeps its parameters as JSON text in one string property, which Table storage caps at 64 KiB
# (32,767 UTF-16 units; non-ASCII text is written as \uXXXX escapes): room for the reason and event data.
MAX_STORED_PARAMS = 30_000


class JobState(str, Enum):
    SELECTING = "Selecting"      # the query is being scanned and nothing matched yet
    READY = "Ready"              # selection done, nothing acted on yet
    RUNNING = "Running"          # acting on what was recorded; the scan may go on (JobInfo.selection_complete)
    INTERRUPTED = "Interrupted"  # stopped (Ctrl-C, crash, lost connection): resume it
    COMPLETED = "Completed"
    CANCELED = "Canceled"

    @property
    def is_final(self) -> bool:
        return self in (JobState.COMPLETED, JobState.CANCELED)


class Outcome(str, Enum):
    PENDING = "pending"
    CLAIMED = "claimed"   # being acted on; if the job stops here it is checked before acting again
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class JobInfo:
    """A job as stored: what it does, to what, and how far it got."""

    id: str
    action: BulkAction
    query: str
    now: datetime
    state: JobState
    created: datetime
    updated: datetime
    params: dict[str, Any] = field(default_factory=dict)
    matched: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    cursor: str = ""

    @property
    def finished(self) -> int:
        return self.done + self.skipped + self.failed

    @property
    def selection_complete(self) -> bool:
        """Whether the query's scan is over: until then ``matched`` counts what it found so far."""
        return bool(self.params.get("selected"))

    def to_json(self) -> dict[str, Any]:
        from ..taskhub.timefmt import to_iso

        return {"id": self.id, "action": self.action.value, "query": self.query, "now": to_iso(self.now),
                "state": self.state.value, "created": to_iso(self.created), "updated": to_iso(self.updated),
                "matched": self.matched, "selectionComplete": self.selection_complete, "done": self.done, "skipped": self.skipped, "failed": self.failed,
                "params": self.params}


@dataclass(frozen=True)
class InstanceOutcome:
    """What a job did to one instance."""

    instance_id: str
    outcome: Outcome
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"instanceId": self.instance_id, "outcome": self.outcome.value, "reason": self.reason}


def ExportRequest(query: Query | str | None, path: str, *, gzip: bool = False, concurrency: int = 8,
                  rate: float | None = None) -> BulkRequest:
    """An export of the histories ``query`` matches to the JSONL file ``path`` (a resumable job)."""
    return BulkRequest(BulkAction.EXPORT_HISTORY, query, path=path, gzip=gzip, concurrency=concurrency, rate=rate)
