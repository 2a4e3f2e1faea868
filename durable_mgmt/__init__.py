"""durable_mgmt: manage Durable Functions orchestration instances from Python."""

from .errors import (ConcurrencyConflict, DurableError, InstanceAlreadyExists, InstanceNotFailed, InstanceNotFound,
                     InstanceNotRunning, InstanceNotTerminal, InvalidFilter, InvalidHubName, InvalidInput,
                     InvalidInstanceId, InvalidSetting, JobBusy, JobNotFound, ManagementApiError, NotFound,
                     StorageRefused, StorageUnavailable, TaskHubNotFound, WaitTimeout, WrongState, http_status_of)
from .jobs import (BulkAction, BulkRequest, CountRequest, CountResult, ExportRequest, GroupBy, InstanceOutcome, JobInfo,
                   JobState, Outcome, QueryPlan)
from .manager import InstanceManager
from .models import (InstanceQuery, InstanceStatus, ManagementUrls, Page, PurgeProgress, PurgeResult,
                     RuntimeStatus)
from .query import Query, QuerySyntaxError

__all__ = [
    "InstanceManager", "ManagementUrls", "WaitTimeout",
    "InstanceQuery", "InstanceStatus", "Page", "PurgeProgress", "PurgeResult", "RuntimeStatus",
    "DurableError", "InvalidInput", "InvalidHubName", "InvalidInstanceId", "InvalidFilter", "InvalidSetting",
    "NotFound", "InstanceNotFound", "TaskHubNotFound", "WrongState", "InstanceAlreadyExists",
    "InstanceNotRunning", "InstanceNotFailed", "InstanceNotTerminal", "ConcurrencyConflict",
    "StorageRefused", "StorageUnavailable", "ManagementApiError", "http_status_of",
    "Query", "QuerySyntaxError", "QueryPlan", "CountRequest", "CountResult", "GroupBy", "BulkAction", "BulkRequest",
    "ExportRequest", "JobInfo", "JobState", "Outcome", "InstanceOutcome", "JobBusy", "JobNotFound",
]
