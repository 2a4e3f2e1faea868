"""The dashboard itself: routes, handlers and rendering, independent of any web framework.

    dashboard = Dashboard(get_manager, DashboardConfig(read_only=True))
    response = await dashboard.handle(Request.build("GET", "/", "", headers, mount="/dashboard"))

Every page is rendered by Jinja2 with autoescaping on: whatever storage holds
(an instance id, a custom status, an output) reaches the page as text.
"""

from __future__ import annotations

import json
import mimetypes
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import urlencode

import jinja2

from ..errors import DurableError, InvalidInput, InvalidSetting, http_status_of
from ..manager import InstanceManager
from ..models import InstanceStatus, RuntimeStatus
from . import security
from ..jobs.models import CountRequest, Outcome
from . import bulk_jobs
from .bulk_jobs import ACTIONS as BULK_ACTIONS
from .config import DashboardConfig
from .filters import RANGE_LABELS, REFRESH_CHOICES, ListFilter
from .render import install_filters
from .stats import histogram, status_counts
from .timeline import gantt, load_timeline
from .web import Request, Response, text

HERE = Path(__file__).parent
STATIC = HERE / "static"
ManagerSource = Callable[[], Awaitable[InstanceManager]]
KEY_PARAM = "code"  # a function key given in the URL is carried on every link (Blueprint with key auth)
ACTIONS = ("terminate", "raise", "suspend", "resume", "rewind", "restart", "purge")
# An orchestration with thousands of activities must stay a page (others' details views ran out of memory).
HISTORY_ROWS = 1000
OUTCOMES_SHOWN = 500  # per-instance outcomes on a page (the CLI's `jobs show --outcomes` streams them all)
JOBS_SHOWN = 200

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                          autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
install_filters(_env)
_env.globals["gantt"] = gantt


@dataclass(frozen=True)
class View:
    """What every template gets: links that keep the mount point and the key, the token, the mode."""

    request: Request
    config: DashboardConfig
    csrf: str

    @property
    def key(self) -> str:
        return self.request.arg(KEY_PARAM)

    def url(self, path: str, params: dict[str, Any] | str | None = None) -> str:
        query = params if isinstance(params, str) else urlencode(params or {}, doseq=True)
        if self.key:
            query = "&".join(q for q in (query, urlencode({KEY_PARAM: self.key})) if q)
        return f"{self.request.mount}{path}" + (f"?{query}" if query else "")

    def static(self, name: str) -> str:
        return self.url(f"/static/{name}")


