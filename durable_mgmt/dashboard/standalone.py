"""``funcpy monitor``'s server: the dashboard alone, on one task hub in storage."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import replace
from typing import AsyncIterator

from aiohttp import web

from ..manager import InstanceManager
from ..taskhub import StorageAccount
from .aiohttp_door import mount
from .config import DashboardConfig
from .core import Dashboard


class StandaloneServer:
    """``async with StandaloneServer(manager, config, port=0) as server: server.url``."""

    def __init__(self, manager: InstanceManager, config: DashboardConfig | None = None, *,
                 host: str = "127.0.0.1", port: int = 7072):
        self.manager = manager
        self.config = config or DashboardConfig()
        self._bind = (host, port)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        host = self._bind[0]
        shown = "localhost" if host in ("127.0.0.1", "::1", "0.0.0.0", "::") else host
        return f"http://{shown}:{self.port}/"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)

        async def manager() -> InstanceManager:
            return self.manager

        mount(app, Dashboard(manager, self.config), "/")
        return app

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self._bind[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(self._bind)
        except OSError as e:
            sock.close()
            from ..errors import InvalidSetting

            raise InvalidSetting(f"Cannot listen on {self._bind[0]}:{self._bind[1]}: {e.strerror or e}; "
                                 "choose another --port.") from None
        self.port = sock.getsockname()[1]
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "StandaloneServer":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()


@contextlib.asynccontextmanager
async def serve(account: StorageAccount, hub_name: str, config: DashboardConfig, *, host: str, port: int,
                webhook_base: str | None = None) -> AsyncIterator[StandaloneServer]:
    """Open the hub, serve the dashboard on it, close both on exit."""
    manager = await InstanceManager.connect(account, hub_name, webhook_base=webhook_base)
    try:
        async with StandaloneServer(manager, replace(config, webhook_base=webhook_base), host=host,
                                    port=port) as server:
            yield server
    finally:
        await manager.aclose()


async def run_forever() -> None:
    await asyncio.Event().wait()
