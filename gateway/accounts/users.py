"""Dashboard accounts: names, roles, argon2id password hashes, and failed-login lockout.

Stored in SQLite (`secrets/users.sqlite3`, 0600) so that `gateway user ...` and the running
supervisor can both change it safely. Lockout state lives here too, so that restarting the
supervisor does not unlock an account under attack.
"""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..storage.spool import ensure_private_dir
from ..storage.sqlitetx import immediate

ROLES = ("viewer", "supervisor", "auditor", "admin", "reviewer", "approver", "officer")
# What each role may do: "live" the live calls, "control" pause/resume/stop a call's recording,
# "audit" the audit log, "recordings" the recordings' metadata and consent receipts, "users" the
# accounts, "review" ask for access to a recording and use one's own grants, "approve" decide
# others' requests and revoke grants (governance/grants.py), "holds" place and release legal
# holds, "subject" search for a data subject's calls (decrypted in the page). Reviewers,
# approvers and officers handle recordings, not calls: no live view.
PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"live"}),
    "supervisor": frozenset({"live", "control"}),
    "auditor": frozenset({"live", "audit", "recordings"}),
    "admin": frozenset({"live", "users"}),
    "reviewer": frozenset({"recordings", "review"}),
    "approver": frozenset({"recordings", "approve"}),
    # The data protection officer: the audit trail, the recordings, legal holds; listens only
    # under a grant like any reviewer.
    "officer": frozenset({"recordings", "review", "holds", "subject", "audit"}),
}
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")
# What a login attempt with a name no account can have (NAME_RE refuses it) is counted as: such
# names never reach the log or the login records as typed.
INVALID_NAME = "-not-a-user-name-"
MIN_PASSWORD = 10
MAX_PASSWORD = 1024

_hasher = PasswordHasher()  # argon2id, the library's RFC 9106 "low memory" parameters
# Verified against when the name is unknown, so that a wrong name costs as much as a wrong password.
_DUMMY_HASH = _hasher.hash("not a password of anyone's")

# user_version 1: login attempts in their own table, for known and unknown names alike (so that
# both cost the same), and a generation that ends a user's sessions when it changes.
# user_version 2: a user's scope, the tenants whose calls they see ("": all).
SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL, created_at REAL NOT NULL,
    last_login REAL, generation INTEGER NOT NULL DEFAULT 0, scope TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS logins (
    name TEXT PRIMARY KEY, failures INTEGER NOT NULL DEFAULT 0, locked_until REAL NOT NULL DEFAULT 0,
    last_attempt REAL NOT NULL DEFAULT 0);
"""
MIGRATION_1 = """
CREATE TABLE logins (
    name TEXT PRIMARY KEY, failures INTEGER NOT NULL DEFAULT 0, locked_until REAL NOT NULL DEFAULT 0,
    last_attempt REAL NOT NULL DEFAULT 0);
INSERT INTO logins (name, failures, locked_until) SELECT name, failures, locked_until FROM users
    WHERE failures > 0 OR locked_until > 0;
ALTER TABLE users DROP COLUMN failures;
ALTER TABLE users DROP COLUMN locked_until;
ALTER TABLE users ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
"""
MIGRATION_2 = "ALTER TABLE users ADD COLUMN scope TEXT NOT NULL DEFAULT '';"
SCOPE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")  # a tenant's name (config/tenants.py)
PRUNE_EVERY = 256  # attempts between removals of stale unknown-name records
# A new account's first generation is drawn at random below this (PostgreSQL's INTEGER, with
# room for a million changes), so that an account removed and added again under the same name
# never takes up a generation an old session of the removed one carries.
_FIRST_GENERATION_BELOW = 2**31 - 2**20


class UserError(ValueError):
    """A refused user operation; the message is for the person who asked."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    failures: int
    locked_until: float
    last_login: float | None
    generation: int = 0  # changes with the password (and role): sessions from before end
    created_at: float = 0.0  # when the account was (last) added: no session from before it counts
    scope: str = ""  # the tenants (config/tenants.py) whose calls they see, comma-separated; "": all

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())

    @property
    def tenants(self) -> Scope:
        """The tenants this user's views are limited to; None: every tenant (no scope)."""
        return frozenset(self.scope.split(",")) if self.scope else None


