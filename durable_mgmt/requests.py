"""One typed request per management operation: what a transport is asked to do.

Requests are validated when built, before any transport sees them, so both
transports refuse the same bad input with the same error and write nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .limits import check_existing_id, check_reason, dumps_checked
from .models import InstanceQuery
from .taskhub.names import validate_event_name, validate_instance_id, validate_orchestrator_name
from .taskhub.operations import purgeable_statuses


_check_id = check_existing_id


def _json_text(value: Any, what: str) -> str:
    return dumps_checked(value, what, default=lambda o: o.to_json() if hasattr(o, "to_json") else _unserializable(o))


def _unserializable(o: Any) -> Any:
    raise TypeError(f"object of type {type(o).__name__} is not JSON serializable")


@dataclass(frozen=True)
class _ForInstance:
    """A request about one existing instance: its id must not be empty."""

    instance_id: str

    def __post_init__(self) -> None:
        _check_id(self.instance_id)


@dataclass(frozen=True)
class StartInstance:
    name: str
    input: Any = None
    instance_id: str | None = None
    input_json: str = field(init=False)

    def __post_init__(self) -> None:
        validate_orchestrator_name(self.name)
        if self.instance_id is not None:
            validate_instance_id(self.instance_id)
        object.__setattr__(self, "input_json", _json_text(self.input, "orchestration input"))


@dataclass(frozen=True)
class GetStatus(_ForInstance):
    show_history: bool = False
    show_history_output: bool = False
    show_input: bool = True


@dataclass(frozen=True)
class QueryInstances:
    query: InstanceQuery


@dataclass(frozen=True)
class TerminateInstance(_ForInstance):
    reason: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_reason(self.reason)


@dataclass(frozen=True)
class RaiseEvent(_ForInstance):
    event_name: str
    data: Any = None
    data_json: str = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        validate_event_name(self.event_name)
        object.__setattr__(self, "data_json", _json_text(self.data, "event data"))


@dataclass(frozen=True)
class SuspendInstance(_ForInstance):
    reason: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_reason(self.reason)


@dataclass(frozen=True)
class ResumeInstance(_ForInstance):
    reason: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_reason(self.reason)


@dataclass(frozen=True)
class RewindInstance(_ForInstance):
    reason: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_reason(self.reason)


@dataclass(frozen=True)
class RestartInstance(_ForInstance):
    new_instance_id: bool = True


@dataclass(frozen=True)
class PurgeInstance(_ForInstance):
    pass


@dataclass(frozen=True)
class PurgeInstances:
    query: InstanceQuery

    def __post_init__(self) -> None:
        purgeable_statuses(self.query.statuses)  # only finished statuses can be purged: InvalidFilter


@dataclass(frozen=True)
class GetManagementUrls(_ForInstance):
    pass


Request = (StartInstance | GetStatus | QueryInstances | TerminateInstance | RaiseEvent | SuspendInstance
           | ResumeInstance | RewindInstance | RestartInstance | PurgeInstance | PurgeInstances | GetManagementUrls)
