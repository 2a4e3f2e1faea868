"""How an ``InstanceManager`` reaches a task hub: one method to execute a request, one to close.

    Transport
    ├── StorageTransport   the task hub in Azure Storage, directly (CLI, tests, scripts)
    └── BindingTransport   the durable client binding: the host's management API (inside the app)
"""

from __future__ import annotations

from typing import Any

from ..requests import Request


class Transport:
    async def execute(self, request: Request) -> Any:
        """Carry out ``request``; returns its result or raises a durable_mgmt error."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections. The manager calls it once when closed."""


from .binding import BindingTransport  # noqa: E402
from .storage import StorageTransport  # noqa: E402

__all__ = ["Transport", "StorageTransport", "BindingTransport"]