Scope = frozenset[str] | None  # the tenants a user sees (User.tenants); None: all


def in_scope(scope: Scope, tenant: object) -> bool:
    """Whether a user of `scope` may see (or learn of) a call or recording of `tenant` (None or
    "": no tenant, which only an unscoped user sees)."""
    return scope is None or (isinstance(tenant, str) and tenant in scope)


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


def check_scope(tenants: list[str] | tuple[str, ...]) -> str:
    """A scope as stored: tenant names, sorted, comma-separated ("" for none: every tenant)."""
    for t in tenants:
        if not SCOPE_NAME_RE.fullmatch(t):
            raise UserError(f"{t!r} is not a tenant name (lower-case letters, digits, '-' or '_')")
    return ",".join(sorted(set(tenants)))


_USER_COLUMNS = (
    "u.name, u.role, COALESCE(l.failures, 0), COALESCE(l.locked_until, 0), u.last_login, "
    "u.generation, u.created_at, u.scope FROM users u LEFT JOIN logins l ON l.name = u.name"
)


class UserStore:
    """Accounts and login attempts. Safe to share between threads and processes: every change
    is one SQLite transaction (the CLI and the running supervisor use the same file)."""

    def __init__(self, path: Path, lockout_after: int = 5, lockout_s: float = 900.0) -> None:
        self.path = path
        self.lockout_after = lockout_after
        self.lockout_s = lockout_s
        ensure_private_dir(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        self._db = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
        self._lock = threading.Lock()  # the supervisor checks passwords on worker threads
        self._db.execute("PRAGMA journal_mode=WAL")
        self._attempts = 0
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if version < SCHEMA_VERSION and "users" in tables:
            steps = [MIGRATION_1, MIGRATION_2][version:]
            self._db.executescript(
                "BEGIN IMMEDIATE;\n" + "\n".join(steps) + f"\nPRAGMA user_version={SCHEMA_VERSION};\nCOMMIT;"
            )
        else:
            self._db.executescript(SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _q(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[list[tuple[Any, ...]], int]:
        with self._lock:
            cur = self._db.execute(sql, params)
            return cur.fetchall(), cur.rowcount

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """One transaction that no other process's attempt interleaves with; yields something
        with `execute(sql, params)` (`?` placeholders)."""
        with immediate(self._db, self._lock) as db:
            yield db

    def close(self) -> None:
        self._db.close()

    def get(self, name: str) -> User | None:
        rows, _ = self._q(f"SELECT {_USER_COLUMNS} WHERE u.name = ?", (name,))
        return User(*rows[0]) if rows else None

    def list(self) -> list[User]:
        return [User(*r) for r in self._q(f"SELECT {_USER_COLUMNS} ORDER BY u.name")[0]]

    def add(self, name: str, role: str, password: str, scope: str = "") -> User:
        check_name(name)
        check_password(password)
        if role not in ROLES:
            raise UserError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        scope = check_scope(scope.split(",") if scope else [])
        _, added = self._q(
            "INSERT INTO users (name, role, hash, created_at, generation, scope) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT (name) DO NOTHING",
            (
                name,
                role,
                _hasher.hash(password),
                time.time(),
                1 + secrets.randbelow(_FIRST_GENERATION_BELOW),
                scope,
            ),
        )
        if added == 0:
            raise UserError(f"user {name!r} exists")
        self._q("DELETE FROM logins WHERE name = ?", (name,))  # failures against the name before it existed
        user = self.get(name)
        assert user is not None
        return user

    def set_password(self, name: str, password: str) -> None:
        """A new password: open sessions of this user end (the generation changes), and any
        lockout is lifted."""
        check_password(password)
        if (
            self._q(
                "UPDATE users SET hash = ?, generation = generation + 1 WHERE name = ?",
                (_hasher.hash(password), name),
            )[1]
            == 0
        ):
            raise UserError(f"no user {name!r}")
        self._q("DELETE FROM logins WHERE name = ?", (name,))

    def set_role(self, name: str, role: str) -> None:
        if role not in ROLES:
            raise UserError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if (
            self._q("UPDATE users SET role = ?, generation = generation + 1 WHERE name = ?", (role, name))[1]
            == 0
        ):
            raise UserError(f"no user {name!r}")

    def set_scope(self, name: str, scope: str) -> None:
        """A new scope ("": every tenant): open sessions of this user end (what they saw was
        another scope's)."""
        scope = check_scope(scope.split(",") if scope else [])
        if (
            self._q("UPDATE users SET scope = ?, generation = generation + 1 WHERE name = ?", (scope, name))[
                1
            ]
            == 0
        ):
            raise UserError(f"no user {name!r}")

    def remove(self, name: str) -> None:
        if self._q("DELETE FROM users WHERE name = ?", (name,))[1] == 0:
            raise UserError(f"no user {name!r}")
        self._q("DELETE FROM logins WHERE name = ?", (name,))

    def unlock(self, name: str) -> None:
        """Clear a lockout: of a user, or of a name that is not one (an attack on a guessed name)."""
        removed = self._q("DELETE FROM logins WHERE name = ?", (name,))[1]
        if removed == 0 and self.get(name) is None:
            raise UserError(f"no user {name!r} and no lockout of that name")

    def _reserve(self, name: str, now: float) -> tuple[float, int, bool]:
        """Count this attempt as a failure before its password is checked, in one transaction.

        Returns (locked for how long, failures so far, just locked). An attempt against a locked
        name, or beyond lockout_after attempts in flight at once, is refused without a check:
        parallel guesses cannot multiply the limit. Unknown names take exactly the same path.
        """
        with self._transaction() as tx:
            row = tx.execute("SELECT failures, locked_until FROM logins WHERE name = ?", (name,)).fetchone()
            failures, locked_until = row if row else (0, 0.0)
            if locked_until > now:
                return locked_until - now, failures, False
            if locked_until:  # a lock that has run out starts the count afresh
                failures = 0
            just_locked = failures >= self.lockout_after
            lock = now + self.lockout_s if just_locked else 0.0
            failures = failures if just_locked else failures + 1
            tx.execute(
                "INSERT INTO logins (name, failures, locked_until, last_attempt) VALUES (?,?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET failures = excluded.failures, "
                "locked_until = excluded.locked_until, last_attempt = excluded.last_attempt",
                (name, failures, lock, now),
            )
        self._attempts += 1
        if self._attempts % PRUNE_EVERY == 0:
            self._q(
                "DELETE FROM logins WHERE locked_until < ? AND last_attempt < ? AND name NOT IN "
                "(SELECT name FROM users)",
                (now, now - self.lockout_s),
            )
        return (self.lockout_s if just_locked else 0.0), failures, just_locked

    def authenticate(self, name: str, password: str, now: float | None = None) -> LoginResult:
        """Check a password. The attempt is counted first (see _reserve); the lockout_after-th
        failure in a row locks the name for lockout_s. A known and an unknown name cost the
        same: one write, one argon2 verification."""
        now = time.time() if now is None else now
        if len(password) > MAX_PASSWORD:
            password = password[:MAX_PASSWORD]  # still hashed: same cost, never equal
        locked_for, failures, just_locked = self._reserve(name, now)
        if locked_for > 0:
            return LoginResult(None, locked_for_s=locked_for, failures=failures, just_locked=just_locked)
        rows, _ = self._q("SELECT hash FROM users WHERE name = ?", (name,))
        stored = rows[0][0] if rows else _DUMMY_HASH
        try:
            _hasher.verify(stored, password)
            ok = bool(rows)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        if not ok:
            if failures >= self.lockout_after:
                self._q("UPDATE logins SET locked_until = ? WHERE name = ?", (now + self.lockout_s, name))
                return LoginResult(None, locked_for_s=self.lockout_s, failures=failures, just_locked=True)
            return LoginResult(None, failures=failures)
        if _hasher.check_needs_rehash(stored):
            self._q("UPDATE users SET hash = ? WHERE name = ?", (_hasher.hash(password), name))
        self._q("DELETE FROM logins WHERE name = ?", (name,))
        self._q("UPDATE users SET last_login = ? WHERE name = ?", (now, name))
        return LoginResult(self.get(name))
