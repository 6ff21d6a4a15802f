"""The HTML pages: the live view's shell (its script does the rest) and the login form,
with the login itself (counted before the password is checked; backoff on failure) and logout."""

from __future__ import annotations

import asyncio
import hmac
import html
import logging
import secrets
from typing import Any

from aiohttp import web

from ..accounts.users import INVALID_NAME, NAME_RE
from .security import forbidden, require, same_origin, set_cookie
from .state import DASH, Dashboard

log = logging.getLogger(__name__)


def _page(title: str, body: str, *, head: str = "") -> web.Response:
    return web.Response(
        text=f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/static/favicon.svg"><link rel="stylesheet" href="/static/app.css">{head}</head>
<body>{body}</body></html>""",
        content_type="text/html",
        charset="utf-8",
    )


# -- handlers ------------------------------------------------------------------------------


async def index_page(request: web.Request) -> web.Response:
    s = require(request)
    user = request.app[DASH].users.get(s.user)
    perms = sorted(
        p
        for p in ("live", "control", "audit", "users", "recordings", "review", "approve", "holds", "subject")
        if user is not None and user.can(p)
    )
    meta = (
        f'<meta name="csrf" content="{html.escape(s.csrf)}">'
        f'<meta name="user" content="{html.escape(s.user)}">'
        f'<meta name="role" content="{html.escape(s.role)}">'
        f'<meta name="perms" content="{html.escape(",".join(perms))}">'
        '<script src="/static/review.js" defer></script><script src="/static/app.js" defer></script>'
    )
    return _page(
        "Consent gateway: live calls",
        """
<header><h1>Consent gateway</h1><nav id="tabs"></nav>
<span id="who"></span><form method="post" action="/logout" id="logout">
<input type="hidden" name="csrf" id="logout-csrf"><button type="submit">Log out</button></form></header>
<main><div id="status" role="status">connecting…</div>
<section id="summary" aria-label="node summary"></section>
<section id="live-section"><h2>Live calls</h2><table id="calls"><thead><tr>
<th>Caller</th><th>Route</th><th>State</th><th>Consent</th><th>Recording</th><th>Duration</th><th>Sealed</th>
<th>Node</th><th>Worker</th><th>Actions</th></tr></thead><tbody></tbody></table>
<p id="no-calls">No calls right now.</p></section>
<section id="recordings-section" hidden></section>
<section id="requests-section" hidden></section>
<section id="subject-section" hidden></section>
<section id="audit-section" hidden></section>
<section id="users-section" hidden></section></main>""",
        head=meta,
    )


def _login_form(dash: Dashboard, token: str, message: str = "", status: int = 200) -> web.Response:
    msg = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    r = _page(
        "Log in: consent gateway",
        f"""
<main class="login"><h1>Consent gateway</h1>{msg}
<form method="post" action="/login">
<input type="hidden" name="csrf" value="{html.escape(token)}">
<label>User <input name="name" autocomplete="username" required maxlength="32" autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required maxlength="1024"></label>
<button type="submit">Log in</button></form></main>""",
    )
    r.set_status(status)
    set_cookie(r, dash, "gw_login", token, path="/login")
    return r


async def login_page(request: web.Request) -> web.StreamResponse:
    dash = request.app[DASH]
    if dash.session_of(request, touch=False) is not None:
        raise web.HTTPSeeOther("/")
    return _login_form(dash, secrets.token_urlsafe(24))


async def _form(request: web.Request) -> Any:
    """The posted form; one that is not text in its declared charset (UTF-8 by default) is a
    clear 400, not a server error."""
    try:
        return await request.post()
    except (ValueError, LookupError):  # UnicodeDecodeError is a ValueError
        raise web.HTTPBadRequest(text="the form is not valid text") from None


async def login(request: web.Request) -> web.StreamResponse:
    dash = request.app[DASH]
    form = await _form(request)
    cookie_token = request.cookies.get("gw_login", "")
    form_token = str(form.get("csrf", ""))
    if (
        not cookie_token
        or not same_origin(request)
        or not hmac.compare_digest(cookie_token.encode(), form_token.encode())
    ):
        return _login_form(dash, secrets.token_urlsafe(24), "The form expired; please try again.", 403)
    name = str(form.get("name", ""))[:64].strip().lower()
    password = str(form.get("password", ""))
    peer = request.remote or "?"
    if not NAME_RE.fullmatch(name):
        name = INVALID_NAME  # no account can have it: one lockout record for every such attempt
    result = await asyncio.to_thread(dash.users.authenticate, name, password)
    user = result.user
    if user is None:
        if result.locked_for_s > 0:
            # Only an account's lockout is audited: a name that is none (typed by anyone,
            # unauthenticated) must not write one audit entry per invented name.
            if result.just_locked and await asyncio.to_thread(dash.users.get, name) is not None:
                dash.accounts.locked_out(name, peer)
            log.warning("dashboard login refused: account locked (from %s)", peer)
            message = (
                f"Too many failed logins: this account is locked for "
                f"{int(result.locked_for_s // 60) + 1} minutes."
            )
        else:
            log.warning("dashboard login failed (from %s)", peer)
            message = "Wrong user name or password."
        # Backoff: each failure in a row doubles the wait before the answer, up to 4 s.
        await asyncio.sleep(min(4.0, dash.backoff_s * 2 ** max(0, result.failures - 1)))
        return _login_form(dash, secrets.token_urlsafe(24), message, 401)
    s = dash.new_session(user)
    dash.accounts.logged_in(user, peer)
    r = web.HTTPSeeOther("/")
    set_cookie(r, dash, dash.cookie, s.token)
    r.del_cookie("gw_login", path="/login")
    raise r


async def logout(request: web.Request) -> web.StreamResponse:
    dash = request.app[DASH]
    s = dash.session_of(request, touch=False, view_only=True)
    form = await _form(request)
    if s is not None:
        if not hmac.compare_digest(str(form.get("csrf", "")).encode(), s.csrf.encode()) or not same_origin(
            request
        ):
            raise forbidden("missing or wrong CSRF token")
        dash.end_session(s.token)
        for c in [c for c in dash.clients if c.session.token == s.token]:
            dash.clients.discard(c)
            await c.ws.close(code=4001, message=b"logged out")
    r = web.HTTPSeeOther("/login")
    r.del_cookie(dash.cookie, path="/")
    raise r
