"""The dashboard's guards, applied to every request before any handler runs.

* Host (and, on state-changing requests, Origin) must name this server: a page
  on another site, or a DNS-rebinding name pointing at 127.0.0.1, is refused.
* State-changing requests carry a token the page got from this origin
  (double-submit: an HttpOnly cookie and the same value in a header or form
  field; another origin can neither read the cookie nor the page).
* With an allow-list, the App Service authentication principal must be listed.
* Read-only refuses every action here, whatever the page shows.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from .config import DashboardConfig
from .web import Request, Response, text

CSRF_COOKIE = "durable_dashboard_csrf"
CSRF_HEADER = "x-dashboard-csrf"
CSRF_FIELD = "csrf"
PRINCIPAL_HEADER = "x-ms-client-principal"
PRINCIPAL_NAME_HEADER = "x-ms-client-principal-name"
SAFE_METHODS = frozenset({"GET", "HEAD"})
FORM_TYPE = "application/x-www-form-urlencoded"
# secrets.token_urlsafe(32): 32 random bytes in unpadded URL-safe Base64, exactly 43 characters. Not signed:
# the Blueprint may run on several instances, which share no per-process secret.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class Principal:
    name: str | None
    roles: frozenset[str]


def host_name(host_header: str | None) -> str | None:
    """The name part of a Host header (``[::1]:8080`` -> ``::1``), lower-case; None when unusable."""
    if not host_header:
        return None
    try:
        parts = urlsplit("//" + host_header.strip())
        return (parts.hostname or "").lower() or None
    except ValueError:
        return None


def check_request(request: Request, config: DashboardConfig) -> Response | None:
    """A refusal for ``request``, or None when it may proceed."""
    if config.allowed_hosts is not None:
        name = host_name(request.header("host"))
        if name not in config.allowed_hosts:
            return text(421, f"Host {request.header('host')!r} is not served here: this dashboard answers only "
                             f"for {', '.join(sorted(config.allowed_hosts))} (add a name with --allow-host).")
    if config.requires_principal and not principal_allowed(principal_of(request), config):
        return text(403, "You are not on this dashboard's allow-list (app settings DURABLE_DASHBOARD_ALLOWED_USERS "
                         "/ DURABLE_DASHBOARD_ALLOWED_ROLES); sign in with an allowed account.")
    if request.method in SAFE_METHODS:
        return None
    origin = request.header("origin")
    if origin is not None and not _same_origin(origin, request.header("host")):
        return text(403, f"Origin {origin!r} is not this dashboard's origin: cross-site requests are refused.")
    if config.read_only:
        return text(403, "This dashboard is read-only: no action can be taken from it.")
    kind = (request.header("content-type") or "").split(";")[0].strip().lower()
    if request.body and kind != FORM_TYPE:
        # A cross-site page can send text/plain without a preflight; the dashboard's forms are urlencoded.
        return text(415, f"Content-Type {kind or 'none'!r} is not accepted for an action: send the form as "
                         f"{FORM_TYPE}.")
    if not _csrf_ok(request):
        return text(403, "Missing or wrong anti-forgery token: reload the page and try again.")
    return None


def _same_origin(origin: str, host_header: str | None) -> bool:
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return bool(host_header) and parts.netloc.lower() == host_header.strip().lower()


def _csrf_ok(request: Request) -> bool:
    cookie = request.cookie(CSRF_COOKIE)
    sent = request.header(CSRF_HEADER) or (request.form().get(CSRF_FIELD) or [""])[0]
    # Only a token of the form this server issues counts: a cookie planted by a sibling subdomain (cookie
    # tossing) is then at least a 256-bit random-looking value, never "x" or an empty-ish one.
    return is_issued_form(cookie) and is_issued_form(sent) and hmac.compare_digest(cookie.encode(), sent.encode())


def is_issued_form(token: str | None) -> bool:
    return bool(token) and _TOKEN.fullmatch(token) is not None


def csrf_token(request: Request) -> tuple[str, str | None]:
    """The token for the page, and a Set-Cookie value when the browser has none yet."""
    existing = request.cookie(CSRF_COOKIE)
    if is_issued_form(existing):
        return existing, None
    token = secrets.token_urlsafe(32)
    cookie = f"{CSRF_COOKIE}={token}; Path={request.mount or '/'}; HttpOnly; SameSite=Strict"
    return token, cookie


def principal_of(request: Request) -> Principal | None:
    """The signed-in user App Service authentication put in front of the app (None without one).

    App Service removes these headers from incoming requests and sets them itself, which is
    why the allow-list is only meaningful with App Service authentication turned on.
    """
    name = request.header(PRINCIPAL_NAME_HEADER)
    roles: set[str] = set()
    encoded = request.header(PRINCIPAL_HEADER)
    if encoded:
        data = _principal_json(encoded)
        role_type = data.get("role_typ") or "roles"
        claims = data.get("claims")
        for claim in claims if isinstance(claims, list) else []:  # null, 5, "x": no roles
            if isinstance(claim, dict) and claim.get("typ") in (role_type, "roles") \
                    and isinstance(claim.get("val"), str):
                roles.add(claim["val"].lower())
    if name is None and not roles:
        return None
    return Principal(name.lower() if name else None, frozenset(roles))


MAX_PRINCIPAL_HEADER = 16 * 1024  # App Service's principal header is a few KB; more is not from it


def _principal_json(encoded: str) -> dict:
    """The decoded X-MS-CLIENT-PRINCIPAL object; {} (no roles: refused) when it is not one.

    Only App Service sets this header, but when App Service authentication is off anyone can send it:
    a huge or deeply nested value must not cost more than a refusal (json.loads recurses)."""
    if len(encoded) > MAX_PRINCIPAL_HEADER:
        return {}
    try:
        data = json.loads(base64.b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def principal_allowed(principal: Principal | None, config: DashboardConfig) -> bool:
    if principal is None:
        return False
    return (principal.name is not None and principal.name in config.allowed_users) or \
        bool(principal.roles & config.allowed_roles)


SECURITY_HEADERS = {
    # Scripts only from the dashboard's own static files: an injected <script> would not run even if
    # escaping failed. Styles allow inline because the charting library sets canvas sizes.
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                                "base-uri 'none'; form-action 'self'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Page URLs may carry a function key (?code=): never send them to another site.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
