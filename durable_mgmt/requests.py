"""One typed input per management operation: what a transport is asked to do.

Inputs are validated when built, before any transport sees them, so both
transports refuse the same bad input with the same error and write nothing
(an empty id is ``InvalidInstanceId`` everywhere; JSON values, datetimes
included, are written by one rule: ``limits.json_default``). Each input has
one method of ``transports.Transport`` that carries it out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from .errors import InvalidFilter
from .limits import (check_existing_id, check_json_text, check_reason, check_text, dumps_checked, json_default,
                     shown)
from .models import InstanceQuery, PurgeProgress, purgeable_statuses
from .taskhub.names import validate_event_name, validate_instance_id, validate_orchestrator_name

_TOKEN = re.compile(r"[\x21-\x7e]+")
ProgressCallback = Callable[[PurgeProgress], "Awaitable[None] | None"]


def _json_text(value: Any, what: str) -> str:
    return dumps_checked(value, what, default=json_default)


def _given_json(text: str | None, what: str) -> str | None:
    """JSON text given as such (a door that received it over the wire): checked, kept as it is."""
    if text is not None:
        check_json_text(text, what)
    return text


@dataclass(frozen=True)
class _ForInstance:
    """An operation on one existing instance: its id must not be empty."""

    instance_id: str

    def __post_init__(self) -> None:
        check_existing_id(self.instance_id)


@dataclass(frozen=True)
class _WithReason(_ForInstance):
    """An operation on one instance that records why (kept in its history)."""

    reason: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_reason(self.reason)


@dataclass(frozen=True)
class StartInstance:
    """Start orchestrator ``name``. ``input_json`` is the input's JSON text (None: no input at all)."""

    name: str
    input: Any = None
    instance_id: str | None = None
    input_json: str | None = field(init=False)

    def __post_init__(self) -> None:
        validate_orchestrator_name(self.name)
        if self.instance_id is not None:
            validate_instance_id(self.instance_id)
        if not hasattr(self, "input_json"):
            object.__setattr__(self, "input_json", _json_text(self.input, "orchestration input"))

    @classmethod
    def of_json(cls, name: str, input_json: str | None, instance_id: str | None = None) -> "StartInstance":
        """A start whose input is already JSON text (from the CLI or an HTTP body); None means no input."""
        request = cls.__new__(cls)
        object.__setattr__(request, "input_json", None)
        for key, value in (("name", name), ("input", None), ("instance_id", instance_id)):
            object.__setattr__(request, key, value)
        request.__post_init__()
        object.__setattr__(request, "input_json", _given_json(input_json, "orchestration input"))
        return request


@dataclass(frozen=True)
class RestartInstance(_ForInstance):
    new_instance_id: bool = True


@dataclass(frozen=True)
class GetStatus(_ForInstance):
    show_history: bool = False
    show_history_output: bool = False
    show_input: bool = True
    show_output: bool = True


@dataclass(frozen=True)
class GetHistory(_ForInstance):
    """The raw history events of the instance's current execution."""


@dataclass(frozen=True)
class GetEntity:
    """Read a durable entity's state: entity ``name`` (any case: stored lowercase, as the SDK's EntityId
    does) and ``key`` (may be empty)."""

    name: str
    key: str

    def __post_init__(self) -> None:
        # As loose as an existing instance's id (the entity's id is one): text a table key can hold.
        check_text(self.name, "entity name", max_length=1024, allow_control=True)
        check_text(self.key, "entity key", max_length=1024, allow_control=True)
        check_existing_id(self.instance_id)

    @property
    def instance_id(self) -> str:
        """The id of the entity's instance: ``@name@key``."""
        return f"@{self.name.lower()}@{self.key}"


@dataclass(frozen=True)
class QueryInstances:
    query: InstanceQuery

    def __post_init__(self) -> None:
        # Tokens are printable ASCII on every transport (storage's are base64, the binding sends them back as
        # an HTTP header, where a line break is refused by aiohttp with a ValueError, or would smuggle a header).
        token = self.query.continuation_token
        if token and not _TOKEN.fullmatch(token):
            raise InvalidFilter(f"Invalid continuation token {shown(token)}: it does not come from a previous page "
                                "(a token is printable ASCII); pass back exactly the value the previous page "
                                "returned.")


@dataclass(frozen=True)
class CountInstances:
    """How many instances match ``query``, per runtime status."""

    query: InstanceQuery = field(default_factory=InstanceQuery)


@dataclass(frozen=True)
class TerminateInstance(_WithReason):
    """Stop a Pending, Running or Suspended instance; ``reason`` becomes its output."""


@dataclass(frozen=True)
class RaiseEvent(_ForInstance):
    event_name: str
    data: Any = None
    data_json: str = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        validate_event_name(self.event_name)
        if not hasattr(self, "data_json"):
            object.__setattr__(self, "data_json", _json_text(self.data, "event data"))

    @classmethod
    def of_json(cls, instance_id: str, event_name: str, data_json: str | None) -> "RaiseEvent":
        """An event whose data is already JSON text (None is sent as null)."""
        request = cls.__new__(cls)
        object.__setattr__(request, "data_json", "null")
        for key, value in (("instance_id", instance_id), ("event_name", event_name), ("data", None)):
            object.__setattr__(request, key, value)
        request.__post_init__()
        object.__setattr__(request, "data_json", _given_json(data_json, "event data") or "null")
        return request


@dataclass(frozen=True)
class SuspendInstance(_WithReason):
    """Pause a running instance at its next step: it keeps its state, and events sent meanwhile wait
    in its queue until it is resumed."""


@dataclass(frozen=True)
class ResumeInstance(_WithReason):
    """Let a suspended instance go on."""


@dataclass(frozen=True)
class RewindInstance(_WithReason):
    """Run the failed work of a Failed instance again (earlier results replay from history); failed
    sub-orchestrations are rewound with it. Refused for any other status."""


@dataclass(frozen=True)
class PurgeInstance(_ForInstance):
    """Delete one finished instance: its row, history and large values."""


@dataclass(frozen=True)
class PurgeInstances:
    """Purge every finished instance matching ``query``; ``progress`` is called after each batch
    (where the transport reports progress: the storage transport does, the binding's API cannot)."""

    query: InstanceQuery
    progress: ProgressCallback | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        purgeable_statuses(self.query.statuses)  # only finished statuses can be purged: InvalidFilter


@dataclass(frozen=True)
class GetManagementUrls(_ForInstance):
    """The management webhooks of one instance (the check-status payload)."""


@dataclass(frozen=True)
class HubExists:
    """Whether the task hub exists (its tables are there)."""


@dataclass(frozen=True)
class DeleteHub:
    """Delete the task hub: every table, queue and container of it."""
