"""The dashboard's own request and response: what every door (aiohttp, a Functions HTTP trigger) converts to.

Keeping the core free of a web framework is what lets one implementation be
served by ``funcpy monitor``, by ``funcpy start`` and by a Blueprint in a
deployed app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Mapping
from urllib.parse import parse_qs


@dataclass(frozen=True)
class Request:
    """One HTTP request, as the dashboard sees it.

    ``path`` is below the dashboard's mount point (``/``, ``/instance``...);
    ``mount`` is the URL path the dashboard is served under (``/dashboard``,
    ``/api/dashboard``); ``headers`` have lower-case names.
    """

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes = b""
    mount: str = ""

    @classmethod
    def build(cls, method: str, path: str, query_string: str, headers: Mapping[str, str], body: bytes = b"",
              mount: str = "") -> "Request":
        return cls(method.upper(), "/" + path.strip("/"), parse_qs(query_string, keep_blank_values=True),
                   {k.lower(): v for k, v in headers.items()}, body, mount.rstrip("/"))

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default

    def args(self, name: str) -> list[str]:
        return [v for v in self.query.get(name, []) if v]

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def cookie(self, name: str) -> str | None:
        jar = SimpleCookie()
        try:
            jar.load(self.header("cookie") or "")
        except Exception:  # a malformed Cookie header: treat as no cookie
            return None
        morsel = jar.get(name)
        return morsel.value if morsel else None

    def form(self) -> dict[str, list[str]]:
        """The urlencoded body (htmx posts forms that way)."""
        return parse_qs(self.body.decode("utf-8", errors="replace"), keep_blank_values=True)


@dataclass
class Response:
    status: int = 200
    body: bytes | str = b""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[str] = field(default_factory=list)  # whole Set-Cookie header values

    @property
    def body_bytes(self) -> bytes:
        return self.body.encode("utf-8") if isinstance(self.body, str) else self.body


def text(status: int, message: str) -> Response:
    return Response(status, message, "text/plain; charset=utf-8")
