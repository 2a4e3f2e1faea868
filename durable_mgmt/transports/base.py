"""The protocol every transport implements: one method per operation, one input type per method.

Shaped like Temporal's client interceptor (``OutboundInterceptor`` in
``temporalio/client/_interceptor.py``): each operation is an abstract
method taking its input dataclass from ``durable_mgmt.requests``, already
validated. A transport that lacks one cannot be built (``TypeError`` at
instantiation, and a type checker flags it earlier), so adding an operation
means adding it here, and every transport is made to say how it does it, or
that it cannot (``NotSupportedByTransport``, via ``unsupported``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, AsyncIterator, NoReturn

from .. import requests as r
from ..errors import NotSupportedByTransport
from ..models import EntityState, InstanceStatus, ManagementUrls, Page, PurgeResult, RuntimeStatus

if TYPE_CHECKING:
    from ..taskhub import TaskHub
    from ..taskhub.events import HistoryEvent


class Transport(ABC):
    """How an ``InstanceManager`` reaches a task hub. Every method raises only ``DurableError``s."""

    #: Named in NotSupportedByTransport messages.
    description = "transport"
    #: The task hub in storage this transport works on; None where it goes through a host (the binding).
    #: Queries, counts and jobs use it to read storage directly.
    hub: "TaskHub | None" = None

    # --- start -----------------------------------------------------------------

    @abstractmethod
    async def start(self, input: r.StartInstance) -> str:
        """Start an instance; its id."""

    @abstractmethod
    async def restart(self, input: r.RestartInstance) -> str:
        """Start an instance's orchestration again with its input; the new id."""

    # --- read ------------------------------------------------------------------

    @abstractmethod
    async def status(self, input: r.GetStatus) -> InstanceStatus:
        """One instance's status (InstanceNotFound)."""

    @abstractmethod
    async def get_entity(self, input: r.GetEntity) -> EntityState:
        """A durable entity's state; ``exists`` is False for an entity with no state (or none at all)."""

    @abstractmethod
    async def history(self, input: r.GetHistory) -> "list[HistoryEvent]":
        """The raw events of the instance's current execution (InstanceNotFound)."""

    @abstractmethod
    async def page(self, input: r.QueryInstances) -> Page[InstanceStatus]:
        """One page of matching instances and the token of the next."""

    @abstractmethod
    def pages(self, input: r.QueryInstances) -> AsyncIterator[Page[InstanceStatus]]:
        """Every page of matching instances, from the query's token to the last page (an async generator;
        a transport may fetch the next page while the caller handles this one)."""

    @abstractmethod
    async def count(self, input: r.CountInstances) -> dict[RuntimeStatus, int]:
        """How many instances match, per runtime status (every status present, zeros included)."""

    @abstractmethod
    async def management_urls(self, input: r.GetManagementUrls) -> ManagementUrls:
        """The management webhooks of one instance."""

    # --- steer -----------------------------------------------------------------

    @abstractmethod
    async def terminate(self, input: r.TerminateInstance) -> None:
        """Ask an instance to stop (InstanceNotFound, InstanceNotRunning once it has finished)."""

    @abstractmethod
    async def raise_event(self, input: r.RaiseEvent) -> None:
        """Send an event to a running instance; it is kept until the orchestrator waits for it."""

    @abstractmethod
    async def suspend(self, input: r.SuspendInstance) -> None:
        """Pause an instance (InstanceNotRunning once finished)."""

    @abstractmethod
    async def resume(self, input: r.ResumeInstance) -> None:
        """Let a suspended instance go on."""

    @abstractmethod
    async def rewind(self, input: r.RewindInstance) -> list[str] | None:
        """Rewind a Failed instance; the ids sent a replay message, or None when the transport cannot tell."""

    # --- purge and the hub -----------------------------------------------------

    @abstractmethod
    async def purge_instance(self, input: r.PurgeInstance) -> PurgeResult:
        """Delete one finished instance (InstanceNotTerminal while it runs)."""

    @abstractmethod
    async def purge(self, input: r.PurgeInstances) -> PurgeResult:
        """Delete every finished instance matching the query, calling ``input.progress`` where it can."""

    @abstractmethod
    async def hub_exists(self, input: r.HubExists) -> bool:
        """Whether the task hub exists."""

    @abstractmethod
    async def delete_hub(self, input: r.DeleteHub) -> None:
        """Delete the task hub and everything in it (TaskHubNotFound when there is none)."""

    @property
    def warnings(self) -> tuple[str, ...]:
        """What this transport noticed about the hub (none by default)."""
        return ()

    # --- lifetime --------------------------------------------------------------

    async def aclose(self) -> None:
        """Release connections. The manager calls it once when closed."""

    def unsupported(self, operation: str, instead: str) -> NoReturn:
        """Refuse an operation this transport cannot carry out, saying what to use instead."""
        raise NotSupportedByTransport(operation, self.description, instead)


#: Every operation of the protocol, by name (what a transport must implement).
OPERATIONS: frozenset[str] = frozenset(Transport.__abstractmethods__)
