"""Dashboard accounts: names, roles, argon2id password hashes, and failed-login lockout.

Stored in SQLite (`secrets/users.sqlite3`, 0600) so that `gateway user ...` and the running
supervisor can both change it safely. Lockout state lives here too, so that restarting the
supervisor does not unlock an account under attack.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..storage.spool import ensure_private_dir

ROLES = ("viewer", "supervisor", "auditor", "admin")
# What each role may do. Everyone who can log in sees the live view.
PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"live"}),
    "supervisor": frozenset({"live", "control"}),
    "auditor": frozenset({"live", "audit"}),
    "admin": frozenset({"live", "users"}),
}
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024

_hasher = PasswordHasher()  # argon2id, the library's RFC 9106 "low memory" parameters
# Verified against when the name is unknown, so that a wrong name costs as much as a wrong password.
_DUMMY_HASH = _hasher.hash("not a password of anyone's")

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL, created_at REAL NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0, locked_until REAL NOT NULL DEFAULT 0, last_login REAL);
"""


class UserError(ValueError):
    """A refused user operation; the message is for the person who asked."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    failures: int
    locked_until: float
    last_login: float | None

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())


@dataclass(frozen=True)
class LoginResult:
    user: User | None  # None: refused
    locked_for_s: float = 0.0  # > 0: the account is locked (the password was not checked)
    failures: int = 0  # failures in a row so far (for the backoff delay)
    just_locked: bool = False  # this attempt's failure locked the account


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise UserError("user names are 1-32 characters: lower-case letters, digits, '.', '_' or '-'")
    return name


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UserError(f"passwords must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


@dataclass(frozen=True)
class _Result:
    rows: list[tuple]
    rowcount: int

    def fetchone(self) -> tuple | None:
        return self.rows[0] if self.rows else None

    def __iter__(self):
        return iter(self.rows)


class UserStore:
    def __init__(self, path: Path, lockout_after: int = 5, lockout_s: float = 900.0) -> None:
        self.path = path
        self.lockout_after = lockout_after
        self.lockout_s = lockout_s
        ensure_private_dir(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        self._db = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
        self._lock = threading.Lock()  # the supervisor checks passwords on a worker thread
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def _q(self, sql: str, params: tuple = ()) -> _Result:
        with self._lock:
            cur = self._db.execute(sql, params)
            return _Result(cur.fetchall(), cur.rowcount)

    def close(self) -> None:
        self._db.close()

    def _row(self, row: tuple | None) -> User | None:
        return User(row[0], row[1], row[2], row[3], row[4]) if row else None

    def get(self, name: str) -> User | None:
        return self._row(self._q(
            "SELECT name, role, failures, locked_until, last_login FROM users WHERE name = ?", (name,)).fetchone())

    def list(self) -> list[User]:
        return [User(*r) for r in self._q(
            "SELECT name, role, failures, locked_until, last_login FROM users ORDER BY name")]

    def add(self, name: str, role: str, password: str) -> User:
        check_name(name)
        check_password(password)
        if role not in ROLES:
            raise UserError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        try:
            self._q("INSERT INTO users (name, role, hash, created_at) VALUES (?,?,?,?)",
                             (name, role, _hasher.hash(password), time.time()))
        except sqlite3.IntegrityError:
            raise UserError(f"user {name!r} exists") from None
        user = self.get(name)
        assert user is not None
        return user

    def set_password(self, name: str, password: str) -> None:
        check_password(password)
        if self._q("UPDATE users SET hash = ?, failures = 0, locked_until = 0 WHERE name = ?",
                            (_hasher.hash(password), name)).rowcount == 0:
            raise UserError(f"no user {name!r}")

    def set_role(self, name: str, role: str) -> None:
        if role not in ROLES:
            raise UserError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if self._q("UPDATE users SET role = ? WHERE name = ?", (role, name)).rowcount == 0:
            raise UserError(f"no user {name!r}")

    def remove(self, name: str) -> None:
        if self._q("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
            raise UserError(f"no user {name!r}")

    def unlock(self, name: str) -> None:
        if self._q("UPDATE users SET failures = 0, locked_until = 0 WHERE name = ?",
                            (name,)).rowcount == 0:
            raise UserError(f"no user {name!r}")

    def authenticate(self, name: str, password: str, now: float | None = None) -> LoginResult:
        """Check a password. A locked account is refused without looking at the password; the
        lockout_after-th failure in a row locks it for lockout_s. Unknown names cost the same
        hash work as known ones."""
        now = time.time() if now is None else now
        if len(password) > MAX_PASSWORD:
            password = password[:MAX_PASSWORD]  # still hashed: same cost, never equal
        row = self._q("SELECT hash, failures, locked_until FROM users WHERE name = ?",
                               (name,)).fetchone()
        if row is None:
            try:
                _hasher.verify(_DUMMY_HASH, password)
            except VerificationError:
                pass
            return LoginResult(None)
        stored, failures, locked_until = row
        if locked_until > now:
            return LoginResult(None, locked_for_s=locked_until - now, failures=failures)
        if locked_until:  # a lock that has run out starts the count afresh
            failures = 0
        try:
            _hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            failures += 1
            lock = now + self.lockout_s if failures >= self.lockout_after else 0.0
            self._q("UPDATE users SET failures = ?, locked_until = ? WHERE name = ?",
                             (failures, lock, name))
            return LoginResult(None, locked_for_s=lock - now if lock else 0.0, failures=failures,
                               just_locked=bool(lock))
        if _hasher.check_needs_rehash(stored):
            self._q("UPDATE users SET hash = ? WHERE name = ?", (_hasher.hash(password), name))
        self._q("UPDATE users SET failures = 0, locked_until = 0, last_login = ? WHERE name = ?",
                         (now, name))
        return LoginResult(self.get(name))
