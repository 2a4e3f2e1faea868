"""durable_mgmt: manage Durable Functions orchestration instances from Python."""

from .errors import (ConcurrencyConflict, DurableError, InstanceAlreadyExists, InstanceNotFailed, InstanceNotFound,
                     InstanceNotRunning, InstanceNotTerminal, InvalidFilter, InvalidHubName, InvalidInput,
                     InvalidInstanceId, InvalidSetting, ManagementApiError, NotFound, StorageRefused,
                     StorageUnavailable, TaskHubNotFound, WaitTimeout, WrongState, http_status_of)
from .manager import InstanceManager
from .models import (InstanceQuery, InstanceStatus, ManagementUrls, Page, PurgeProgress, PurgeResult,
                     RuntimeStatus)

__all__ = [
    "InstanceManager", "ManagementUrls", "WaitTimeout",
    "InstanceQuery", "InstanceStatus", "Page", "PurgeProgress", "PurgeResult", "RuntimeStatus",
    "DurableError", "InvalidInput", "InvalidHubName", "InvalidInstanceId", "InvalidFilter", "InvalidSetting",
    "NotFound", "InstanceNotFound", "TaskHubNotFound", "WrongState", "InstanceAlreadyExists",
    "InstanceNotRunning", "InstanceNotFailed", "InstanceNotTerminal", "ConcurrencyConflict",
    "StorageRefused", "StorageUnavailable", "ManagementApiError", "http_status_of",
]
