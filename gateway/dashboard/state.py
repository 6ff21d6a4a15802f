"""The dashboard's shared state: users and sessions, the live view and the WebSocket clients
it fans out to. One Dashboard per application (app.py puts it under the DASH key)."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ..accounts.sessions import Session, SessionBook, SessionStore
from ..accounts.users import Scope, User, UserStore, in_scope
from ..app.accounts import Accounts
from ..app.holds import Holds
from ..app.review import Review
from ..app.subject import BrowserSearch
from ..config import DashboardConfig
from ..storage.index import Index, IndexUnavailable
from . import live as lv
from .hosts import allowed_host_names

log = logging.getLogger(__name__)
MAX_CLIENT_BACKLOG = 2_000  # messages queued for one WebSocket before it is dropped

# (op, call, the session asking) -> error or None. The session, not a name: a node that runs a
# command for another node's dashboard checks the session itself (supervisor/cluster.py).
Command = Callable[[str, str, Session], Awaitable["str | None"]]


@dataclass(eq=False)
class Client:
    ws: web.WebSocketResponse
    session: Session
    scope: Scope = None  # its user's tenants, fixed for the session (a new scope ends it)
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
        cluster_status: Callable[[], list[dict[str, Any]]] | None = None,
        node_name: str = "",
        sessions: SessionStore | None = None,
        review: Review | None = None,
        fetches_per_minute: int = 30,
        holds: Holds | None = None,
        subjects: BrowserSearch | None = None,
    ) -> None:
        self.config = config
        self.users = users
        self.index = index
        self.accounts = Accounts(users, index, strict=False)  # audited account changes and logins
        self.spool_dir = spool_dir
        self.node_status = node_status
        self.command = command
        self.storage_errors = storage_errors
        self.cluster_status = cluster_status  # every node's status (supervisor/cluster.py), or None
        self.tls = config.tls is not None
        self.cookie = "__Host-gw_session" if self.tls else "gw_session"
        self.book = SessionBook(config, users, self._watching, sessions)
        self.host_names = allowed_host_names(config)
        self.live = lv.LiveView(node=node_name)
        self.clients: set[Client] = set()
        self._last_summary: dict[Scope, str] = {}
        self.backoff_s = 0.25  # first wait after a failed login; doubles per failure, up to 4 s
        self._index_away = False  # the shared index was out of reach at the last tick
        self.review = review  # access requests and grants (dashboard/review.py); None: no review
        self.fetches_per_minute = fetches_per_minute  # [review]: ciphertext fetches per reviewer
        self.fetch_times: dict[str, deque[float]] = {}
        self.holds = holds  # legal holds placed and released from the page; None: not here
        self.subjects = subjects  # data-subject searches decrypted in the officer's page

    # -- sessions (the book keeps them; the dashboard knows who is watching) -----------------

    @property
    def config(self) -> DashboardConfig:
        return self._config

    @config.setter
    def config(self, config: DashboardConfig) -> None:
        self._config = config
        if hasattr(self, "book"):
            self.book.config = config

    def new_session(self, user: User) -> Session:
        return self.book.new(user)

    def session_alive(self, s: Session, now: float) -> bool:
        return self.book.alive(s, now)

    def session_of(self, request: web.Request, touch: bool = True, view_only: bool = False) -> Session | None:
        return self.book.lookup(request.cookies.get(self.cookie, ""), touch=touch, view_only=view_only)

    def expire_sessions(self, now: float) -> None:
        self.book.expire(now)

    @property
    def sessions(self) -> dict[str, Session]:
        """The sessions of an in-memory book (tests look into it)."""
        return self.book.sessions

    def end_session(self, token: str) -> None:
        self.book.end(token)

    def _watching(self, s: Session) -> bool:
        return any(c.session.token == s.token for c in self.clients)

    # -- live view -------------------------------------------------------------------------

    def scope_of(self, s: Session) -> Scope:
        """The tenants this session's user sees (None: all; a user gone: none)."""
        user = self.users.get(s.user)
        return user.tenants if user is not None else frozenset()

    def on_event(self, event: dict[str, Any], link: int) -> None:
        row = self.live.observe(event, link)
        if row is not None:
            self.broadcast({"t": "call", "call": public_row(row)}, tenant=row["tenant"])

    def on_link_lost(self, link: int) -> None:
        for row in self.live.link_lost(link):
            self.broadcast({"t": "call", "call": public_row(row)}, tenant=row["tenant"])

    def broadcast(
        self, message: dict[str, Any], tenant: str | None = None, scope: Scope | bool = False
    ) -> None:
        """To every client, or with `tenant` (a call's message) only to those whose scope holds
        it, or with `scope` (a summary) only to clients of exactly that scope."""
        text = json.dumps(message, separators=(",", ":"))
        for c in list(self.clients):
            if tenant is not None and not in_scope(c.scope, tenant):
                continue
            if scope is not False and c.scope != scope:
                continue
            if len(c.queue) >= MAX_CLIENT_BACKLOG:
                log.warning("dashboard client too slow; disconnected (it reconnects for a snapshot)")
                self.clients.discard(c)
                asyncio.ensure_future(c.ws.close(code=1013, message=b"too slow"))
                continue
            c.queue.append(text)
            c.wake.set()

    def summary(self, scope: Scope = None) -> dict[str, Any]:
        """The cards above the calls. A user scoped to tenants gets their calls' counts only:
        no day's totals and no node's call count (both would tell of other tenants' calls)."""
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
        upload = node.get("upload")
        if upload:  # finished recordings still in this node's spool, waiting for the object store
            storage["upload_pending"] = upload["pending"]
            storage["upload_failing"] = upload["failing"]
        nodes = self.cluster_status() if self.cluster_status is not None else [{"name": "", **node}]
        workers = [
            {"node": n["name"], "index": w["index"], "ready": w["ready"], "restarts": w["restarts"]}
            for n in nodes
            for w in n.get("workers", [])
        ]
        live = self.live.summary(tenants=scope)
        if scope is not None:
            live["today"] = None
        return {
            **live,
            "storage": storage,
            "failopen": sum(int(n.get("failopen", 0)) for n in nodes),
            "workers": workers,
            "capacity_calls": sum(int(n.get("capacity_calls", 0)) for n in nodes),
            "nodes": [
                {
                    "name": n["name"],
                    "ready": sum(1 for w in n.get("workers", []) if w["ready"]),
                    "workers": len(n.get("workers", [])),
                    "live_calls": n.get("live_calls", 0) if scope is None else None,
                    "capacity_calls": n.get("capacity_calls", 0),
                }
                for n in nodes
            ],
        }

    def snapshot(self, scope: Scope = None) -> dict[str, Any]:
        return {
            "t": "snapshot",
            "calls": [public_row(r) for r in self.live.calls.values() if in_scope(scope, r["tenant"])],
            "summary": self.summary(scope),
            "now": time.time(),
        }

    async def tick(self) -> None:
        """Once a second: ended calls leave the screen, the summary goes out if it changed, and
        subscribers whose session is gone are closed."""
        while True:
            await asyncio.sleep(1.0)
            try:
                now = time.time()
                tenants = {c: r["tenant"] for c, r in self.live.calls.items()}
                for call in self.live.expire(now):
                    self.broadcast({"t": "gone", "call": call}, tenant=tenants.get(call, ""))
                for scope in {c.scope for c in self.clients} | {None}:
                    summary = json.dumps(self.summary(scope), sort_keys=True)
                    if summary != self._last_summary.get(scope):
                        self._last_summary[scope] = summary
                        self.broadcast({"t": "summary", "summary": json.loads(summary)}, scope=scope)
                self.expire_sessions(now)
                self.book.store.watching([c.session for c in self.clients], now)
                for c in list(self.clients):
                    current = self.book.get(c.session.token)
                    if current is None or not self.session_alive(current, now):
                        self.end_session(c.session.token)
                        self.clients.discard(c)
                        await c.ws.close(code=4001, message=b"session ended")
                if self._index_away:
                    log.warning("dashboard: the shared index is back; sessions are checked again")
                    self._index_away = False
            except IndexUnavailable as e:
                # Sessions cannot be checked or expired meanwhile; open live views go on.
                if not self._index_away:
                    log.error(
                        "dashboard: the shared index is unreachable (%s); logins get 503 until it is back", e
                    )
                    self._index_away = True
            except Exception:
                log.exception("dashboard tick failed")


def public_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "link"}


DASH = web.AppKey("dashboard", Dashboard)
