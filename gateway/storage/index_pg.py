"""The index in PostgreSQL: what several gateway nodes share (`[index] url = "postgresql://..."`).

The same tables and queries as the SQLite index (index.py's SqlIndex), on psycopg 3. The
audit chain stays one chain whatever the number of nodes: an append takes a transaction-scoped
advisory lock before it reads the head, so concurrent appends from any node queue up behind
each other and each links to the one before (no forks, no gaps). Schema migrations run at
start, under the same kind of lock, and an index written by a newer gateway is refused.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..config.values import redact_url
from . import index as ix
from . import schema
from .index import IndexAccessError, IndexUnavailable, SqlIndex

log = logging.getLogger(__name__)

# Arbitrary, fixed: the advisory locks that serialise audit appends and migrations.
AUDIT_LOCK = 0x636F6E73656E7401
MIGRATION_LOCK = 0x636F6E73656E7402
USERS_LOCK = 0x636F6E73656E7403  # login attempts are counted one at a time


def redact(url: str) -> str:
    """The URL without its password (in its user part or its query string), for messages."""
    return redact_url(url)


class _Result:
    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self.rows, self.rowcount = rows, rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [e.__class__.__name__])[0]


class PgIndex(SqlIndex):
    """PostgreSQL through one psycopg connection, serialised by a lock (the index is shared
    by the threads of one process; every process has its own connection).

    A lost connection is reopened on the next use. Connection trouble raises IndexUnavailable
    (try again later); anything else IndexAccessError. `lazy`: a database out of reach at start is
    not an error yet (a worker starts, and journals, during an outage); the CLI is strict.
    """

    DIALECT = schema.POSTGRESQL

    def __init__(self, url: str, *, connect_timeout_s: float = 5.0, lazy: bool = False) -> None:
        import psycopg

        self.url = url
        self.where = redact(url)
        self.connect_timeout_s = connect_timeout_s
        self._psycopg = psycopg
        self._lock = threading.RLock()
        self._db: Any = None
        try:
            with self._lock:
                self._connect()
        except IndexUnavailable as e:
            if not lazy:
                raise IndexAccessError(f"cannot use the index at {self.where}: {e}") from None
            log.error("index %s unreachable at start: %s", self.where, e)

    def _connect(self) -> Any:
        psycopg = self._psycopg
        try:
            self._db = psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout_s))
            )
        except psycopg.OperationalError as e:
            self._db = None
            raise IndexUnavailable(_first_line(e)) from None
        except psycopg.Error as e:
            self._db = None
            raise IndexAccessError(f"cannot use the index at {self.where}: {_first_line(e)}") from None
        try:
            self.migrate()
        except psycopg.OperationalError as e:
            self._drop()
            raise IndexUnavailable(_first_line(e)) from None
        except psycopg.Error as e:
            self._drop()
            raise IndexAccessError(f"cannot use the index at {self.where}: {_first_line(e)}") from None
        return self._db

    def _drop(self) -> None:
        try:
            if self._db is not None:
                self._db.close()
        except Exception:
            pass
        self._db = None

    def _conn(self) -> Any:
        if self._db is None or self._db.closed or self._db.broken:
            return self._connect()
        return self._db

    def _failed(self, e: Exception) -> IndexAccessError:
        if isinstance(e, self._psycopg.OperationalError | self._psycopg.InterfaceError):
            self._drop()
            return IndexUnavailable(f"index {self.where}: {_first_line(e)}")
        return IndexAccessError(f"index {self.where}: {_first_line(e)}")

    # -- SqlIndex plumbing -----------------------------------------------------------------

    def _q(self, sql: str, params: tuple[Any, ...] = ()) -> _Result:
        with self._lock:
            db = self._conn()
            try:
                cur = db.execute(sql.replace("?", "%s"), params)
                rows = cur.fetchall() if cur.description is not None else []
                return _Result(rows, cur.rowcount)
            except self._psycopg.Error as e:
                raise self._failed(e) from e

    def _audit_transaction(self) -> Any:
        return self.locked_transaction(AUDIT_LOCK)

    @contextmanager
    def locked_transaction(self, lock: int) -> Iterator[Any]:
        """One transaction holding the advisory lock `lock` (no other process holding it runs
        at the same time); yields something with `execute(sql, params)`, `?` placeholders."""
        with self._lock:
            db = self._conn()
            try:
                with db.transaction():
                    db.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
                    yield _Tx(db)
            except self._psycopg.Error as e:
                raise self._failed(e) from e

    def insert_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """One INSERT (`?` placeholders) for many rows, in one transaction (migrate.py)."""
        if not rows:
            return
        with self._lock:
            db = self._conn()
            try:
                with db.transaction(), db.cursor() as cur:
                    cur.executemany(sql.replace("?", "%s"), rows)
            except self._psycopg.Error as e:
                raise self._failed(e) from e

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[list[tuple[Any, ...]], int]:
        """One statement (`?` placeholders): its rows and rowcount. For the dashboard's
        accounts and sessions, which share this database (accounts/users_pg.py)."""
        result = self._q(sql, params)
        return result.rows, result.rowcount

    # -- schema ----------------------------------------------------------------------------

    def schema_version(self) -> int:
        row = self._db.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return 0
        row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        return int(row[0]) if row else 0

    @contextmanager
    def _migration_scope(self) -> Iterator[None]:
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            yield

    def _create(self, script: str) -> None:
        self._db.execute(script)
        self._db.execute("INSERT INTO meta VALUES ('schema', %s)", (str(schema.SCHEMA_VERSION),))

    def _apply(self, script: str, target: int) -> None:
        # Inside the migration scope's transaction: every step commits together, or none does.
        self._db.execute(script)
        self._db.execute("UPDATE meta SET value=%s WHERE key='schema'", (str(target),))

    def close(self) -> None:
        with self._lock:
            self._drop()


class _Tx:
    """The cursor-ish face SqlIndex.append_audit uses inside the audit transaction."""

    def __init__(self, db: Any) -> None:
        self._db = db

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._db.execute(sql.replace("?", "%s"), params)


__all__ = ["PgIndex", "ix", "redact"]
