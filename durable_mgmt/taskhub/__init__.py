"""The Azure Storage task hub: the one package that knows how a hub is laid out.

Public names: ``TaskHub`` (clients and lifecycle), ``TaskHubClient``
(storage-level management operations), ``StorageAccount`` (connection
strings), ``TaskHubNames`` (every name of a hub).
"""

from .hub import TaskHub, TaskHubInfo
from .names import TaskHubNames, escape_key, partition_index, unescape_key, validate_hub_name
from .operations import TaskHubClient
from .storage import StorageAccount

__all__ = ["TaskHub", "TaskHubInfo", "TaskHubClient", "TaskHubNames", "StorageAccount", "escape_key",
           "unescape_key", "partition_index", "validate_hub_name"]
