"""Dashboard sessions in the shared PostgreSQL index: a login on one node's dashboard is a
login on every node's (behind a load balancer, or when an operator opens another node).

A session is found by the SHA-256 of its token, so the database never holds a cookie anyone
could present. Its last request is written at most every TOUCH_EVERY_S; a live view open on a
node marks its session watched (`watched_until`) so that another node's expiry does not end a
wall display's session. Logout, expiry and a user's new password or role end it everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..storage.index_pg import PgIndex
from .sessions import MAX_SESSIONS, Session, SessionStore
from .sessions import session_key as _key

TOUCH_EVERY_S = 5.0
WATCH_GRACE_S = 5.0  # a watch mark lasts this long past the last dashboard tick that set it

_COLUMNS = "name, role, csrf, created, last_seen, generation"


class PgSessions(SessionStore):
    def __init__(self, index: PgIndex) -> None:
        self.index = index

    def get(self, token: str) -> Session | None:
        s = self.get_by_key(_key(token))
        return None if s is None else replace(s, token=token)

    def get_by_key(self, key: str) -> Session | None:
        # The token itself is not in the database: a session found this way cannot be
        # presented, touched or ended, only checked.
        rows, _ = self.index.query(f"SELECT {_COLUMNS} FROM dashboard_sessions WHERE token_hash = ?", (key,))
        if not rows:
            return None
        name, role, csrf, created, last_seen, generation = rows[0]
        return Session("", name, role, csrf, float(created), float(last_seen), int(generation))

    def put(self, s: Session) -> None:
        self.index.query(
            f"INSERT INTO dashboard_sessions (token_hash, {_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
            (_key(s.token), s.user, s.role, s.csrf, s.created, s.last_seen, s.generation),
        )

    def delete(self, token: str) -> None:
        self.index.query("DELETE FROM dashboard_sessions WHERE token_hash = ?", (_key(token),))

    def touch(self, s: Session, now: float) -> None:
        if now - s.last_seen >= TOUCH_EVERY_S:
            self.index.query(
                "UPDATE dashboard_sessions SET last_seen = ? WHERE token_hash = ?", (now, _key(s.token))
            )
        s.last_seen = now

    def watching(self, sessions: list[Session], now: float) -> None:
        for token in {s.token for s in sessions}:
            self.index.query(
                "UPDATE dashboard_sessions SET watched_until = ? WHERE token_hash = ?",
                (now + WATCH_GRACE_S, _key(token)),
            )

    def expire(self, now: float, max_s: float, idle_s: float, watched: Callable[[Session], bool]) -> None:
        self.index.query(
            "DELETE FROM dashboard_sessions WHERE created < ? OR (last_seen < ? AND watched_until < ?)",
            (now - max_s, now - idle_s, now),
        )

    def make_room(self, now: float) -> None:
        self.index.query(
            "DELETE FROM dashboard_sessions WHERE token_hash IN (SELECT token_hash FROM dashboard_sessions "
            "ORDER BY last_seen DESC OFFSET ?)",
            (MAX_SESSIONS - 1,),
        )
