"""Dashboard accounts in the shared PostgreSQL index, for nodes that are one system: an account
added on one node logs in on every node's dashboard, and a lockout is one lockout everywhere.

The same queries as the SQLite store (users.py), over the index's connection; a login attempt
is counted in a transaction that holds an advisory lock, so that parallel guesses on several
nodes get no more checks than `lockout_after`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..storage.index_pg import USERS_LOCK, PgIndex
from .users import UserStore


class PgUserStore(UserStore):
    def __init__(self, index: PgIndex, lockout_after: int = 5, lockout_s: float = 900.0) -> None:
        # Not UserStore.__init__: there is no file; the index created the tables (schema 4).
        self.index = index
        self.lockout_after = lockout_after
        self.lockout_s = lockout_s
        self._attempts = 0

    def _q(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[list[tuple[Any, ...]], int]:
        return self.index.query(sql, params)

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self.index.locked_transaction(USERS_LOCK) as tx:
            yield tx

    def close(self) -> None:
        pass  # the index's connection is the gateway's to close
