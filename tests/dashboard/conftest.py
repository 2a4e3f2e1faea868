"""The dashboard's browser fixtures: one headless Debian chromium per session, one app host and one
standalone server per module, all on one task hub the engine fills.

Chromium comes from Debian (``apt-get install chromium``; ``make setup`` does it as root): Playwright's
own browser download cannot reach the network here, so Playwright drives /usr/bin/chromium.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from durable_mgmt import InstanceManager, RuntimeStatus
from durable_mgmt.dashboard import DashboardConfig, StandaloneServer
from durable_mgmt.dashboard.blueprint import close_managers
from funchost.host import LocalHost

APP = Path(__file__).parent / "app"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
CHROMIUM = os.environ.get("DASHBOARD_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DOORS = ("standalone", "local", "blueprint")
XSS_ID = 'xss-<img id="pwned-id" src="x">'
XSS_CUSTOM = '<script id="pwned-script">document.title="pwned"</script><b id="pwned-custom">bold</b>'


@pytest.fixture(scope="session")
async def browser():
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        pytest.fail(f"No chromium at {CHROMIUM}: install Debian's package (apt-get update && apt-get install -y "
                    "chromium; `make setup` does it when run as root), or set DASHBOARD_TEST_CHROMIUM.")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("The playwright package is missing: run `make setup` (it is in the dev extras).")
    pw = await async_playwright().start()
    browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield browser
    await browser.close()
    await pw.stop()


@dataclass
class Hub:
    """The module's task hub, the manager on it, and the dashboard's URL per door."""

    manager: InstanceManager
    urls: dict[str, str]
    host: LocalHost
    ids: dict[str, str] = field(default_factory=dict)

    async def wait(self, instance_id: str, *statuses: RuntimeStatus, timeout: float = 30.0):
        wanted = set(statuses) or {RuntimeStatus.COMPLETED, RuntimeStatus.FAILED, RuntimeStatus.TERMINATED}
        deadline = asyncio.get_running_loop().time() + timeout
        last = None
        while asyncio.get_running_loop().time() < deadline:
            if await self.manager.exists(instance_id):
                last = await self.manager.status(instance_id, show_input=False)
                if last.runtime_status in wanted:
                    return last
            await asyncio.sleep(0.1)
        raise AssertionError(f"{instance_id} did not reach {wanted} in {timeout}s; last: {last}")


@pytest.fixture(scope="session")
async def dash_hub(connection_string, azurite):
    """The test app (with the dashboard Blueprint) on a fresh hub, and a standalone server on the same hub.

    One per session: every dashboard test module shares it (starting and filling it is the slow part).
    """
    hub_name = f"Dash{os.getpid()}x{os.urandom(3).hex()}"
    mp = pytest.MonkeyPatch()
    # The Blueprint resolves the app's hub as a deployed app does: from the environment and host.json
    # (settings of its own names, which no other test reads).
    mp.setenv("DASHBOARD_TEST_STORAGE", connection_string)
    mp.setenv("DASHBOARD_TEST_HUB", hub_name)
    host = LocalHost(APP, port=0, connection_string=connection_string, hub_name=hub_name, environ=dict(os.environ))
    await host.start()
    # As `funcpy monitor --webhook-base`: the standalone server shows management URLs of the app's host.
    manager = await InstanceManager.connect(connection_string, hub_name, webhook_base=host.webhook_base_url)
    server = StandaloneServer(manager, DashboardConfig(), port=0)
    await server.start()
    hub = Hub(manager, {"standalone": server.url, "local": host.base_url + "/dashboard/",
                        "blueprint": host.base_url + "/api/dashboard/"}, host)
    try:
        await _fill(hub)
        yield hub
    finally:
        await server.stop()
        await manager.aclose()
        await host.stop()
        await close_managers()  # the Blueprint's, opened on first use in this loop
        mp.undo()


async def _fill(hub: Hub) -> None:
    """Instances for every test, per door where a test changes them; all started, then awaited."""
    m = hub.manager
    done = []
    for i in range(5):
        done.append(await m.start("HelloSequence", instance_id=f"hello-{i}"))
    done.append(await m.start("TimerParent", instance_id="parent-1"))
    for door in DOORS:
        done.append(await m.start("Fails", instance_id=f"fail-{door}"))
        done.append(await m.start("HelloSequence", instance_id=f"purge-{door}"))
        done.append(await m.start("HelloSequence", instance_id=f"restart-{door}"))
        for what in ("event", "suspend", "term"):
            await m.start("WaitForApproval", instance_id=f"act-{door}-{what}")
        for k in range(4):
            await m.start("WaitForApproval", instance_id=f"bulk-{door}-{k}")
        for k in range(2):  # for a job resumed from the jobs page
            await m.start("WaitForApproval", instance_id=f"job-{door}-{k}")
        await m.start("WaitForApproval", instance_id=f"csrf-{door}")
    for k in range(3):  # for a job another process holds while the page steps it
        await m.start("WaitForApproval", instance_id=f"lease-{k}")
    # Markup in an id, a custom status and an input: each must render as text.
    await m.start("WaitForApproval", XSS_CUSTOM, instance_id=XSS_ID)
    for instance_id in done:
        await hub.wait(instance_id)
    await hub.wait("parent-1-child")
    await hub.wait("lease-2", RuntimeStatus.RUNNING)
    for door in DOORS:
        await hub.wait(f"act-{door}-term", RuntimeStatus.RUNNING)
        await hub.wait(f"bulk-{door}-3", RuntimeStatus.RUNNING)
        await hub.wait(f"job-{door}-1", RuntimeStatus.RUNNING)


@pytest.fixture(params=DOORS)
def door(request) -> str:
    return request.param


@pytest.fixture
async def page(browser):
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(15_000)
    yield page
    await context.close()


async def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
