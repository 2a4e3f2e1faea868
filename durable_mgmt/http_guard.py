"""Who may talk to a local HTTP server: Host and Origin checks for servers on this machine.

A server on loopback is still reachable from every web page the user opens:

* a cross-site page can send "simple" requests (a POST with ``Content-Type:
  text/plain``) without any preflight: it cannot read the answer, but the
  request is carried out;
* a DNS-rebinding page (its own name re-pointed at 127.0.0.1) makes
  same-origin requests and reads the answers; its requests carry its own name
  in ``Host``.

So every request must name an allowed host, and a browser request from
another origin must come from an allowed origin:

* Host: IP literals (a rebinding page cannot make the browser send one for
  its own name), ``localhost`` and ``*.localhost``, and the names configured
  (``allowed_hosts``; ``*`` allows every name).
* Origin (sent by browsers on every cross-origin request and on same-origin
  writes): the server's own origin (the scheme and the Host it was asked by),
  or one of ``allowed_origins`` (``*`` allows every origin). ``Origin: null``
  (sandboxed frames, files) is refused. Without Origin, a browser's
  ``Sec-Fetch-Site: cross-site`` request that is not a top-level navigation
  is refused too.
* CORS: allowed origins get ``Access-Control-Allow-Origin`` and preflights
  (``OPTIONS`` with ``Access-Control-Request-Method``) are answered 204;
  preflights from other origins get the same 403 as their requests would.

Non-browser clients (curl, the SDK, the CLI) send no Origin and pass with an
allowed Host. ``HttpGuard.middleware()`` is an aiohttp middleware: any aiohttp
server of this project (the Functions host, the dashboard) mounts it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from aiohttp import web

_LOOPBACK_NAMES = ("localhost",)
_CORS_METHODS = "GET, POST, PUT, DELETE, PATCH, OPTIONS"


@dataclass(frozen=True)
class HttpGuard:
    """The hosts and origins one server accepts besides its own (see the module docstring)."""

    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    allowed_origins: frozenset[str] = field(default_factory=frozenset)
    # Paths (and everything under them) that never get CORS headers, whatever origins are allowed: the
    # dashboard's pages show instance data and carry its anti-forgery token; no other site may read them.
    no_cors_paths: tuple[str, ...] = ()

    @classmethod
    def of(cls, hosts: Iterable[str] = (), origins: Iterable[str] = (),
           no_cors_paths: Iterable[str] = ()) -> "HttpGuard":
        return cls(frozenset(h.strip().lower().rstrip(".") for h in hosts if h.strip()),
                   frozenset(_origin_key(o) for o in origins if o.strip()),
                   tuple(p.rstrip("/") for p in no_cors_paths if p.strip("/")))

    def cors_applies(self, path: str) -> bool:
        return not any(path == p or path.startswith(p + "/") for p in self.no_cors_paths)

    def host_allowed(self, host_header: str | None) -> bool:
        if "*" in self.allowed_hosts:
            return True
        name = host_name(host_header)
        if name is None:
            return False
        if name in _LOOPBACK_NAMES or name.endswith(".localhost") or name in self.allowed_hosts:
            return True
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            return False

    def origin_allowed(self, origin: str, host_header: str | None, scheme: str) -> bool:
        key = _origin_key(origin)
        if key == "null":
            return False
        if host_header and key == _origin_key(f"{scheme}://{host_header}"):
            return True
        return "*" in self.allowed_origins or key in self.allowed_origins

    def refusal(self, method: str, headers: Mapping[str, str], scheme: str = "http") -> str | None:
        """Why this request is refused, or None when it may go on."""
        host = headers.get("Host")
        if not self.host_allowed(host):
            return (f"Host {host!r} is not allowed: this server answers to localhost, IP addresses and the names "
                    "it is configured with (funcpy start --allowed-host NAME), so that a web page cannot reach it "
                    "by pointing its own name at this machine (DNS rebinding).")
        origin = headers.get("Origin")
        if origin is not None:
            if not self.origin_allowed(origin, host, scheme):
                return (f"Origin {origin!r} is not allowed: requests from web pages are accepted from this server's "
                        "own origin and from the origins it is configured with (funcpy start --cors ORIGIN, or "
                        "local.settings.json Host.CORS).")
        elif (headers.get("Sec-Fetch-Site") == "cross-site" and headers.get("Sec-Fetch-Mode") != "navigate"):
            return ("A cross-site request from a web page is not allowed (Sec-Fetch-Site: cross-site); allow its "
                    "origin with funcpy start --cors ORIGIN.")
        return None

    def cors_headers(self, origin: str | None) -> dict[str, str]:
        """CORS headers for a response to ``origin`` (none for same-origin or unknown origins)."""
        if not origin or _origin_key(origin) == "null":
            return {}
        if "*" in self.allowed_origins:
            return {"Access-Control-Allow-Origin": "*"}
        if _origin_key(origin) in self.allowed_origins:
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        return {}

    def middleware(self):
        guard = self

        @web.middleware
        async def http_guard(request: web.Request, handler):
            why = guard.refusal(request.method, request.headers, request.scheme)
            if why is not None:
                return web.json_response({"error": why}, status=403)
            origin = request.headers.get("Origin")
            cors = guard.cors_headers(origin) if guard.cors_applies(request.path) else {}
            if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method") and origin:
                if not cors:  # same-origin pages never preflight; others need to be configured
                    return web.json_response({"error": f"Origin {origin!r} is not configured for CORS "
                                                       "(funcpy start --cors ORIGIN)."}, status=403)
                return web.Response(status=204, headers={
                    **cors, "Access-Control-Allow-Methods": _CORS_METHODS,
                    "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers", ""),
                    "Access-Control-Max-Age": "600"})
            response = await handler(request)
            for k, v in cors.items():
                response.headers[k] = v
            return response

        return http_guard


def host_name(host_header: str | None) -> str | None:
    """The lower-case name or address in a Host header (no port, no brackets); None if malformed."""
    if not host_header or any(c in host_header for c in "/\\@ \t\r\n"):
        return None
    text = host_header.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (text[end + 1:] and not _is_port(text[end + 1:])):
            return None
        return text[1:end]
    name, sep, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    if sep and not port.isdigit():
        return None
    return (name if sep else text).rstrip(".") or None


def _is_port(text: str) -> bool:
    return text.startswith(":") and text[1:].isdigit()


def _origin_key(origin: str) -> str:
    text = origin.strip().lower().rstrip("/")
    if text.startswith("http://") and text.endswith(":80"):
        text = text[:-3]
    elif text.startswith("https://") and text.endswith(":443"):
        text = text[:-4]
    return text
