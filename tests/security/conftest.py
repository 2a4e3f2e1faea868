"""Two real hosts serving the repository's function_app.py, per test module: anonymous (the default of
`funcpy start`) and with --enable-auth. Orchestrations do not run (run_orchestrations=False), so every
message a request sends stays on its queue where the storage snapshot sees it."""

from __future__ import annotations

import os
import uuid

import pytest

from .support import REPO, Door, serving


def _hub(tag: str) -> str:
    return f"Sec{tag}{os.getpid()}{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
async def anonymous(connection_string):
    async with serving(REPO, connection_string, _hub("A"), cors=["http://allowed.example"]) as host:
        yield Door("anonymous", host)


@pytest.fixture(scope="module")
async def authed(connection_string):
    async with serving(REPO, connection_string, _hub("K"), enable_auth=True) as host:
        yield Door("auth", host, key=host.keys.master)


@pytest.fixture(params=["anonymous", "authed"])
def door(request) -> Door:
    """Each case runs at both doors."""
    return request.getfixturevalue(request.param)
