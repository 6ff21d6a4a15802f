"""The operators' dashboard: an aiohttp application served by the node's supervisor.

Routes (everything else is 404; nothing is ever served from the data directories, and no
directory listing exists):

    GET  /                        the live view (login required)
    GET  /login, POST /login      the login form (double-submit CSRF token)
    POST /logout
    GET  /ws                      live view over WebSocket (same-origin only)
    POST /api/calls/{call}/{op}   pause | resume | stop a call's recording (supervisor)
    GET  /api/audit               audit log tail and chain verdict (auditor)
    GET  /api/recordings          recordings' metadata, never audio (auditor)
    GET  /api/users, POST /api/users, POST /api/users/{name}/{action}   (admin)
    GET  /static/app.js, /static/app.css

Sessions are server-side (a random token in an HttpOnly, SameSite=Strict cookie; Secure and
__Host- under TLS) and end after [dashboard] idle_timeout_s without a request; an open live
view keeps its session. Every unsafe request needs the session's CSRF token.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import json
import logging
import secrets
import shutil
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from ..config import DashboardConfig, is_loopback
from ..storage.index import Index
from . import live as lv
from .users import ROLES, User, UserError, UserStore

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {"app.js": "application/javascript", "app.css": "text/css", "favicon.svg": "image/svg+xml"}
MAX_SESSIONS = 10_000
MAX_CLIENT_BACKLOG = 2_000  # messages queued for one WebSocket before it is dropped
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

Command = Callable[[str, str, str], Awaitable["str | None"]]  # (op, call, actor) -> error or None


@dataclass
class Session:
    token: str
    user: str
    role: str
    csrf: str
    created: float
    last_seen: float  # the last request made with it (a WebSocket does not count)
    generation: int = 0  # the user's generation at login: a new password or role ends the session


@dataclass(eq=False)
class Client:
    ws: web.WebSocketResponse
    session: Session
    queue: deque[str] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Dashboard:
    """Shared state of the application: users, sessions, the live view and its subscribers."""

    def __init__(
        self,
        config: DashboardConfig,
        users: UserStore,
        index: Index,
        *,
        spool_dir: Path,
        node_status: Callable[[], dict[str, Any]],
        command: Command,
        storage_errors: Callable[[], int] = lambda: 0,
    ) -> None:
        self.config = config
        self.users = users
        self.index = index
        self.spool_dir = spool_dir
        self.node_status = node_status
        self.command = command
        self.storage_errors = storage_errors
        self.tls = config.tls is not None
        self.cookie = "__Host-gw_session" if self.tls else "gw_session"
        self.sessions: dict[str, Session] = {}
        self.host_names = allowed_host_names(config)
        self.live = lv.LiveView()
        self.clients: set[Client] = set()
        self._last_summary = ""
        self.backoff_s = 0.25  # first wait after a failed login; doubles per failure, up to 4 s

    # -- sessions --------------------------------------------------------------------------

    def new_session(self, user: User) -> Session:
        now = time.time()
        if len(self.sessions) >= MAX_SESSIONS:
            self.expire_sessions(now)
            if len(self.sessions) >= MAX_SESSIONS:  # still full: the oldest goes
                del self.sessions[min(self.sessions.values(), key=lambda s: s.last_seen).token]
        s = Session(
            secrets.token_urlsafe(32),
            user.name,
            user.role,
            secrets.token_urlsafe(32),
            now,
            now,
            user.generation,
        )
        self.sessions[s.token] = s
        return s

    def session_alive(self, s: Session, now: float) -> bool:
        """Within its absolute lifetime, and its user still exists with the same role and password."""
        if now - s.created > self.config.session_max_s:
            return False
        user = self.users.get(s.user)
        return user is not None and user.role == s.role and user.generation == s.generation

    def session_of(self, request: web.Request, touch: bool = True, view_only: bool = False) -> Session | None:
        """The request's live session, or None. A session idle for longer than idle_timeout_s
        ends, except that one kept open by a live view (a wall display) may go on *viewing*
        (view_only: the page and its WebSocket); every other request needs a fresh login."""
        token = request.cookies.get(self.cookie, "")
        s = self.sessions.get(token)
        now = time.time()
        if s is None:
            return None
        if not self.session_alive(s, now):
            del self.sessions[token]
            return None
        if now - s.last_seen > self.config.idle_timeout_s:
            if not self._watching(s):
                del self.sessions[token]
                return None
            return s if view_only else None  # viewing does not make it active again
        if touch:
            s.last_seen = now
        return s

    def _watching(self, s: Session) -> bool:
        return any(c.session is s for c in self.clients)

    def expire_sessions(self, now: float) -> None:
        watched = {id(c.session) for c in self.clients}
        for token, s in list(self.sessions.items()):
            if now - s.created > self.config.session_max_s or (
                now - s.last_seen > self.config.idle_timeout_s and id(s) not in watched
            ):
                del self.sessions[token]

    def audit(self, actor: str, action: str, subject: str, details: dict[str, Any] | None = None) -> None:
        try:
            self.index.append_audit(actor, action, subject, details)
        except Exception:
            log.exception("cannot write the audit entry %s", action)

    # -- live view -------------------------------------------------------------------------

    def on_event(self, event: dict[str, Any], link: int) -> None:
        row = self.live.observe(event, link)
        if row is not None:
            self.broadcast({"t": "call", "call": public_row(row)})

    def on_link_lost(self, link: int) -> None:
        for row in self.live.link_lost(link):
            self.broadcast({"t": "call", "call": public_row(row)})

    def broadcast(self, message: dict[str, Any]) -> None:
        text = json.dumps(message, separators=(",", ":"))
        for c in list(self.clients):
            if len(c.queue) >= MAX_CLIENT_BACKLOG:
                log.warning("dashboard client too slow; disconnected (it reconnects for a snapshot)")
                self.clients.discard(c)
                asyncio.ensure_future(c.ws.close(code=1013, message=b"too slow"))
                continue
            c.queue.append(text)
            c.wake.set()

    def summary(self) -> dict[str, Any]:
        node = self.node_status()
        storage: dict[str, Any]
        try:
            du = shutil.disk_usage(self.spool_dir)
            storage = {
                "free_bytes": du.free,
                "free_ratio": round(du.free / du.total, 4) if du.total else None,
            }
        except OSError as e:
            storage = {"free_bytes": None, "free_ratio": None, "error": e.strerror}
        storage["errors"] = self.storage_errors()
        workers = node.get("workers", [])
        return {
            **self.live.summary(),
            "storage": storage,
            "failopen": node.get("failopen", 0),
            "workers": [
                {"index": w["index"], "ready": w["ready"], "restarts": w["restarts"]} for w in workers
            ],
            "capacity_calls": node.get("capacity_calls", 0),
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "t": "snapshot",
            "calls": [public_row(r) for r in self.live.calls.values()],
            "summary": self.summary(),
            "now": time.time(),
        }

    async def tick(self) -> None:
        """Once a second: ended calls leave the screen, the summary goes out if it changed, and
        subscribers whose session is gone are closed."""
        while True:
            await asyncio.sleep(1.0)
            try:
                now = time.time()
                for call in self.live.expire(now):
                    self.broadcast({"t": "gone", "call": call})
                summary = json.dumps(self.summary(), sort_keys=True)
                if summary != self._last_summary:
                    self._last_summary = summary
                    self.broadcast({"t": "summary", "summary": json.loads(summary)})
                self.expire_sessions(now)
                for c in list(self.clients):
                    if c.session.token not in self.sessions or not self.session_alive(c.session, now):
                        self.sessions.pop(c.session.token, None)
                        self.clients.discard(c)
                        await c.ws.close(code=4001, message=b"session ended")
            except Exception:
                log.exception("dashboard tick failed")


def public_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "link"}


DASH = web.AppKey("dashboard", Dashboard)


# -- middleware and helpers ---------------------------------------------------------------


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
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


def allowed_host_names(config: DashboardConfig) -> frozenset[str]:
    """The names a browser may use for the dashboard (its Host header). A DNS-rebinding page
    reaches a loopback dashboard under its own name; that name is not on this list."""
    if config.server_names:
        return frozenset(n.lower() for n in config.server_names)
    host = config.listen[0].lower()
    names = {host}
    if is_loopback(host):
        names |= {"localhost", "127.0.0.1", "::1"}
    return frozenset(names)


def host_name(header: str) -> str:
    """The name in a Host header, without the port ("[::1]:8080" -> "::1")."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[1 : h.find("]")] if "]" in h else ""
    name, sep, port = h.rpartition(":")
    return name if sep and port.isdigit() else h


