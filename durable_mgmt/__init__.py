"""durable_mgmt: manage Durable Functions orchestration instances from Python.

Everything an app or a tool needs is exported here (the modules behind it are
implementation details): ``InstanceManager`` and its typed inputs and results,
the one error tree, the filter language, bulk jobs, and the helpers an app's
HTTP triggers use to read requests as the management API does
(``QueryString``, ``parse_json_body``, ``check_wait``, ``CONTINUATION_HEADER``).
"""

from .errors import (ConcurrencyConflict, DurableError, InstanceAlreadyExists, InstanceNotFailed, InstanceNotFound,
                     InstanceNotRunning, InstanceNotTerminal, InvalidFilter, InvalidHubName, InvalidInput,
                     InvalidInstanceId, InvalidSetting, JobBusy, JobNotFound, ManagementApiError, NotFound,
                     NotSupportedByTransport, StorageRefused, StorageUnavailable, TaskHubNotFound, WaitTimeout,
                     WrongState, http_status_of)
from .jobs import (BulkAction, BulkRequest, CountRequest, CountResult, ExportRequest, GroupBy, InstanceOutcome, JobInfo,
                   JobState, Outcome, QueryPlan)
from .limits import check_wait, parse_json_body
from .manager import InstanceManager
from .models import (EntityState, InstanceQuery, InstanceStatus, ManagementUrls, Page, PurgeProgress, PurgeResult,
                     RuntimeStatus)
from .query import Query, QuerySyntaxError
from .query_params import CONTINUATION_HEADER, QueryString
from .taskhub import StorageAccount
from .transports import Transport

__all__ = [
    "InstanceManager", "ManagementUrls", "WaitTimeout", "EntityState", "Transport", "StorageAccount",
    "InstanceQuery", "InstanceStatus", "Page", "PurgeProgress", "PurgeResult", "RuntimeStatus",
    "DurableError", "InvalidInput", "InvalidHubName", "InvalidInstanceId", "InvalidFilter", "InvalidSetting",
    "NotSupportedByTransport", "NotFound", "InstanceNotFound", "TaskHubNotFound", "WrongState",
    "InstanceAlreadyExists", "InstanceNotRunning", "InstanceNotFailed", "InstanceNotTerminal", "ConcurrencyConflict",
    "StorageRefused", "StorageUnavailable", "ManagementApiError", "http_status_of",
    "Query", "QuerySyntaxError", "QueryPlan", "CountRequest", "CountResult", "GroupBy", "BulkAction", "BulkRequest",
    "ExportRequest", "JobInfo", "JobState", "Outcome", "InstanceOutcome", "JobBusy", "JobNotFound",
    "QueryString", "CONTINUATION_HEADER", "parse_json_body", "check_wait",
]
