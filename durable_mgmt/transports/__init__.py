"""How an ``InstanceManager`` reaches a task hub: one typed method per operation (``base.Transport``).

    Transport
    ├── StorageTransport   the task hub in Azure Storage, directly (CLI, webhooks, tests, scripts)
    └── BindingTransport   the durable client binding: the host's management API (inside the app)
"""

from .base import OPERATIONS, Transport
from .binding import BindingTransport
from .storage import StorageTransport

__all__ = ["Transport", "OPERATIONS", "StorageTransport", "BindingTransport"]
