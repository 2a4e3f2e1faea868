"""Shared fixtures: one real, in-memory Azurite per test session, on free loopback ports.

A test that needs storage fails (never skips) when Azurite cannot start.
"""

from __future__ import annotations

import itertools
import os
import uuid

import pytest

from durable_mgmt.taskhub import StorageAccount, TaskHub, TaskHubClient
from funchost.azurite import Azurite

_counter = itertools.count()


@pytest.fixture(scope="session")
def azurite():
    server = Azurite.start()  # raises AzuriteError with Azurite's own output if it cannot start
    yield server
    server.stop()


@pytest.fixture(scope="session")
def account(azurite) -> StorageAccount:
    return azurite.account


@pytest.fixture(scope="session")
def connection_string(azurite) -> str:
    return azurite.connection_string


@pytest.fixture
def hub_name() -> str:
    # Unique per test: tests share one Azurite but never a task hub.
    return f"T{os.getpid()}x{next(_counter)}{uuid.uuid4().hex[:6]}"


@pytest.fixture
async def hub(account, hub_name):
    async with TaskHub(account, hub_name) as h:
        await h.create_if_not_exists()
        yield h
        await h.delete()


@pytest.fixture
async def client(hub) -> TaskHubClient:
    return TaskHubClient(hub)
