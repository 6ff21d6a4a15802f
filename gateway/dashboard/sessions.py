"""Dashboard sessions: server-side, each a random token in the browser's cookie.

A session ends after [dashboard] idle_timeout_s without a request, and in any case
session_max_s after its login, or as soon as its user is removed or gets a new role or
password. A session kept open only by a live view (a wall display) may go on watching past the
idle timeout, but nothing more: acting needs a fresh login.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..config import DashboardConfig
from .users import User, UserStore

MAX_SESSIONS = 10_000


@dataclass
class Session:
    token: str
    user: str
    role: str
    csrf: str
    created: float
    last_seen: float  # the last request made with it (a WebSocket does not count)
    generation: int = 0  # the user's generation at login: a new password or role ends the session


class SessionBook:
    def __init__(
        self, config: DashboardConfig, users: UserStore, watching: Callable[[Session], bool]
    ) -> None:
        self.config = config
        self.users = users
        self.watching = watching  # is a live view open with this session?
        self.sessions: dict[str, Session] = {}

    def new(self, user: User) -> Session:
        now = time.time()
        if len(self.sessions) >= MAX_SESSIONS:
            self.expire(now)
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

    def alive(self, s: Session, now: float) -> bool:
        """Within its absolute lifetime, and its user still exists with the same role and password."""
        if now - s.created > self.config.session_max_s:
            return False
        user = self.users.get(s.user)
        return user is not None and user.role == s.role and user.generation == s.generation

    def lookup(self, token: str, *, touch: bool = True, view_only: bool = False) -> Session | None:
        """The live session of `token`, or None. `view_only`: the request only watches (the
        page, its WebSocket), which an idle session held open by a live view may still do."""
        s = self.sessions.get(token)
        now = time.time()
        if s is None:
            return None
        if not self.alive(s, now):
            del self.sessions[token]
            return None
        if now - s.last_seen > self.config.idle_timeout_s:
            if not self.watching(s):
                del self.sessions[token]
                return None
            return s if view_only else None  # viewing does not make it active again
        if touch:
            s.last_seen = now
        return s

    def expire(self, now: float) -> None:
        for token, s in list(self.sessions.items()):
            if now - s.created > self.config.session_max_s or (
                now - s.last_seen > self.config.idle_timeout_s and not self.watching(s)
            ):
                del self.sessions[token]
