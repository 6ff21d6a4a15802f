"""Versioned schema migrations: an index written by an older gateway is brought up to date at
start (and loses what the newer one no longer keeps); a newer one is refused clearly."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway import age
from gateway.cli import exitcodes
from gateway.storage import pii, schema
from gateway.storage.rows import RecordingStatus
from tests.gw import GatewayUnderTest, make_gateway

# The schema of gateways before version 2, as they wrote it.
SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE calls (
    id TEXT PRIMARY KEY, started_at TEXT NOT NULL, ended_at TEXT, route TEXT,
    caller_enc BLOB, caller_hash TEXT);
CREATE INDEX calls_caller_hash ON calls(caller_hash);
CREATE TABLE recordings (
    id TEXT PRIMARY KEY, object_name TEXT NOT NULL UNIQUE, started_at TEXT NOT NULL,
    status TEXT NOT NULL, call_id TEXT REFERENCES calls(id), origin TEXT NOT NULL,
    media_type TEXT NOT NULL, sample_rate INTEGER, channels INTEGER, finished_at TEXT,
    duration_s REAL, bytes INTEGER NOT NULL DEFAULT 0, sha256 TEXT, route TEXT,
    retention_days INTEGER, error TEXT, source_enc BLOB, source_hash TEXT UNIQUE, writer TEXT, signature TEXT);
CREATE TABLE holds (
    id INTEGER PRIMARY KEY, recording_id TEXT NOT NULL REFERENCES recordings(id), reason TEXT NOT NULL,
    actor TEXT NOT NULL, created_at TEXT NOT NULL, released_at TEXT, released_by TEXT, release_reason TEXT);
CREATE TABLE consent_receipts (
    call_id TEXT PRIMARY KEY REFERENCES calls(id), receipt TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    subject TEXT NOT NULL, details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
INSERT INTO meta VALUES ('schema', '1');
"""
HASH = "5f2b" * 16  # what an HMAC of a number looked like


@pytest.fixture
def old_gateway(tmp_path: Path) -> GatewayUnderTest:
    tgw = make_gateway(tmp_path)
    db_path = tgw.dir / "index.sqlite3"
    db_path.unlink()
    db = sqlite3.connect(db_path)
    db.executescript(SCHEMA_V1)
    sealed = pii.seal_value("+46701234567", [age.parse_recipient(tgw.recipient)])
    db.execute("INSERT INTO calls VALUES ('c1', '2026-01-01T00:00:00Z', NULL, '*', ?, ?)", (sealed, HASH))
    db.execute(
        "INSERT INTO recordings (id, object_name, started_at, status, call_id, origin, media_type, bytes,"
        " source_hash) VALUES ('r1', ?, '2026-01-01T00:00:00Z', 'complete', 'c1', 'call', 'audio/wav', 0,"
        " ?)",
        ("ab" * 16 + ".age", HASH[::-1]),
    )
    db.execute("INSERT INTO holds (recording_id, reason, actor, created_at) VALUES ('r1', 'x', 'y', 'z')")
    db.commit()
    db.close()
    (tgw.dir / "secrets" / "lookup.key").write_bytes(b"k" * 32)
    return tgw


def test_an_old_index_is_migrated_and_loses_its_lookup_hashes(old_gateway: GatewayUnderTest) -> None:
    gw = old_gateway.open()
    assert gw.index.schema_version() == schema.SCHEMA_VERSION
    assert gw.index.get_recording("r1").status == RecordingStatus.COMPLETE
    assert gw.index.active_holds("r1")[0]["reason"] == "x"
    assert [c for c, _ in gw.index.encrypted_callers()] == ["c1"]
    # Neither the hashes nor the key that made them brute-forceable survive anywhere on disk.
    gw.close()
    raw = b"".join(p.read_bytes() for p in old_gateway.dir.glob("index.sqlite3*"))
    assert HASH.encode() not in raw and HASH[::-1].encode() not in raw
    assert not (old_gateway.dir / "secrets" / "lookup.key").exists()
    actions = [(e.action, e.subject) for e in old_gateway.open().index.audit_entries()]
    assert ("index.migrated", "2") in actions and ("secret.removed", "lookup.key") in actions
    # Opening again migrates nothing more.
    old_gateway.open().close()
    migrations = [s for a, s in actions if a == "index.migrated"]
    assert migrations == [str(v) for v in range(2, schema.SCHEMA_VERSION + 1)], "one entry per version"
    after = [e.subject for e in old_gateway.open().index.audit_entries() if e.action == "index.migrated"]
    assert after == migrations


def test_an_index_from_a_newer_gateway_is_refused(old_gateway: GatewayUnderTest, capsys) -> None:
    db = sqlite3.connect(old_gateway.dir / "index.sqlite3")
    db.execute("UPDATE meta SET value='99' WHERE key='schema'")
    db.commit()
    db.close()
    assert old_gateway.run("recordings", "list") == exitcodes.EXIT_STORAGE
    assert "has schema 99, newer than this gateway's" in capsys.readouterr().err
