"""The dashboard served by aiohttp: mounted in an existing application, or standalone."""

from __future__ import annotations

from typing import Callable

from aiohttp import web

from .core import Dashboard
from .web import Request, Response


def to_request(request: web.Request, body: bytes, mount: str) -> Request:
    tail = request.match_info.get("tail", "")
    return Request.build(request.method, tail, request.query_string, dict(request.headers), body, mount)


def to_response(response: Response) -> web.Response:
    out = web.Response(status=response.status, body=response.body_bytes)
    out.headers["Content-Type"] = response.content_type
    for name, value in response.headers.items():
        out.headers[name] = value
    for cookie in response.cookies:
        out.headers.add("Set-Cookie", cookie)
    return out


Guard = Callable[[web.Request], "Response | None"]


def mount(app: web.Application, dashboard: Dashboard, path: str = "/dashboard", *, guard: Guard | None = None) -> None:
    """Serve ``dashboard`` under ``path`` of ``app`` (``/`` for the whole application).

    ``guard`` may refuse a request before the dashboard sees it (the local host's key check).
    """
    prefix = "/" + path.strip("/") if path.strip("/") else ""

    async def handle(request: web.Request) -> web.StreamResponse:
        refusal = guard(request) if guard else None
        if refusal is not None:
            return to_response(refusal)
        if prefix and request.match_info.get("tail", "") == "":
            # /dashboard -> /dashboard/ so the browser's idea of the page matches the links.
            raise web.HTTPFound(prefix + "/" + (f"?{request.query_string}" if request.query_string else ""))
        return to_response(await dashboard.handle(to_request(request, await request.read(), prefix)))

    app.router.add_route("*", prefix + "{tail:(/.*)?}" if prefix else "/{tail:.*}", handle)
