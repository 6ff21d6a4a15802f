"""One SQLite write transaction that takes the database's write lock before anything is read
(BEGIN IMMEDIATE), so that another process's transaction cannot interleave with it; for the
index and the dashboard's accounts alike."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def immediate(db: sqlite3.Connection, lock: threading.Lock | threading.RLock) -> Iterator[sqlite3.Connection]:
    """`db` must be in autocommit mode (isolation_level=None); `lock` serialises this process's
    threads on it."""
    with lock:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
