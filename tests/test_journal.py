"""The index journal (storage/journal.py) replays only the writes it journals: a line naming any
other method of the index, or a write with arguments it does not take, is set aside, never run,
and does not hold back the writes behind it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.storage.index import SqliteIndex
from gateway.storage.journal import Journal, JournaledIndex
from gateway.storage.rows import CallRow, utcnow


def test_replay_runs_only_journalled_writes(tmp_path: Path) -> None:
    backend = SqliteIndex(tmp_path / "index.sqlite3", create=True)
    backend.add_call(CallRow("call-1", utcnow()))
    backend.append_audit("gateway", "gateway.started", "node")
    journal = Journal(tmp_path / "journal")
    # What someone with the gateway's uid might write into the journal: any method by name
    # (the SQL pass-through of the PostgreSQL index), a write with a smuggled argument, and a
    # line that is not even an object. Between them, two honest writes.
    journal.append("query", {"sql": "DELETE FROM audit", "params": []})
    journal.append("end_call", {"call_id": "call-1", "ended_at": "2026-01-01T00:00:00Z"})
    journal.append("scrub_caller", {"call_id": "call-1", "sql": "x"})
    journal.append("_q", {"sql": "DELETE FROM audit"})
    with journal.path.open("a") as f:
        f.write('["append_audit"]\n')
    journal.append("append_audit", {"actor": "worker:1", "action": "call.ended", "subject": "call-1"})

    index = JournaledIndex(backend, tmp_path / "journal", retry_s=3600)
    try:
        assert index.replay()
        entries = backend.audit_entries()
        assert [e.action for e in entries] == ["gateway.started", "call.ended"]  # nothing deleted
        assert backend.get_call("call-1").ended_at == "2026-01-01T00:00:00Z"
        assert journal.entries() == []
        rejected = [
            json.loads(line) for line in journal.path.with_suffix(".rejected").read_text().splitlines()
        ]
        assert len(rejected) == 4
        assert [r["entry"].get("op") if isinstance(r["entry"], dict) else None for r in rejected] == [
            "query",
            "scrub_caller",
            "_q",
            None,
        ]
        assert journal.path.with_suffix(".rejected").stat().st_mode & 0o777 == 0o600
        assert backend.verify_audit().ok
    finally:
        index.close()


def test_a_damaged_entry_the_database_would_refuse_is_set_aside_and_replay_goes_on(tmp_path: Path) -> None:
    """Before test_fuzz.py found them, these reached the database and its own error (no
    ValueError) stopped the replay at the same entry at every retry: the writes behind it, a
    call's end and its audit entry, never reached the index."""
    backend = SqliteIndex(tmp_path / "index.sqlite3", create=True)
    backend.add_call(CallRow("call-1", utcnow()))
    journal = Journal(tmp_path / "journal")
    # A recording whose call's line was lost, values of the wrong kind, an update of nothing.
    journal.append(
        "add_recording", {"rec": {"id": "r1", "object_name": "o", "started_at": "s", "call_id": "gone"}}
    )
    journal.append("update_recording", {"rec_id": "r1", "bytes": {"a": 1}})
    journal.append("update_recording", {"rec_id": "r1"})
    with journal.path.open("a") as f:
        f.write(json.dumps({"id": "x", "at": "t", "op": "add_call", "args": {"call": {"$b64": 5}}}) + "\n")
    journal.append("end_call", {"call_id": "call-1", "ended_at": "2026-01-01T00:00:00Z"})
    journal.append("append_audit", {"actor": "worker:1", "action": "call.ended", "subject": "call-1"})
    index = JournaledIndex(backend, tmp_path / "journal", retry_s=3600)
    try:
        assert index.replay()
        assert backend.get_call("call-1").ended_at == "2026-01-01T00:00:00Z"
        assert [e.action for e in backend.audit_entries()] == ["call.ended"]
        rejected = journal.path.with_suffix(".rejected").read_text().splitlines()
        assert len(rejected) == 4 and journal.entries() == []
    finally:
        index.close()


def test_a_sqlite_index_held_by_another_writer_is_journalled_then_replayed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A running gateway's writes wait for a held SQLite file only as long as the index's wait;
    then they go to the journal (a warning, not the error of an index out of reach) and reach
    the file, in order, once it is free."""
    import logging
    import sqlite3
    import time

    path = tmp_path / "index.sqlite3"
    SqliteIndex(path, create=True).close()
    index = JournaledIndex(SqliteIndex(path, lock_wait_s=0.2), tmp_path / "journal", retry_s=0.1)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with caplog.at_level(logging.INFO, logger="gateway.storage.journal"):
            index.add_call(CallRow("c1", utcnow(), route="1177"))
            index.append_audit("gateway", "call.started", "c1")
            assert index.backlog == 2
            holder.execute("ROLLBACK")
            deadline = time.monotonic() + 10
            while index.backlog and time.monotonic() < deadline:
                time.sleep(0.05)
            assert index.backlog == 0, "replayed once the file was free"
            index.close()  # takes the journal's lock: the replayer's report is out by then
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
    levels = {r.getMessage().split(" (")[0].split(":")[0]: r.levelname for r in caplog.records}
    assert levels == {"index busy": "WARNING", "index free again": "INFO"}, levels
    plain = SqliteIndex(path)
    assert plain.get_call("c1").route == "1177"
    assert [e.action for e in plain.audit_entries()] == ["call.started"]
    plain.close()
