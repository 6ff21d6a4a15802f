"""Dashboard sessions: server-side, each a random token in the browser's cookie.

A session ends after [dashboard] idle_timeout_s without a request, and in any case
session_max_s after its login, or as soon as its user is removed or gets a new role or
password. A session kept open only by a live view (a wall display) may go on watching past the
idle timeout, but nothing more: acting needs a fresh login.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from ..config import DashboardConfig
from .users import PERMISSIONS, User, UserStore

MAX_SESSIONS = 10_000


def session_key(token: str) -> str:
    """What a session is known by outside the browser (the shared session table, node-to-node
    commands): the SHA-256 of its token, which nobody can present as a cookie."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Session:
    token: str
    user: str
    role: str
    csrf: str
    created: float
    last_seen: float  # the last request made with it (a WebSocket does not count)
    generation: int = 0  # the user's generation at login: a new password or role ends the session

    @property
    def actor(self) -> str:
        """Who acts with it, as the audit log names them."""
        return f"dashboard:{self.user}"


class SessionStore(ABC):
    """Where sessions are kept: this process's memory (one node), or the shared index
    (sessions_pg.py), so that a session opened on one node's dashboard works on every node."""

    @abstractmethod
    def get(self, token: str) -> Session | None: ...

    def get_by_key(self, key: str) -> Session | None:
        """The session whose token hashes to `key` (session_key)."""
        return next((s for s in self.all() if session_key(s.token) == key), None)

    def all(self) -> list[Session]:
        return []

    @abstractmethod
    def put(self, s: Session) -> None: ...

    @abstractmethod
    def delete(self, token: str) -> None: ...

    @abstractmethod
    def touch(self, s: Session, now: float) -> None:
        """A request was made with it."""

    @abstractmethod
    def expire(self, now: float, max_s: float, idle_s: float, watched: Callable[[Session], bool]) -> None:
        """Forget sessions past their lifetime, and idle ones nobody is watching with."""

    @abstractmethod
    def watching(self, sessions: list[Session], now: float) -> None:
        """These sessions have a live view open here (kept in the shared store for other nodes)."""

    @abstractmethod
    def make_room(self, now: float) -> None:
        """Keep the number of sessions under MAX_SESSIONS (the oldest go)."""


class MemorySessions(SessionStore):
    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}

    def get(self, token: str) -> Session | None:
        return self.sessions.get(token)

    def all(self) -> list[Session]:
        return list(self.sessions.values())

    def put(self, s: Session) -> None:
        self.sessions[s.token] = s

    def delete(self, token: str) -> None:
        self.sessions.pop(token, None)

    def touch(self, s: Session, now: float) -> None:
        s.last_seen = now

    def expire(self, now: float, max_s: float, idle_s: float, watched: Callable[[Session], bool]) -> None:
        for token, s in list(self.sessions.items()):
            if now - s.created > max_s or (now - s.last_seen > idle_s and not watched(s)):
                del self.sessions[token]

    def watching(self, sessions: list[Session], now: float) -> None:
        pass  # this process asks its own clients (SessionBook.watching)

    def make_room(self, now: float) -> None:
        if len(self.sessions) >= MAX_SESSIONS:
            del self.sessions[min(self.sessions.values(), key=lambda s: s.last_seen).token]


class SessionBook:
    def __init__(
        self,
        config: DashboardConfig,
        users: UserStore,
        watching: Callable[[Session], bool],
        store: SessionStore | None = None,
    ) -> None:
        self.config = config
        self.users = users
        self.watching = watching  # is a live view open here with this session?
        self.store = store if store is not None else MemorySessions()

    @property
    def sessions(self) -> dict[str, Session]:
        """The sessions of an in-memory book (tests look into it)."""
        assert isinstance(self.store, MemorySessions)
        return self.store.sessions

    def new(self, user: User) -> Session:
        now = time.time()
        self.expire(now)
        self.store.make_room(now)
        s = Session(
            secrets.token_urlsafe(32),
            user.name,
            user.role,
            secrets.token_urlsafe(32),
            now,
            now,
            user.generation,
        )
        self.store.put(s)
        return s

    def end(self, token: str) -> None:
        self.store.delete(token)

    def get(self, token: str) -> Session | None:
        return self.store.get(token)

    def alive(self, s: Session, now: float) -> bool:
        """Within its absolute lifetime, and its user still exists with the same role and password
        (and is the same account: one removed and added again under its name is another)."""
        if now - s.created > self.config.session_max_s:
            return False
        user = self.users.get(s.user)
        return (
            user is not None
            and user.role == s.role
            and user.generation == s.generation
            and s.created >= user.created_at  # not a session of an account removed since
        )

    def lookup(self, token: str, *, touch: bool = True, view_only: bool = False) -> Session | None:
        """The live session of `token`, or None. `view_only`: the request only watches (the
        page, its WebSocket), which an idle session held open by a live view may still do."""
        if not token:
            return None
        s = self.store.get(token)
        now = time.time()
        if s is None:
            return None
        if not self.alive(s, now):
            self.store.delete(token)
            return None
        if now - s.last_seen > self.config.idle_timeout_s:
            if not self.watching(s):
                self.store.delete(token)
                return None
            return s if view_only else None  # viewing does not make it active again
        if touch:
            self.store.touch(s, now)
        return s

    def expire(self, now: float) -> None:
        self.store.expire(now, self.config.session_max_s, self.config.idle_timeout_s, self.watching)

    def vouch(
        self, key: str, permission: str, now: float | None = None, slack_s: float = 0.0
    ) -> Session | None:
        """The live, active session known by `key` whose user may do `permission`, or None: what
        a node asks before acting for a session opened on another node's dashboard. `slack_s`:
        how stale the store's record of its last request may be."""
        now = time.time() if now is None else now
        s = self.store.get_by_key(key)
        if s is None or not self.alive(s, now) or now - s.last_seen > self.config.idle_timeout_s + slack_s:
            return None
        return s if permission in PERMISSIONS.get(s.role, frozenset()) else None
