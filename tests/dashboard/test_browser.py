"""The dashboard in a real headless chromium, for each door: standalone, the local host, the Blueprint."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

from durable_mgmt import BulkRequest, InstanceNotFound, JobState, RuntimeStatus

from .conftest import XSS_CUSTOM, XSS_ID, shot

import pytest
from playwright.async_api import expect


def url(hub, door: str, path: str = "") -> str:
    return hub.urls[door] + path


async def _hello_in_pages_of_two(page, address: str) -> None:
    """The five hello- instances, two per page, following the Next links (the token goes into the URL)."""
    await page.goto(address)
    assert await page.locator("tr.row td.id").all_inner_texts() == ["hello-0", "hello-1"]
    await page.click("#next-page")
    await page.wait_for_url("**ct=**")
    assert await page.locator("tr.row td.id").all_inner_texts() == ["hello-2", "hello-3"]
    await page.click("#next-page")
    assert await page.locator("tr.row td.id").all_inner_texts() == ["hello-4"]
    assert await page.locator("#next-page").count() == 0


async def test_list_filters_in_the_url_and_pages(dash_hub, door, page):
    await page.goto(url(dash_hub, door))
    await page.fill("#f-prefix", "hello-")
    await page.check("input[name=status][value=Completed]")
    await page.click("#apply")
    await page.wait_for_url("**prefix=hello-**")
    assert "status=Completed" in page.url  # the view is a link
    ids = await page.locator("tr.row td.id").all_inner_texts()
    assert ids == [f"hello-{i}" for i in range(5)]  # storage order: by id

    # Two per page: the continuation token of storage goes into the URL of the next page.
    await _hello_in_pages_of_two(page, url(dash_hub, door, "?range=all&prefix=hello-&size=2"))

    # Orchestrator name and custom status filters; a Running-only filter excludes the finished ones.
    await page.goto(url(dash_hub, door, "?range=all&name=TimerParent"))
    assert await page.locator("tr.row td.id").all_inner_texts() == ["parent-1"]
    await page.goto(url(dash_hub, door, "?range=1h&prefix=act-&status=Running&status=Suspended&custom=waiting"))
    listed = await page.locator("tr.row td.id").all_inner_texts()
    assert listed and all(i.startswith("act-") for i in listed)

    # Input and output on demand.
    await page.goto(url(dash_hub, door, "?range=all&prefix=hello-0"))
    await page.click("button.show-output")
    await expect(page.locator("tr.row .value")).to_contain_text("Hello Tokyo!")

    # Auto-refresh: the rows follow storage without a reload.
    iid = f"refresh-{door}"
    await dash_hub.manager.start("WaitForApproval", instance_id=iid)
    await page.goto(url(dash_hub, door, f"?range=1h&prefix={iid}&refresh=2"))
    status = page.locator("tr.row .status")
    await expect(status).to_have_text("Running", timeout=20_000)
    await dash_hub.manager.terminate(iid, "refresh test")
    await expect(status).to_have_text("Terminated", timeout=20_000)
    assert "refresh=2" in page.url

    # A bad filter value is reported, not a crash.
    await page.goto(url(dash_hub, door, "?range=2y&status=Sleeping"))
    errors = await page.locator("ul.errors").inner_text()
    assert "Unknown time range '2y'" in errors and "Unknown runtime status 'Sleeping'" in errors


async def test_instance_page_timeline_and_links(dash_hub, door, page):
    await page.goto(url(dash_hub, door, "?range=all&name=TimerParent"))
    await page.click("text=parent-1")
    assert await page.locator("#instance-status").inner_text() == "Completed"
    spans = page.locator("#gantt tr.span")
    kinds = await page.locator("#gantt tr.span td:first-child").all_inner_texts()
    assert kinds == ["timer", "suborchestration"]
    durations = await page.locator("#gantt td.span-duration").all_inner_texts()
    assert all(d.endswith(("ms", " s")) for d in durations), durations
    assert await spans.nth(0).locator("svg rect").count() == 1
    events = await page.locator("#history td.event-type").all_inner_texts()
    # Every stored event, in order (the raw history, OrchestratorStarted markers included).
    assert {"ExecutionStarted", "TimerCreated", "TimerFired", "SubOrchestrationInstanceCreated",
            "SubOrchestrationInstanceCompleted"} <= set(events) and events[-2:] == ["ExecutionCompleted",
                                                                                   "OrchestratorCompleted"]
    assert "statusQueryGetUri" in await page.locator("#management-urls").inner_text()
    if door == "local":
        await shot(page, "instance")

    async with page.expect_download() as info:
        await page.click("#history-download")
    download = await info.value
    history = json.loads(open(await download.path(), encoding="utf-8").read())
    assert history["instanceId"] == "parent-1"
    assert [e["EventType"] for e in history["history"]][0] in ("OrchestratorStarted", "ExecutionStarted")

    await page.click("a.child-link")
    assert await page.locator("#instance-id").inner_text() == "parent-1-child"
    assert [*await page.locator("#gantt tr.span td:first-child").all_inner_texts()] == ["activity", "activity"]
    await page.click("#parent-link")
    assert await page.locator("#instance-id").inner_text() == "parent-1"

    await page.goto(url(dash_hub, door, "instance?id=fail-" + door))
    assert "orchestrator broke on purpose" in await page.locator(".values").inner_text()


async def _act(page, action: str, instance_id: str, **fields: str) -> str:
    form = page.locator(f"#form-{action}")
    for name, value in fields.items():
        await form.locator(f"[name={name}]").fill(value)
    messages = []

    async def confirm(dialog):
        messages.append(dialog.message)
        await dialog.accept()

    page.once("dialog", confirm)
    await form.locator("button").click()
    result = page.locator("#action-result")
    await result.wait_for()
    assert messages == [f"{form_label(action)} instance {instance_id}?"]  # the confirmation names the instance
    text = await result.inner_text()
    await page.evaluate("document.getElementById('action-area').innerHTML = ''")
    return text


async def accept(dialog) -> None:
    await dialog.accept()


def form_label(action: str) -> str:
    return {"terminate": "Terminate", "raise": "Raise event", "suspend": "Suspend", "resume": "Resume",
            "rewind": "Rewind", "restart": "Restart", "purge": "Purge history"}[action]


async def test_every_action(dash_hub, door, page):
    m = dash_hub.manager

    # Raise event: data that is not JSON is refused in the page, and nothing reaches the instance.
    iid = f"act-{door}-event"
    await page.goto(url(dash_hub, door, "instance?id=" + quote(iid)))
    form = page.locator("#form-raise")
    await form.locator("[name=event_name]").fill("Approval")
    await form.locator("[name=event_data]").fill("{not json")
    await form.locator("button").click()  # refused before the confirmation: no dialog opens
    await page.locator("#flash.error").wait_for()
    assert "not JSON" in await page.locator("#flash").inner_text()
    assert (await m.status(iid)).runtime_status is RuntimeStatus.RUNNING
    text = await _act(page, "raise", iid, event_name="Approval", event_data='{"ok": true}')
    assert "Event 'Approval' sent" in text
    assert (await dash_hub.wait(iid)).output == {"approval": {"ok": True}}

    iid = f"act-{door}-suspend"
    await page.goto(url(dash_hub, door, "instance?id=" + quote(iid)))
    assert "requested" in await _act(page, "suspend", iid, reason="maintenance")
    await dash_hub.wait(iid, RuntimeStatus.SUSPENDED)
    assert "requested" in await _act(page, "resume", iid, reason="done")
    await dash_hub.wait(iid, RuntimeStatus.RUNNING)

    iid = f"act-{door}-term"
    await page.goto(url(dash_hub, door, "instance?id=" + quote(iid)))
    assert "requested" in await _act(page, "terminate", iid, reason="from the dashboard")
    assert (await dash_hub.wait(iid, RuntimeStatus.TERMINATED)).output == "from the dashboard"
    # The library's error, as it is: a finished instance cannot be terminated again.
    await page.goto(url(dash_hub, door, "instance?id=" + quote(iid)))
    text = await _act(page, "terminate", iid, reason="again")
    assert iid in text and "Terminated" in text

    iid = f"fail-{door}"
    await page.goto(url(dash_hub, door, "instance?id=" + iid))
    assert "Rewind of" in await _act(page, "rewind", iid, reason="retry")

    iid = f"restart-{door}"
    await page.goto(url(dash_hub, door, "instance?id=" + iid))
    text = await _act(page, "restart", iid)
    new_id = text.split(" as ")[1].split(".")[0]
    assert (await dash_hub.wait(new_id)).name == "HelloSequence"

    iid = f"purge-{door}"
    await page.goto(url(dash_hub, door, "instance?id=" + iid))
    assert "Purged" in await _act(page, "purge", iid)
    with pytest.raises(InstanceNotFound):
        await m.status(iid)
    response = await page.goto(url(dash_hub, door, "instance?id=" + iid))
    assert response.status == 404 and iid in await page.locator("#error-message").inner_text()


async def test_query_box_filters_pages_and_explains(dash_hub, door, page):
    hello = "name = 'HelloSequence' AND instanceId STARTS_WITH 'hello-'"
    await page.goto(url(dash_hub, door, "?range=all"))
    await page.fill("#f-query", hello)
    await page.click("#apply")
    await page.wait_for_url("**q=**")
    assert await page.locator("tr.row td.id").all_inner_texts() == [f"hello-{i}" for i in range(5)]
    assert hello in await page.locator("#query-run").inner_text()  # the view is a link, the query is shown

    # The form's fields and the box are one query; pages follow the library's continuation tokens.
    await _hello_in_pages_of_two(page, url(dash_hub, door, "?range=all&size=2&status=Completed&q=" + quote(hello)))

    # The plan, on request: what storage evaluates and what is filtered here.
    mixed = "instanceId STARTS_WITH 'hello-' AND NOT (customStatus CONTAINS 'zzz')"
    await page.goto(url(dash_hub, door, "?range=all&q=" + quote(mixed)))
    assert len(await page.locator("tr.row td.id").all_inner_texts()) == 5
    await page.click("#show-plan")
    await expect(page.locator("#plan-pushed")).to_contain_text("instanceId STARTS_WITH 'hello-'")
    await expect(page.locator("#plan-here")).to_contain_text("customStatus NOT CONTAINS 'zzz'")
    assert "PartitionKey" in await page.locator("#plan-odata").inner_text()
    if door == "local":
        await shot(page, "query")

    # A malformed query: its column, the failing character marked, and no rows.
    await page.goto(url(dash_hub, door, "?range=all&q=" + quote("status = Running AND (name = 'x'")))
    assert await page.locator("#query-error-column").inner_text() == "33"
    assert "expected ')'" in await page.locator("#query-error-reason").inner_text()
    assert await page.locator("tr.row").count() == 0
    assert await page.locator("#f-query").input_value() == "status = Running AND (name = 'x'"  # kept to fix

    # Markup in the query text is text: in the box, in the error, in the plan.
    markup = 'name = \'<img id="pwned-q" src="x">\''
    await page.goto(url(dash_hub, door, "?range=all&q=" + quote(markup)))
    await page.click("#show-plan")
    await expect(page.locator("#plan-pushed")).to_contain_text('<img id="pwned-q"')
    await page.goto(url(dash_hub, door, "?range=all&q=" + quote('name = \'<img id="pwned-q" src="x">')))
    assert '<img id="pwned-q"' in await page.locator("#query-error").inner_text()
    assert await page.locator("#pwned-q").count() == 0


async def _start_bulk(page, label: str) -> str:
    await page.click("#bulk-preview")
    assert label in await page.locator("#bulk-count").inner_text()  # the count comes first
    page.once("dialog", accept)
    await page.click("#bulk-start")
    await page.locator("#job-finished").wait_for(timeout=60_000)
    return await page.locator("#job-link").inner_text()


async def test_bulk_terminate_runs_as_a_job_with_outcomes(dash_hub, door, page):
    prefix = f"bulk-{door}-"
    await page.goto(url(dash_hub, door, "?range=all&q=" + quote(f"instanceId STARTS_WITH '{prefix}'")))
    await page.select_option("#bulk-action", "terminate")
    await page.check("#scope-query")
    await page.fill("#bulk-reason", "bulk from the dashboard")
    await page.fill("#bulk-rate", "20")
    job_id = await _start_bulk(page, "Terminate 4 instances")
    assert "4 done" in await page.locator("#job-progress").inner_text()
    rows = await page.locator("#job-outcomes tr").all_inner_texts()
    assert sorted(r.split("\t")[:2] for r in rows) == [[f"{prefix}{k}", "done"] for k in range(4)]
    for k in range(4):
        assert (await dash_hub.wait(f"{prefix}{k}", RuntimeStatus.TERMINATED)).output == "bulk from the dashboard"
    info = (await dash_hub.manager.job(job_id)).info  # the same job the CLI lists (`funcpy durable jobs`)
    assert (info.state.value, info.matched, info.done) == ("Completed", 4, 4)

    # Selected rows (a query `instanceId IN (...)`): the same instances again; each one's skip says why.
    await page.goto(url(dash_hub, door, "?range=all&q=" + quote(f"instanceId STARTS_WITH '{prefix}'")))
    await page.check("#select-all")
    again = await _start_bulk(page, "Terminate 4 instances")
    assert "4 skipped" in await page.locator("#job-progress").inner_text()
    assert await page.locator("#job-outcomes tr.skipped").count() == 4
    assert "Terminated" in await page.locator("#job-outcomes tr.skipped").first.inner_text()

    # The jobs page lists both; a job's page shows its outcomes, filtered by kind.
    await page.click("#nav-jobs")
    listed = await page.locator("#jobs tr.job td.id").all_inner_texts()
    assert job_id in listed and again in listed
    await page.click(f"#jobs tr.job[data-id='{job_id}'] td.id a")
    assert await page.locator("#job-id").inner_text() == job_id
    assert await page.locator("#job-page-outcomes tr.done").count() == 4
    await page.click("nav.outcome-filter >> text=skipped")
    assert await page.locator("#job-page-outcomes td.empty").count() == 1
    if door == "local":
        await page.goto(url(dash_hub, door, f"job?id={job_id}"))
        await shot(page, "job")


async def test_jobs_resume_and_cancel_from_the_job_page(dash_hub, door, page):
    m = dash_hub.manager
    # Created by the library and never run (as a CLI run killed before its first step leaves it).
    job = await m.bulk(BulkRequest("terminate", f"instanceId STARTS_WITH 'job-{door}-'", reason="resumed"))
    await page.goto(url(dash_hub, door, f"job?id={job.id}"))
    assert await page.locator("#job-state").inner_text() == "Selecting"
    await page.click("#job-resume")
    await page.locator("#job-finished").wait_for(timeout=60_000)
    assert "2 done" in await page.locator("#job-progress").inner_text()
    for k in range(2):
        assert (await dash_hub.wait(f"job-{door}-{k}", RuntimeStatus.TERMINATED)).output == "resumed"

    # Cancel; markup in the job's stored fields shows as text.
    reason = '<img id="pwned-reason" src="x">'
    idle = await m.bulk(BulkRequest("suspend", 'instanceId = \'<img id="pwned-jq" src="x">\'', reason=reason))
    await page.goto(url(dash_hub, door, f"job?id={idle.id}"))
    assert await page.locator("#job-reason").inner_text() == reason
    assert '<img id="pwned-jq"' in await page.locator("#job-query").inner_text()
    page.once("dialog", accept)
    await page.click("#job-cancel")
    await expect(page.locator("#job-state")).to_have_text("Canceled")
    assert (await m.job(idle.id)).info.state is JobState.CANCELED
    await page.goto(url(dash_hub, door, "jobs"))
    assert await page.locator(f"#jobs tr.job[data-id='{idle.id}'] td.state").inner_text() == "Canceled"
    await page.goto(url(dash_hub, door, f"job?id={idle.id}"))
    assert await page.locator("#job-resume").count() == 0  # a canceled job is over
    for injected in ("#pwned-reason", "#pwned-jq"):
        assert await page.locator(injected).count() == 0


async def test_a_job_held_by_another_process_is_stepped_when_that_process_lets_go(dash_hub, page):
    # The page keeps no state and no lease between steps: while another process (the CLI's `jobs resume`, a
    # second worker) holds the job, a step says so and the page tries again; once it lets go, steps go on.
    # Door-independent (Dashboard.job_step), so one door.
    m = dash_hub.manager
    # One instance per checkpoint, ten seconds apart: the other process is mid-job when the page comes
    # (a stop takes effect between checkpoints: it finishes the instance it is waiting to act on).
    job = await m.bulk(BulkRequest("suspend", "instanceId STARTS_WITH 'lease-'", rate=0.1, batch_size=1))
    other = await m.job(job.id)  # another handle: its own lease owner, as another process has
    running = asyncio.ensure_future(other.run())
    try:
        while (await m.job(job.id)).info.state.value == "Selecting" and not running.done():
            await asyncio.sleep(0.1)
        await page.goto(url(dash_hub, "standalone", f"job?id={job.id}"))
        await page.click("#job-resume")
        await expect(page.locator("#job-busy")).to_contain_text("being run by another process")
        other.stop()  # stops after its chunk in flight (one instance) and releases the lease
        stopped = await running
    finally:
        if not running.done():
            other.stop()
            await running
    assert (stopped.state.value, stopped.done) == ("Interrupted", 2)  # the page does the rest
    await page.locator("#job-finished").wait_for(timeout=60_000)
    assert "3 done" in await page.locator("#job-progress").inner_text()
    for k in range(3):
        await dash_hub.wait(f"lease-{k}", RuntimeStatus.SUSPENDED)


async def test_overview_counts_and_histogram(dash_hub, door, page):
    await page.goto(url(dash_hub, door, "overview?range=all&prefix=hello-"))
    assert await page.locator("#count-total").inner_text() == "5"
    assert await page.locator(".count[data-status=Completed] .n").inner_text() == "5"
    note = page.locator("#histogram-note[data-total]")
    await note.wait_for()
    assert await note.get_attribute("data-total") == "5"
    # With a query in the box, the counts are InstanceManager.count of the whole query.
    await page.goto(url(dash_hub, door, "overview?range=all&q=" + quote("instanceId STARTS_WITH 'hello-' AND "
                                                                          "NOT (customStatus CONTAINS 'zzz')")))
    assert await page.locator("#count-total").inner_text() == "5"
    # ... and the chart counts the same query (InstanceManager.find), not every instance of the range.
    note = page.locator("#histogram-note[data-total]")
    await note.wait_for()
    assert await note.get_attribute("data-total") == "5"
    await page.goto(url(dash_hub, door, "overview?range=1h"))
    counts = await dash_hub.manager.transport.client.count()
    assert await page.locator("#count-total").inner_text() == str(sum(counts.values()))
    await page.locator("#histogram-note[data-total]").wait_for()
    if door == "local":
        await shot(page, "overview")
        await page.goto(url(dash_hub, door, "?range=all&size=15"))  # after the actions: every status
        await shot(page, "list")


async def test_stored_markup_renders_as_text(dash_hub, door, page):
    await page.goto(url(dash_hub, door, "?range=all&prefix=xss-"))
    assert await page.locator("tr.row td.id").all_inner_texts() == [XSS_ID]
    assert await page.locator("#pwned-id").count() == 0
    assert await page.locator("#pwned-custom").count() == 0
    assert XSS_CUSTOM[:40] in await page.locator("tr.row td.custom").inner_text()
    await page.click("tr.row td.id a")
    assert await page.locator("#instance-id").inner_text() == XSS_ID
    for injected in ("#pwned-id", "#pwned-custom", "#pwned-script"):
        assert await page.locator(injected).count() == 0
    assert json.dumps(XSS_CUSTOM) in await page.locator(".values").inner_text()  # the JSON text, shown raw
    assert await page.title() != "pwned"