class Dashboard:
    def __init__(self, managers: ManagerSource, config: DashboardConfig | None = None):
        self.managers = managers
        self.config = config or DashboardConfig()
        self._routes = {
            ("GET", "/"): self.list_page, ("GET", "/rows"): self.rows,
            ("GET", "/overview"): self.overview, ("GET", "/overview/histogram"): self.histogram,
            ("GET", "/instance"): self.instance_page, ("GET", "/instance/value"): self.value,
            ("GET", "/instance/history.json"): self.history_download,
            ("GET", "/plan"): self.plan,
            ("POST", "/action"): self.action, ("POST", "/bulk/preview"): self.bulk_preview,
            ("POST", "/bulk/start"): self.bulk_start,
            ("GET", "/jobs"): self.jobs_page, ("GET", "/job"): self.job_page,
            ("POST", "/jobs/step"): self.job_step, ("POST", "/jobs/cancel"): self.job_cancel,
        }

    async def handle(self, request: Request) -> Response:
        refusal = security.check_request(request, self.config)
        if refusal is not None:
            return _secured(refusal)
        if request.method in ("GET", "HEAD") and request.path.startswith("/static/"):
            return _secured(_static(request.path[len("/static/"):]))
        handler = self._routes.get((request.method if request.method != "HEAD" else "GET", request.path))
        if handler is None:
            known = {p for _, p in self._routes}
            return _secured(text(405 if request.path in known else 404,
                                 f"No page {request.method} {request.path} here."))
        token, cookie = security.csrf_token(request)
        view = View(request, self.config, token)
        try:
            response = await handler(view)
        except DurableError as e:
            # A setting is the server's configuration, not the request's fault: 500, not 400.
            status = 500 if isinstance(e, InvalidSetting) else http_status_of(e)
            response = _render("error.html", view, status=status, message=str(e), title="Error")
        if cookie:
            response.cookies.append(cookie)
        return _secured(response)

    # --- list ---------------------------------------------------------------

    async def _list(self, view: View) -> dict[str, Any]:
        flt = ListFilter.from_args(view.request.query, page_size=self.config.page_size)
        rows: tuple[InstanceStatus, ...] = ()
        next_token = None
        manager = await self.managers()
        if flt.q_error is None:  # a query that does not parse lists nothing: its error is what the page shows
            # As text: a later page parses it at the first page's moment (carried by the token), so the
            # default range's relative time (-24h) is the same on every page and the token stays valid.
            page = await manager.find_page(flt.text(), page_size=flt.page_size, after=flt.token)
            rows, next_token = page.items, page.continuation_token
        return dict(flt=flt, rows=rows, next_token=next_token, now=_now(), statuses=list(RuntimeStatus),
                    ranges=RANGE_LABELS, refresh_choices=REFRESH_CHOICES, bulk_actions=BULK_ACTIONS,
                    default_rate=self.config.bulk_rate_limit, default_concurrency=bulk_jobs.DEFAULT_CONCURRENCY,
                    over_binding=manager.transport.hub is None)

    async def list_page(self, view: View) -> Response:
        return _render("list.html", view, title="Instances", **await self._list(view))

    async def rows(self, view: View) -> Response:
        return _render("rows.html", view, **await self._list(view))

    async def plan(self, view: View) -> Response:
        """What storage evaluates for the page's query and what is filtered here (InstanceManager.explain)."""
        flt = ListFilter.from_args(view.request.query, page_size=self.config.page_size)
        if flt.q_error is not None:
            raise flt.q_error
        return _render("plan.html", view, plan=InstanceManager.explain(flt.parsed()))

    # --- overview -------------------------------------------------------------

    async def overview(self, view: View) -> Response:
        flt = ListFilter.from_args(view.request.query, page_size=self.config.page_size)
        manager = await self.managers()
        if flt.q_error is not None:
            counts = {s: 0 for s in RuntimeStatus}
        elif flt.q:  # the whole query, counted by the library (streamed, only the columns it needs)
            result = await manager.count(CountRequest(flt.parsed(), "status"))
            counts = {s: result.groups.get(s.value, 0) for s in RuntimeStatus}
        else:
            counts = await status_counts(manager, flt)
        return _render("overview.html", view, title="Overview", flt=flt, counts=counts,
                       total=sum(counts.values()), statuses=list(RuntimeStatus), ranges=RANGE_LABELS,
                       refresh_choices=REFRESH_CHOICES)

    async def histogram(self, view: View) -> Response:
        flt = ListFilter.from_args(view.request.query, page_size=self.config.page_size)
        if flt.errors:  # a chart of some other range would mislead; say what is wrong instead
            return Response(400, json.dumps({"error": " ".join(flt.errors)}), "application/json")
        data = await histogram(await self.managers(), flt)
        return Response(200, json.dumps(data.to_json()), "application/json")

    # --- one instance -----------------------------------------------------------

    def _instance_id(self, view: View) -> str:
        instance_id = view.request.arg("id")
        if not instance_id:
            raise InvalidInput("No instance id: open an instance from the list, or add ?id=<instance id>.")
        return instance_id

    async def instance_page(self, view: View) -> Response:
        instance_id = self._instance_id(view)
        manager = await self.managers()
        status = await manager.status(instance_id, show_input=True)
        timeline = await load_timeline(manager, instance_id)
        urls, urls_note = await self._management_urls(manager, instance_id)
        return _render("instance.html", view, title=f"Instance {instance_id}", s=status, timeline=timeline,
                       urls=urls, urls_note=urls_note, now=_now(), failure=_failure(status, timeline),
                       history_limit=HISTORY_ROWS)

    async def _management_urls(self, manager: InstanceManager, instance_id: str) -> tuple[dict | None, str]:
        # The dashboard never shows a key: URLs are shown with their code= value replaced, and the
        # page says where the key is. (A page is often screenshotted or pasted; keys would leak.)
        try:
            urls = (await manager.management_urls(instance_id)).to_json()
        except DurableError as e:
            return None, str(e)
        return {k: _without_key(v) for k, v in urls.items()}, (
            "Keys are never shown here: where a URL needs one, add code=<the durabletask_extension system key>.")

    async def value(self, view: View) -> Response:
        instance_id = self._instance_id(view)
        field = view.request.arg("field")
        if field not in ("input", "output", "custom_status"):
            raise InvalidInput(f"Unknown field {field!r}: ask for input, output or custom_status.")
        status = await (await self.managers()).status(instance_id, show_input=field == "input")
        return _render("value.html", view, value=getattr(status, field), field=field, s=status)

    async def history_download(self, view: View) -> Response:
        instance_id = self._instance_id(view)
        manager = await self.managers()
        await manager.status(instance_id, show_input=False)  # InstanceNotFound before an empty download
        timeline = await load_timeline(manager, instance_id)
        body = json.dumps({"instanceId": instance_id, "history": timeline.raw}, indent=2, default=str)
        return Response(200, body, "application/json", {"Content-Disposition": _attachment(instance_id)})

    # --- actions ----------------------------------------------------------------

    async def action(self, view: View) -> Response:
        form = _first(view.request.form())
        instance_id, action = form.get("id", ""), form.get("action", "")
        try:
            if action not in ACTIONS:
                raise InvalidInput(f"Unknown action {action!r}; one of {', '.join(ACTIONS)}.")
            if not instance_id:
                raise InvalidInput("No instance id was sent with the action.")
            message, new_id = await self._act(await self.managers(), action, instance_id, form)
        except DurableError as e:
            return _render("result.html", view, ok=False, message=str(e), instance_id=instance_id, new_id=None)
        return _render("result.html", view, ok=True, message=message, instance_id=instance_id, new_id=new_id)

    async def _act(self, m: InstanceManager, action: str, instance_id: str,
                   form: dict[str, str]) -> tuple[str, str | None]:
        reason = form.get("reason") or None
        if action == "raise":
            name = form.get("event_name", "").strip()
            if not name:
                raise InvalidInput("Give the event's name.")
            data = _event_data(form.get("event_data", ""))
            await m.raise_event(instance_id, name, data)
            return f"Event {name!r} sent to {instance_id}.", None
        if action == "restart":
            new_id = await m.restart(instance_id, new_instance_id=form.get("new_id", "true") != "false")
            return f"Restarted {instance_id} as {new_id}.", new_id
        if action == "purge":
            result = await m.purge_instance(instance_id)
            return f"Purged {instance_id} ({result.instances_deleted} instance, {result.rows_deleted} rows).", None
        await getattr(m, action)(instance_id, reason)
        return f"{action.capitalize()} of {instance_id} requested.", None

    # --- bulk jobs ---------------------------------------------------------------

    def _bulk_query(self, view: View) -> tuple[dict[str, str], str]:
        """The bulk form and the query it acts on: the selected rows, or the list's whole query."""
        form = view.request.form()
        first = _first(form)
        bulk_jobs.check_action(first.get("action", ""))
        scope = first.get("scope", "")
        if scope == "selected":
            return first, bulk_jobs.selected_query([i for i in form.get("id", []) if i])
        if scope != "query":
            raise InvalidInput(f"Bulk scope {scope!r}: act on the 'selected' rows or on everything the 'query' "
                               "matches.")
        flt = ListFilter.from_args(form, page_size=self.config.page_size)
        if flt.q_error is not None:
            raise flt.q_error
        return first, flt.text()

    async def bulk_preview(self, view: View) -> Response:
        """The count and the plan first; the job is created only when the user confirms."""
        try:
            first, query = self._bulk_query(view)
            request = bulk_jobs.build_request(first["action"], query, reason=first.get("reason", ""),
                                              rate=first.get("rate", ""), concurrency=first.get("concurrency", ""))
            total = (await (await self.managers()).count(CountRequest(request.query))).total
        except DurableError as e:
            return _render("result.html", view, status=http_status_of(e), ok=False, message=str(e),
                           instance_id="", new_id=None)
        return _render("bulk_preview.html", view, request=request, label=BULK_ACTIONS[first["action"]],
                       scope=first.get("scope"), total=total, plan=InstanceManager.explain(request.query),
                       rate=first.get("rate", ""), concurrency=first.get("concurrency", ""))

    async def bulk_start(self, view: View) -> Response:
        first = _first(view.request.form())
        try:
            request = bulk_jobs.build_request(first.get("action", ""), first.get("query", ""),
                                              reason=first.get("reason", ""), rate=first.get("rate", ""),
                                              concurrency=first.get("concurrency", ""))
            job = await (await self.managers()).bulk(request)
            done = await bulk_jobs.step(job)
        except DurableError as e:
            return _render("result.html", view, status=http_status_of(e), ok=False, message=str(e),
                           instance_id="", new_id=None)
        return await self._progress(view, job, done)

    async def _progress(self, view: View, job, done: bulk_jobs.Step) -> Response:
        info = done.info
        outcomes = []
        if info.state.is_final:
            outcomes = await _take(job.outcomes(), OUTCOMES_SHOWN)
        return _render("job_progress.html", view, info=info, busy=done.busy, outcomes=outcomes,
                       more=not info.state.is_final, shown=OUTCOMES_SHOWN)

    async def job_step(self, view: View) -> Response:
        """Advance a job by one bounded step (the page asks for the next while the job is not finished)."""
        job = await (await self.managers()).job(_first(view.request.form()).get("id", ""))
        return await self._progress(view, job, await bulk_jobs.step(job))

    async def job_cancel(self, view: View) -> Response:
        manager = await self.managers()
        info = await manager.cancel_job(_first(view.request.form()).get("id", ""))
        return _render("job_progress.html", view, info=info, busy="", outcomes=[], more=False,
                       shown=OUTCOMES_SHOWN)

    async def jobs_page(self, view: View) -> Response:
        jobs = await (await self.managers()).jobs()
        return _render("jobs.html", view, title="Jobs", jobs=jobs[:JOBS_SHOWN], total=len(jobs), shown=JOBS_SHOWN)

    async def job_page(self, view: View) -> Response:
        job_id = view.request.arg("id")
        if not job_id:
            raise InvalidInput("No job id: open a job from the jobs page, or add ?id=<job id>.")
        only = view.request.arg("outcome")
        kinds = [o for o in Outcome if o.value == only]
        if only and not kinds:
            raise InvalidInput(f"Unknown outcome {only!r}; one of {', '.join(o.value for o in Outcome)}.")
        job = await (await self.managers()).job(job_id)
        outcomes = await _take(job.outcomes(*kinds), OUTCOMES_SHOWN)
        return _render("job.html", view, title=f"Job {job.id}", info=job.info, outcomes=outcomes,
                       outcome_filter=only, outcome_kinds=list(Outcome), shown=OUTCOMES_SHOWN,
                       export=job.info.action.value == "export-history")