@web.middleware
async def _check_host(
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


def _same_origin(request: web.Request) -> bool:
    """The Origin (when a browser sends one) is this dashboard under the Host the request used,
    which _check_host has already matched against the configured names."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser, or a same-origin GET; POSTs still need the CSRF token
    return origin == f"{request.scheme}://{request.host}"


def _forbidden(reason: str) -> web.HTTPForbidden:
    return web.HTTPForbidden(text=json.dumps({"error": reason}), content_type="application/json")


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
            raise _forbidden(f"the {s.role} role may not do this")
    if csrf:
        token = request.headers.get("X-CSRF-Token", "")
        if not _same_origin(request) or not hmac.compare_digest(token.encode(), s.csrf.encode()):
            raise _forbidden("missing or wrong CSRF token")
    return s


def _set_cookie(
    response: web.StreamResponse, dash: Dashboard, name: str, value: str, path: str = "/"
) -> None:
    response.set_cookie(name, value, path=path, httponly=True, samesite="Strict", secure=dash.tls)


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
    perms = sorted(p for p in ("control", "audit", "users") if user is not None and user.can(p))
    meta = (
        f'<meta name="csrf" content="{html.escape(s.csrf)}">'
        f'<meta name="user" content="{html.escape(s.user)}">'
        f'<meta name="role" content="{html.escape(s.role)}">'
        f'<meta name="perms" content="{html.escape(",".join(perms))}">'
        '<script src="/static/app.js" defer></script>'
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
<th>Worker</th><th>Actions</th></tr></thead><tbody></tbody></table>
<p id="no-calls">No calls right now.</p></section>
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
    _set_cookie(r, dash, "gw_login", token, path="/login")
    return r


async def login_page(request: web.Request) -> web.StreamResponse:
    dash = request.app[DASH]
    if dash.session_of(request, touch=False) is not None:
        raise web.HTTPSeeOther("/")
    return _login_form(dash, secrets.token_urlsafe(24))


async def login(request: web.Request) -> web.StreamResponse:
    dash = request.app[DASH]
    form = await request.post()
    cookie_token = request.cookies.get("gw_login", "")
    form_token = str(form.get("csrf", ""))
    if (
        not cookie_token
        or not _same_origin(request)
        or not hmac.compare_digest(cookie_token.encode(), form_token.encode())
    ):
        return _login_form(dash, secrets.token_urlsafe(24), "The form expired; please try again.", 403)
    name = str(form.get("name", ""))[:64].strip().lower()
    password = str(form.get("password", ""))
    peer = request.remote or "?"
    result = await asyncio.to_thread(dash.users.authenticate, name, password)
    user = result.user
    if user is None:
        if result.locked_for_s > 0:
            if result.just_locked:
                dash.audit(f"dashboard:{name}", "dashboard.locked", name, {"from": peer})
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
    dash.audit(f"dashboard:{user.name}", "dashboard.login", user.name, {"role": user.role, "from": peer})
    r = web.HTTPSeeOther("/")
    _set_cookie(r, dash, dash.cookie, s.token)
    r.del_cookie("gw_login", path="/login")
    raise r


async def logout(request: web.Request) -> web.StreamResponse:
    dash = request.app[DASH]
    s = dash.session_of(request, touch=False, view_only=True)
    form = await request.post()
    if s is not None:
        if not hmac.compare_digest(str(form.get("csrf", "")).encode(), s.csrf.encode()) or not _same_origin(
            request
        ):
            raise _forbidden("missing or wrong CSRF token")
        dash.sessions.pop(s.token, None)
        for c in [c for c in dash.clients if c.session is s]:
            dash.clients.discard(c)
            await c.ws.close(code=4001, message=b"logged out")
    r = web.HTTPSeeOther("/login")
    r.del_cookie(dash.cookie, path="/")
    raise r


async def websocket(request: web.Request) -> web.StreamResponse:
    dash = request.app[DASH]
    s = dash.session_of(request, touch=False, view_only=True)  # watching is not activity
    if s is None:
        raise web.HTTPUnauthorized(text="log in first")
    if request.headers.get("Origin") is None or not _same_origin(request):
        raise _forbidden("cross-origin WebSocket refused")
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=4096)
    await ws.prepare(request)
    client = Client(ws, s)
    client.queue.append(json.dumps(dash.snapshot(), separators=(",", ":")))
    client.wake.set()
    dash.clients.add(client)

    async def pump() -> None:
        while not ws.closed:
            await client.wake.wait()
            client.wake.clear()
            while client.queue and not ws.closed:
                await ws.send_str(client.queue.popleft())

    sender = asyncio.create_task(pump())
    try:
        async for msg in ws:  # the browser sends nothing but pings; anything else is ignored
            if msg.type == WSMsgType.ERROR:
                break
    finally:
        dash.clients.discard(client)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sender
    return ws


async def call_action(request: web.Request) -> web.Response:
    s = require(request, "control", csrf=True)
    dash = request.app[DASH]
    call, op = request.match_info["call"], request.match_info["op"]
    if op not in ("pause", "resume", "stop"):
        raise web.HTTPNotFound()
    if call not in dash.live.calls:
        return web.json_response({"error": "no such live call"}, status=404)
    error = await dash.command(op, call, f"dashboard:{s.user}")
    if error is not None:
        return web.json_response({"error": error}, status=409)
    return web.json_response({"ok": True, "op": op, "call": call})


async def audit_log(request: web.Request) -> web.Response:
    require(request, "audit")
    dash = request.app[DASH]
    try:
        limit = max(1, min(1000, int(request.query.get("limit", "200"))))
    except ValueError:
        return web.json_response({"error": "limit must be a number"}, status=400)
    entries = await asyncio.to_thread(dash.index.audit_entries)
    from ..storage import audit as audit_chain

    verdict = audit_chain.verify(entries)
    return web.json_response(
        {
            "chain": {
                "ok": verdict.ok,
                "entries": verdict.entries,
                "head_seq": verdict.head_seq,
                "head_hash": verdict.head_hash,
                "problem": None
                if verdict.problem is None
                else {
                    "seq": verdict.problem.seq,
                    "kind": verdict.problem.kind,
                    "message": verdict.problem.message,
                },
            },
            "entries": [
                {
                    "seq": e.seq,
                    "ts": e.ts,
                    "actor": e.actor,
                    "action": e.action,
                    "subject": e.subject,
                    "details": e.details,
                    "hash": e.hash,
                }
                for e in reversed(entries[-limit:])
            ],
        }
    )


async def recordings(request: web.Request) -> web.Response:
    require(request, "audit")
    dash = request.app[DASH]
    rows = await asyncio.to_thread(dash.index.list_recordings)
    held = {h["recording_id"] for h in await asyncio.to_thread(dash.index.active_holds)}
    rows = sorted(rows, key=lambda r: r.started_at, reverse=True)[:500]
    return web.json_response(
        {
            "recordings": [
                {
                    "id": r.id,
                    "started_at": r.started_at,
                    "finished_at": r.finished_at,
                    "status": r.status,
                    "duration_s": r.duration_s,
                    "bytes": r.bytes,
                    "route": r.route,
                    "origin": r.origin,
                    "retention_days": r.retention_days,
                    "signed": bool(r.signature),
                    "held": r.id in held,
                }
                for r in rows
            ]
        }
    )


async def users_list(request: web.Request) -> web.Response:
    require(request, "users")
    now = time.time()
    return web.json_response(
        {
            "roles": list(ROLES),
            "users": [
                {
                    "name": u.name,
                    "role": u.role,
                    "locked": u.locked_until > now,
                    "failures": u.failures,
                    "last_login": u.last_login,
                }
                for u in request.app[DASH].users.list()
            ],
        }
    )


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > 16384:
        raise web.HTTPRequestEntityTooLarge(max_size=16384, actual_size=request.content_length)
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "the body must be JSON"}), content_type="application/json"
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "the body must be a JSON object"}), content_type="application/json"
        )
    return body


async def users_add(request: web.Request) -> web.Response:
    s = require(request, "users", csrf=True)
    dash = request.app[DASH]
    body = await _json_body(request)
    name, role, password = (str(body.get(k, "")) for k in ("name", "role", "password"))
    try:
        await asyncio.to_thread(dash.users.add, name, role, password)
    except UserError as e:
        return web.json_response({"error": str(e)}, status=400)
    dash.audit(f"dashboard:{s.user}", "user.added", name, {"role": role})
    return web.json_response({"ok": True, "name": name, "role": role})


async def users_action(request: web.Request) -> web.Response:
    s = require(request, "users", csrf=True)
    dash = request.app[DASH]
    name, action = request.match_info["name"], request.match_info["action"]
    body = await _json_body(request) if request.can_read_body else {}
    try:
        if action == "unlock":
            dash.users.unlock(name)
        elif action == "remove":
            if name == s.user:
                return web.json_response({"error": "you cannot remove yourself"}, status=400)
            dash.users.remove(name)
        elif action == "role":
            if name == s.user:
                return web.json_response({"error": "you cannot change your own role"}, status=400)
            dash.users.set_role(name, str(body.get("role", "")))
        else:
            raise web.HTTPNotFound()
    except UserError as e:
        return web.json_response({"error": str(e)}, status=400)
    details = {"role": body.get("role")} if action == "role" else {}
    verb = {"unlock": "user.unlocked", "remove": "user.removed", "role": "user.role_changed"}[action]
    dash.audit(f"dashboard:{s.user}", verb, name, details)
    return web.json_response({"ok": True})


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    ctype = STATIC_TYPES.get(name)
    if ctype is None:  # only the named files: no traversal, no listing
        raise web.HTTPNotFound()
    body = request.app[STATIC_FILES][name]
    return web.Response(body=body, content_type=ctype, headers={"Cache-Control": "no-store"})


STATIC_FILES = web.AppKey("static_files", dict)


def build_app(dash: Dashboard) -> web.Application:
    """The application factory: one Dashboard, its routes and its background ticker."""
    app = web.Application(client_max_size=64 * 1024, middlewares=[_check_host])
    app[DASH] = dash
    app[STATIC_FILES] = {name: (STATIC / name).read_bytes() for name in STATIC_TYPES}
    app.on_response_prepare.append(_security_headers)

    async def ticker(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(app[DASH].tick())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def close_websockets(app: web.Application) -> None:
        # On shutdown, before the runner waits for handlers: a live view never ends by itself.
        for c in list(app[DASH].clients):
            app[DASH].clients.discard(c)
            await c.ws.close(code=1001, message=b"server stopping")

    app.cleanup_ctx.append(ticker)
    app.on_shutdown.append(close_websockets)
    r = app.router
    r.add_get("/", index_page)
    r.add_get("/login", login_page)
    r.add_post("/login", login)
    r.add_post("/logout", logout)
    r.add_get("/ws", websocket)
    r.add_post("/api/calls/{call}/{op}", call_action)
    r.add_get("/api/audit", audit_log)
    r.add_get("/api/recordings", recordings)
    r.add_get("/api/users", users_list)
    r.add_post("/api/users", users_add)
    r.add_post("/api/users/{name}/{action}", users_action)
    r.add_get("/static/{name}", static)
    return app


async def serve(dash: Dashboard) -> tuple[web.AppRunner, str]:
    """Listen on [dashboard] listen, with TLS when a certificate is configured; returns the
    runner (to clean up) and the URL to print."""
    ssl_ctx = None
    if dash.config.tls is not None:
        import ssl

        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ssl_ctx.load_cert_chain(str(dash.config.tls[0]), str(dash.config.tls[1]))
    runner = web.AppRunner(build_app(dash), access_log=None)
    await runner.setup()
    host, port = dash.config.listen
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_ctx).start()
    except OSError:
        await runner.cleanup()
        raise
    url_host = f"[{host}]" if ":" in host else host
    return runner, f"{'https' if ssl_ctx else 'http'}://{url_host}:{port}/"
