"""An embedded node (SQLite index, dashboard accounts in secrets/) moved into the shared
PostgreSQL index, without losing or duplicating anything, and safe to run again after an
interruption: every row is inserted only if it is not there yet.

Calls, recordings, consent receipts and holds are copied as they are (their ids are random,
so nodes never collide). The node's audit chain cannot be spliced into the shared one (its
hashes link to its own genesis), so it is kept whole, as `gateway audit export` lines, in the
shared index's audit archive, and one entry of the shared chain (`index.migrated_from`) binds
its head hash, length and SHA-256: `gateway audit verify` checks every archived chain against
that entry. Dashboard accounts are copied unless the name exists already (kept as it is).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from . import audit
from .index import SqliteIndex
from .index_pg import PgIndex
from .rows import CallRow, RecordingRow

BATCH = 1000
BOUND = "index.migrated_from"


@dataclass
class MigrationReport:
    calls: int = 0
    recordings: int = 0
    receipts: int = 0
    holds: int = 0
    audit_entries: int = 0
    audit_ok: bool = True
    audit_bound_now: bool = False  # False: an earlier run had bound it already
    users: int = 0
    users_kept: list[str] = field(default_factory=list)  # names the shared index already had


def _copy(source: SqliteIndex, dest: PgIndex, select: str, insert: str) -> int:
    rows = source._q(select).fetchall()
    for i in range(0, len(rows), BATCH):
        dest.insert_many(insert, [tuple(r) for r in rows[i : i + BATCH]])
    return len(rows)


def copy_index(source: SqliteIndex, dest: PgIndex, label: str, actor: str) -> MigrationReport:
    report = MigrationReport()
    calls = [f.name for f in fields(CallRow)]
    report.calls = _copy(
        source,
        dest,
        f"SELECT {','.join(calls)} FROM calls",
        f"INSERT INTO calls ({','.join(calls)}) VALUES ({','.join('?' * len(calls))}) ON CONFLICT (id) DO NOTHING",
    )
    recs = [f.name for f in fields(RecordingRow)]
    report.recordings = _copy(
        source,
        dest,
        f"SELECT {','.join(recs)} FROM recordings",
        f"INSERT INTO recordings ({','.join(recs)}) VALUES ({','.join('?' * len(recs))}) "
        "ON CONFLICT (id) DO NOTHING",
    )
    report.receipts = _copy(
        source,
        dest,
        "SELECT call_id, receipt, created_at FROM consent_receipts",
        "INSERT INTO consent_receipts (call_id, receipt, created_at) VALUES (?,?,?) ON CONFLICT (call_id) DO NOTHING",
    )
    holds = source._q(
        "SELECT recording_id, reason, actor, created_at, released_at, released_by, release_reason FROM holds"
    ).fetchall()
    dest.insert_many(
        "INSERT INTO holds (recording_id, reason, actor, created_at, released_at, released_by, release_reason) "
        "SELECT ?,?,?,?,?,?,? WHERE NOT EXISTS (SELECT 1 FROM holds WHERE recording_id = ? AND "
        "created_at = ? AND reason = ? AND actor = ?)",
        [(*h, h[0], h[3], h[1], h[2]) for h in holds],
    )
    report.holds = len(holds)
    _archive_audit(source, dest, label, actor, report)
    return report


def _archive_audit(
    source: SqliteIndex, dest: PgIndex, label: str, actor: str, report: MigrationReport
) -> None:
    entries = source.audit_entries()
    verdict = audit.verify(entries)
    report.audit_entries, report.audit_ok = len(entries), verdict.ok
    lines = [json.dumps(e.as_json(), sort_keys=True) for e in entries]
    dest.insert_many(
        "INSERT INTO audit_archive (source, n, line) VALUES (?,?,?) ON CONFLICT (source, n) DO NOTHING",
        [(label, n, line) for n, line in enumerate(lines)],
    )
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    for e in dest.audit_entries():
        if e.action == BOUND and e.subject == label and e.details.get("sha256") == digest:
            return  # bound by an earlier run
    dest.append_audit(
        actor,
        BOUND,
        label,
        {
            "entries": len(entries),
            "head_seq": verdict.head_seq,
            "head": verdict.head_hash,
            "sha256": digest,
            "intact": verdict.ok,
            "calls": report.calls,
            "recordings": report.recordings,
        },
    )
    report.audit_bound_now = True


def check_archives(index: Any) -> list[str]:
    """Problems with the audit chains archived by migrations: each must verify, and match the
    head, length and SHA-256 that its `index.migrated_from` entry in the shared chain bound."""
    problems = []
    bound = {e.subject: e.details for e in index.audit_entries() if e.action == BOUND}
    for source, lines in index.archived_audit().items():
        details = bound.get(source)
        if details is None:
            problems.append(f"archived audit chain of {source}: no {BOUND} entry binds it")
            continue
        try:
            entries = [audit.AuditEntry.from_json(json.loads(line)) for line in lines]
        except (ValueError, TypeError) as e:
            problems.append(f"archived audit chain of {source}: unreadable ({e})")
            continue
        verdict = audit.verify(entries)
        digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
        if digest != details.get("sha256") or len(entries) != details.get("entries"):
            problems.append(f"archived audit chain of {source} differs from what {BOUND} bound")
        elif verdict.head_hash != details.get("head"):
            problems.append(f"archived audit chain of {source} ends at another head than {BOUND} bound")
        elif not verdict.ok and details.get("intact"):
            assert verdict.problem is not None
            problems.append(f"archived audit chain of {source}: {verdict.problem.message}")
    return problems


def copy_users(path: Path, dest: PgIndex, report: MigrationReport) -> None:
    """Dashboard accounts from a node's secrets/users.sqlite3 (argon2id hashes, roles, scopes)."""
    if not path.exists():
        return
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        columns = {r[1] for r in db.execute("PRAGMA table_info(users)")}
        scope = "scope" if "scope" in columns else "''"  # a file no gateway with scopes opened yet
        rows = db.execute(
            f"SELECT name, role, hash, created_at, last_login, generation, {scope} FROM users"
        ).fetchall()
    finally:
        db.close()
    for row in rows:
        _, added = dest.query(
            "INSERT INTO users (name, role, hash, created_at, last_login, generation, scope) "
            "VALUES (?,?,?,?,?,?,?) ON CONFLICT (name) DO NOTHING",
            tuple(row),
        )
        if added:
            report.users += 1
        else:
            existing, _ = dest.query("SELECT hash, role FROM users WHERE name = ?", (row[0],))
            if existing and (existing[0][0], existing[0][1]) != (row[2], row[1]):
                report.users_kept.append(row[0])
