"""The index journal (storage/journal.py) replays only the writes it journals: a line naming any
other method of the index, or a write with arguments it does not take, is set aside, never run,
and does not hold back the writes behind it."""

from __future__ import annotations

import json
from pathlib import Path

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
