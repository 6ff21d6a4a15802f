"""What every request passes through: the Host check (no DNS rebinding), the security
headers, the Origin check and CSRF token for unsafe requests, and `require` (a live session
with the permission the route needs)."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..accounts.sessions import Session
from ..storage.index import IndexUnavailable
from .hosts import host_name
from .state import DASH, Dashboard

log = logging.getLogger(__name__)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    h = response.headers
    h["Content-Security-Policy"] = CSP
    h["X-Content-Type-Options"] = "nosniff"
    h["X-Frame-Options"] = "DENY"
    # same-origin, not no-referrer: under no-referrer browsers send "Origin: null" on form posts,
    # and the Origin check below needs the real one. Nothing leaks to other sites either way.
    h["Referrer-Policy"] = "same-origin"
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    h["Cross-Origin-Resource-Policy"] = "same-origin"
    h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    h["Cache-Control"] = "no-store"
    if request.app[DASH].tls:
        h["Strict-Transport-Security"] = "max-age=31536000"


@web.middleware
async def check_host(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if host_name(request.headers.get("Host", "")) not in request.app[DASH].host_names:
        log.warning(
            "dashboard request for host %r refused (not in [dashboard] server_names)",
            request.headers.get("Host", "")[:100],
        )
        raise web.HTTPMisdirectedRequest(
            text=json.dumps({"error": "unknown host name"}), content_type="application/json"
        )
    return await handler(request)


@web.middleware
async def index_unavailable(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Accounts and sessions in a shared index that is out of reach: say so (503), briefly."""
    try:
        return await handler(request)
    except IndexUnavailable:
        log.error("dashboard request failed: the shared index is unreachable")
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": "the shared index is unreachable; try again shortly"}),
            content_type="application/json",
        ) from None


def same_origin(request: web.Request) -> bool:
    """The Origin (when a browser sends one) is this dashboard under the Host the request used,
    which check_host has already matched against the configured names."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser, or a same-origin GET; POSTs still need the CSRF token
    return origin == f"{request.scheme}://{request.host}"


def forbidden(reason: str) -> web.HTTPForbidden:
    return web.HTTPForbidden(text=json.dumps({"error": reason}), content_type="application/json")


# A user scoped to tenants sees and acts on their tenants' calls and recordings alone (every
# view applies the scope: the live calls, recordings, receipts, the audit log, holds, review and
# subject search). Accounts are the system's: an account's scope is set by an administrator of
# the whole system, so a scoped user may not manage them.
UNSCOPED_ONLY = frozenset({"users"})
SCOPED_REFUSAL = "a user scoped to tenants may not manage accounts: an unscoped administrator does"


def require(request: web.Request, permission: str | None = None, csrf: bool = False) -> Session:
    dash = request.app[DASH]
    # Only the page itself may be served to an idle session a live view keeps open.
    s = dash.session_of(
        request, view_only=permission is None and not csrf and not request.path.startswith("/api/")
    )
    if s is None:
        if request.path.startswith("/api/"):
            raise web.HTTPUnauthorized(
                text=json.dumps({"error": "log in first"}), content_type="application/json"
            )
        raise web.HTTPSeeOther("/login")
    if permission is not None:
        user = dash.users.get(s.user)
        if user is None or not user.can(permission):
            raise forbidden(f"the {s.role} role may not do this")
        if user.tenants is not None and permission in UNSCOPED_ONLY:
            raise forbidden(SCOPED_REFUSAL)
    if csrf:
        token = request.headers.get("X-CSRF-Token", "")
        if not same_origin(request) or not hmac.compare_digest(token.encode(), s.csrf.encode()):
            raise forbidden("missing or wrong CSRF token")
    return s


def set_cookie(response: web.StreamResponse, dash: Dashboard, name: str, value: str, path: str = "/") -> None:
    response.set_cookie(name, value, path=path, httponly=True, samesite="Strict", secure=dash.tls)
