"""Shared fixtures: one real, in-memory Azurite per test session, on free loopback ports.

A test that needs storage fails (never skips) when Azurite cannot start.

Under pytest-xdist (``make test`` runs ``-n 3 --dist loadscope``) each worker is its own session: its own
Azurite, its own dashboard hub. See ``pytest_xdist_make_scheduler`` below for how tests are split.
"""

from __future__ import annotations

import itertools
import os
import uuid

import pytest

from durable_mgmt.taskhub import StorageAccount, TaskHub, TaskHubClient
from funchost.azurite import Azurite

_counter = itertools.count()

# The slowest units first, so no worker starts a long one last (longest-processing-time-first), from a
# --durations run under xdist: the CLI's modules (a Python process per command), the 1,000-2,000 instance
# purges, the engine's worker processes, the dashboard's filled hub and browser. Anything not listed
# follows in collection order; a stale list only costs balance, never a test.
_HEAVY_FIRST = (
    "tests/test_cli_purge.py",
    "tests/test_taskhub_storage.py",
    "tests/conformance/test_corpus_cli.py",
    "tests/test_cli_bulk.py",
    "tests/test_engine_processes.py",
    "tests/dashboard",
    "tests/test_cli_commands.py",
    "tests/test_bulk_engine.py",
    "tests/test_cli_errors.py",
    "tests/test_cli_hub_choice.py",
    "tests/conformance/test_partitions.py",
    "tests/security/test_inputs.py",
    "tests/security/test_doors.py",
    "tests/test_manager.py",
)


def _work_unit(nodeid: str) -> str:
    """A test's xdist work unit: its module (module-scoped hosts start once), except that the dashboard's
    modules are one unit, since they share one session-scoped filled hub (tests/dashboard/conftest.py)."""
    path = nodeid.split("::", 1)[0]
    return "tests/dashboard" if path.startswith("tests/dashboard/") else path


try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:  # pytest-xdist is a dev dependency; without it the suite runs in one process
    LoadScopeScheduling = None

if LoadScopeScheduling is not None:

    class _ModuleScheduling(LoadScopeScheduling):
        """--dist loadscope, by module as above (not by class), heaviest units queued first."""

        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

        def _assign_work_unit(self, node) -> None:
            for unit in reversed(_HEAVY_FIRST):  # the next unit handed out is the heaviest one left
                if unit in self.workqueue:
                    self.workqueue.move_to_end(unit, last=False)
            super()._assign_work_unit(node)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(config, log):
        if config.getvalue("dist") == "loadscope":
            return _ModuleScheduling(config, log)
        return None


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
