"""The one error tree of durable_mgmt.

Everything this package raises on purpose derives from ``DurableError``;
third-party storage errors are translated once, inside the task hub layer
(``durable_mgmt.taskhub.storage.map_storage_errors``), so callers never see
Azure SDK (azure.core) exception types.

    DurableError
    ├── InvalidInput                    a value given by the caller is not allowed
    │   ├── InvalidHubName
    │   ├── InvalidInstanceId
    │   ├── InvalidFilter               a query/purge filter value is malformed
    │   ├── InvalidSetting              a configuration value is missing or malformed
    │   │   └── NotSupportedByTransport an operation this transport cannot carry out (e.g. a count
    │   │                               over the client binding); names what to use instead
    │   └── StorageRefused              Azure Storage refused a value as invalid (HTTP 400, 413...)
    ├── NotFound
    │   ├── InstanceNotFound
    │   ├── TaskHubNotFound
    │   └── JobNotFound                 no bulk job with that id in the hub's jobs table
    ├── WrongState                      the instance exists but cannot do that now
    │   ├── InstanceAlreadyExists       start of an id that is Pending/Running/Suspended
    │   ├── InstanceNotRunning          terminate/raise/suspend of a finished instance
    │   ├── InstanceNotFailed           rewind of an instance that did not fail
    │   └── InstanceNotTerminal         purge of an instance still in flight
    ├── ConcurrencyConflict             another worker changed the history first (409/412)
    │   └── JobBusy                     another process is running that bulk job now
    ├── StorageUnavailable              storage could not be reached or failed
    ├── ManagementApiError              the HTTP management API answered unexpectedly
    └── WaitTimeout                     the instance did not finish within the wait
"""

from __future__ import annotations


class DurableError(Exception):
    """Root of every error raised by durable_mgmt."""


class InvalidInput(DurableError, ValueError):
    """A value given by the caller is not allowed; nothing was changed."""


class InvalidHubName(InvalidInput):
    pass


class InvalidInstanceId(InvalidInput):
    pass


class InvalidFilter(InvalidInput):
    pass


class InvalidSetting(InvalidInput):
    pass


class NotSupportedByTransport(InvalidSetting):
    """The manager's transport cannot carry out this operation (the client binding's HTTP API has no
    server-side count, raw history, hub deletion or jobs); the message says what to use instead."""

    def __init__(self, operation: str, transport: str, instead: str):
        self.operation = operation
        self.transport = transport
        super().__init__(f"{operation} is not supported over the {transport}: {instead}")


class StorageRefused(InvalidInput):
    """Azure Storage refused a request as malformed or too large: a value that passed the checks here
    still broke one of its rules. Nothing was written by that request."""


class NotFound(DurableError, LookupError):
    """The thing asked for does not exist."""


class InstanceNotFound(NotFound):
    def __init__(self, instance_id: str, message: str | None = None):
        self.instance_id = instance_id
        super().__init__(message or f"No orchestration instance with id {instance_id!r} exists in this task hub.")


class TaskHubNotFound(NotFound):
    def __init__(self, hub_name: str, message: str | None = None):
        self.hub_name = hub_name
        super().__init__(
            message
            or f"Task hub {hub_name!r} does not exist in this storage account "
            "(check --task-hub-name, host.json extensions.durableTask.hubName, and the connection setting)."
        )


class JobNotFound(NotFound):
    def __init__(self, job_id: str, why: str = "in this task hub"):
        self.job_id = job_id
        super().__init__(f"No bulk job with id {job_id!r} {why} (list them with `funcpy durable jobs list`).")


class WrongState(DurableError):
    """The instance exists, but its runtime status does not allow the operation."""

    def __init__(self, instance_id: str, status: object, message: str):
        self.instance_id = instance_id
        self.status = status
        super().__init__(message)


class InstanceAlreadyExists(WrongState):
    pass


class InstanceNotRunning(WrongState):
    pass


class InstanceNotFailed(WrongState):
    pass


class InstanceNotTerminal(WrongState):
    pass


class ConcurrencyConflict(DurableError):
    """Another worker wrote the same history first; this work item must be abandoned."""


class JobBusy(ConcurrencyConflict):
    """Another process holds the lease of the bulk job (it is running it now)."""


class StorageUnavailable(DurableError):
    """Azure Storage could not be reached, or answered with an unexpected error."""


class ManagementApiError(DurableError):
    """The durable HTTP management API answered with an unexpected status."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


class WaitTimeout(DurableError, TimeoutError):
    """``wait_for_completion`` gave up; ``status`` is the last status seen."""

    def __init__(self, instance_id: str, timeout: float, status: object):
        self.instance_id = instance_id
        self.timeout = timeout
        self.status = status
        super().__init__(f"Instance {instance_id!r} did not finish within {timeout:g} s "
                         f"(it is {getattr(getattr(status, 'runtime_status', None), 'value', 'unknown')}).")


# The status the durable HTTP management API answers for each error, most specific first. 409 (start of
# an id still running) and 412 (purge of one) are this project's choices where the reference names none.
_HTTP_STATUS: tuple[tuple[type[DurableError], int], ...] = (
    (NotFound, 404),
    (InstanceAlreadyExists, 409),
    (InstanceNotTerminal, 412),
    (InstanceNotRunning, 410),
    (InstanceNotFailed, 410),
    (InvalidInput, 400),
    (ConcurrencyConflict, 409),
    (StorageUnavailable, 503),
    (WaitTimeout, 504),
)


def http_status_of(error: DurableError) -> int:
    """The HTTP status that reports ``error`` (500 for anything unexpected)."""
    return next((code for cls, code in _HTTP_STATUS if isinstance(error, cls)), 500)