def _render(template: str, view: View, *, status: int = 200, **context: Any) -> Response:
    html = _env.get_template(template).render(view=view, config=view.config, **context)
    return Response(status, html)


def _secured(response: Response) -> Response:
    for name, value in security.SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _static(name: str) -> Response:
    path = (STATIC / name).resolve()
    if STATIC.resolve() not in path.parents or not path.is_file():
        return text(404, f"No static file {name!r}.")
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    response = Response(200, path.read_bytes(), kind + ("; charset=utf-8" if kind.startswith(("text/", "application/javascript")) else ""))
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


def _attachment(instance_id: str) -> str:
    """A Content-Disposition for the history of ``instance_id``: an ASCII-only ``filename`` for every client
    (str.isalnum() kept non-ASCII letters, which break the header), and the exact name in ``filename*``
    (RFC 6266 / RFC 5987)."""
    from urllib.parse import quote

    ascii_name = "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "_" for c in instance_id)[:100]
    exact = quote(f"history-{instance_id[:100]}.json", safe="")
    return f"attachment; filename=\"history-{ascii_name}.json\"; filename*=UTF-8''{exact}"


async def _take(items, limit: int) -> list:
    from contextlib import aclosing

    out: list = []
    async with aclosing(items) as stream:
        async for item in stream:
            out.append(item)
            if len(out) >= limit:
                break
    return out


def _first(form: dict[str, list[str]]) -> dict[str, str]:
    return {k: v[0] for k, v in form.items() if v}


def _event_data(text_value: str) -> Any:
    if not text_value.strip():
        return None
    try:
        return json.loads(text_value)
    except ValueError as e:
        raise InvalidInput(f"The event data is not JSON ({e}); nothing was sent. Write JSON, e.g. "
                           '{"approved": true}, "text" or 42.') from None


def _without_key(url: str) -> str:
    return re.sub(r"(?i)([?&]code=)[^&]*", r"\1<key>", url)


def _failure(status: InstanceStatus, timeline) -> Any:
    if status.runtime_status is not RuntimeStatus.FAILED:
        return None
    for ev in reversed(timeline.events):
        if ev.event_type == "ExecutionCompleted":
            return ev.details.get("FailureDetails") or ev.details.get("Result") or status.output
    return status.output


def _now() -> datetime:
    return datetime.now(timezone.utc)
