"""The index: calls, recordings, consent receipts and the audit log.

`Index` is the interface; `SqlIndex` its queries in SQL; `SqliteIndex` the embedded default and
`index_pg.PgIndex` the one several nodes share. It holds no audio and no readable caller numbers.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from . import audit, schema
from .audit import AuditEntry
from .rows import (
    STATUSES,
    CallRow,
    GrantCategory,
    GrantRow,
    GrantState,
    RecordingQuery,
    RecordingRow,
    RecordingStatus,
    utcnow,
)
from .sqlitetx import immediate

log = logging.getLogger(__name__)


class IndexAccessError(Exception):
    """The index cannot be used (missing, corrupt, locked, wrong schema)."""


class IndexUnavailable(IndexAccessError):
    """The index is out of reach for now (a database server down or cut off): try again later."""


class IndexBusy(IndexUnavailable):
    """Another writer held the SQLite index longer than this process waits: try again later."""


class NotFound(KeyError):
    pass


class Index(ABC):
    @abstractmethod
    def add_call(self, call: CallRow) -> None: ...

    @abstractmethod
    def end_call(self, call_id: str, ended_at: str) -> None: ...

    @abstractmethod
    def get_call(self, call_id: str) -> CallRow: ...

    @abstractmethod
    def update_session(self, call_id: str, parties_enc: bytes | None, siprec: str) -> None:
        """A recording session's participants and identifiers, as its client last described them."""

    @abstractmethod
    def add_recording(self, rec: RecordingRow) -> None: ...

    @abstractmethod
    def update_recording(self, rec_id: str, **changes: Any) -> None: ...

    @abstractmethod
    def checkpoint_recording(self, rec_id: str, sealed_bytes: int, sha256: str) -> None:
        """While a recording is being written: the writer's record that the object's first
        `sealed_bytes` bytes are durable and hash to `sha256`. Crash recovery signs only that."""

    @abstractmethod
    def get_recording(self, rec_id: str) -> RecordingRow: ...

    @abstractmethod
    def list_recordings(self, status: str | None = None) -> list[RecordingRow]: ...

    @abstractmethod
    def find_recording_by_fingerprint(self, fingerprint: str) -> RecordingRow | None: ...

    @abstractmethod
    def recording_by_object(self, object_name: str) -> RecordingRow | None: ...

    @abstractmethod
    def recordings_of_call(self, call_id: str) -> list[RecordingRow]: ...

    @abstractmethod
    def put_consent_receipt(self, call_id: str, receipt: dict[str, Any]) -> None:
        """Store or replace the call's receipt (written at the decision, updated at the end)."""

    @abstractmethod
    def get_consent_receipt(self, call_id: str) -> dict[str, Any]: ...

    @abstractmethod
    def encrypted_callers(
        self,
        after: str = "",
        limit: int = 1000,
        since: str | None = None,
        until: str | None = None,
        tenants: frozenset[str] | None = None,
    ) -> list[tuple[str, bytes]]:
        """(call id, sealed value) of up to `limit` calls with a number, by call id, after `after`:
        the caller's number, and a recording session's sealed participants (pii.opened_numbers).
        `since`/`until`: only calls that started in that period (until excluded). `tenants`:
        only these tenants' calls (None: every one's)."""

    @abstractmethod
    def calls_by_ids(self, call_ids: list[str]) -> list[CallRow]: ...

    @abstractmethod
    def scrub_caller(self, call_id: str) -> None:
        """Forget the caller's (encrypted) number for an erased subject."""

    @abstractmethod
    def reseal_call(self, call_id: str, caller_enc: bytes | None, parties_enc: bytes | None) -> None:
        """Replace a call's sealed number and participants (encrypted to new recipients)."""

    @abstractmethod
    def add_hold(self, rec_id: str, reason: str, actor: str) -> int: ...

    @abstractmethod
    def release_holds(self, rec_id: str, reason: str, actor: str) -> int:
        """Release every active hold on a recording; returns how many."""

    @abstractmethod
    def active_holds(self, rec_id: str | None = None) -> list[dict[str, Any]]: ...

    @abstractmethod
    def page_recordings(self, q: RecordingQuery) -> list[RecordingRow]:
        """One page of recordings, newest first (or oldest), by an index-backed keyset query."""

    @abstractmethod
    def add_grant(self, g: GrantRow) -> None: ...

    @abstractmethod
    def get_grant(self, grant_id: str) -> GrantRow: ...

    @abstractmethod
    def replace_grant(self, g: GrantRow, expect: GrantState) -> bool:
        """Store `g` over the grant of its id if that is still in state `expect` (so that two
        approvers, or a fetch and the sweep, move it once); False if it was not."""

    @abstractmethod
    def grants(
        self,
        *,
        requester: str | None = None,
        states: tuple[GrantState, ...] = (),
        recording_id: str | None = None,
        due_by: float | None = None,
        limit: int = 200,
        tenants: frozenset[str] | None = None,
    ) -> list[GrantRow]:
        """Grants, newest request first; `due_by`: approved ones expiring by then; `tenants`:
        only those for these tenants' recordings (None: every one's)."""

    @abstractmethod
    def append_audit(
        self, actor: str, action: str, subject: str, details: dict[str, Any] | None = None
    ) -> AuditEntry: ...

    @abstractmethod
    def audit_entries(self) -> list[AuditEntry]: ...

    @abstractmethod
    def audit_head(self) -> tuple[int, str]:
        """(sequence number, hash) of the last entry; (0, GENESIS) for an empty log."""

    def probe_writable(self) -> None:
        """IndexUnavailable unless a write would reach the index now."""
        self.audit_head()

    @abstractmethod
    def add_checkpoint(self, cp: audit.Checkpoint) -> None: ...

    @abstractmethod
    def checkpoints(self) -> list[audit.Checkpoint]:
        """The checkpoints this gateway signed (its own copy; the witness holds the one that counts)."""

    @abstractmethod
    def add_signing_key(self, fingerprint: str, node: str, public_pem: str) -> None:
        """Publish a node's signing key (kept once per fingerprint) so that every node can check
        what it signed (governance/signers.py)."""

    @abstractmethod
    def signing_keys(self) -> list[tuple[str, str, str, str]]:
        """(fingerprint, node, public key PEM, added at) of every published signing key."""

    def verify_audit(self) -> audit.ChainVerdict:
        return audit.verify(self.audit_entries())

    def nodes(self) -> list[tuple[str, dict[str, Any], float]]:
        """The nodes that share this index: name, last status and heartbeat time (cluster.py)."""
        return []

    def archived_audit(self) -> dict[str, list[str]]:
        """Audit chains of indexes migrated into this one: source -> its `audit export` lines."""
        return {}

    @abstractmethod
    def close(self) -> None: ...


_RECORDING_COLUMNS = [f.name for f in fields(RecordingRow)]


class SqlIndex(Index):
    """The queries of an index in SQL, shared by the SQLite and PostgreSQL backends. Written with
    `?` placeholders; a backend provides `_q` (run one statement, return its rows and rowcount)
    and `_audit_transaction` (a transaction in which no other process can append to the audit
    log, so that every entry links to the one before it)."""

    def _q(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        raise NotImplementedError

    def _audit_transaction(self) -> Any:
        raise NotImplementedError

    # -- the schema: one runner for both backends (schema.py) ---------------------------------

    DIALECT: schema.Dialect
    where: str  # how messages name this index

    def schema_version(self) -> int:
        raise NotImplementedError

    def _migration_scope(self) -> AbstractContextManager[Any]:
        """What the whole check-and-migrate runs under (PostgreSQL: one transaction holding the
        migration lock, so that nodes starting together migrate once)."""
        return nullcontext()

    def _create(self, script: str) -> None:
        raise NotImplementedError

    def _apply(self, script: str, target: int) -> None:
        """Run one migration's script and set the schema version to `target`, atomically."""
        raise NotImplementedError

    def _migrated(self) -> None:
        """After migrations: what the backend does to leave nothing of the old schema behind."""

    def migrate(self) -> None:
        """Create the schema, or bring an older one up to date one version at a time, each step
        logged and audited; refuse an index written by a newer gateway."""
        done: list[tuple[int, str]] = []
        with self._migration_scope():
            version = self.schema_version()
            if version > schema.SCHEMA_VERSION:
                raise IndexAccessError(
                    f"index {self.where} has schema {version}, newer than this gateway's "
                    f"{schema.SCHEMA_VERSION}: run the newer gateway, or upgrade this one"
                )
            if version == 0:
                self._create(schema.schema(self.DIALECT))
                return
            for target in range(max(version, self.DIALECT.first_version) + 1, schema.SCHEMA_VERSION + 1):
                why, script = schema.migration(target, self.DIALECT)
                self._apply(script, target)
                log.warning("index %s migrated to schema %d: %s", self.where, target, why)
                done.append((target, why))
        for target, why in done:
            self.append_audit("gateway", "index.migrated", str(target), {"from": target - 1, "why": why})
        if done:
            self._migrated()

    def add_call(self, call: CallRow) -> None:
        d = asdict(call)
        self._q(f"INSERT INTO calls ({','.join(d)}) VALUES ({','.join('?' * len(d))})", tuple(d.values()))

    def end_call(self, call_id: str, ended_at: str) -> None:
        self._q("UPDATE calls SET ended_at=? WHERE id=?", (ended_at, call_id))

    def update_session(self, call_id: str, parties_enc: bytes | None, siprec: str) -> None:
        self._q("UPDATE calls SET parties_enc=?, siprec=? WHERE id=?", (parties_enc, siprec, call_id))

    def get_call(self, call_id: str) -> CallRow:
        cols = [f.name for f in fields(CallRow)]
        row = self._q(f"SELECT {','.join(cols)} FROM calls WHERE id=?", (call_id,)).fetchone()
        if row is None:
            raise NotFound(call_id)
        return _call(row)

    def add_recording(self, rec: RecordingRow) -> None:
        if rec.status not in STATUSES:
            raise ValueError(f"unknown status {rec.status!r}")
        d = asdict(rec)
        self._q(
            f"INSERT INTO recordings ({','.join(d)}) VALUES ({','.join('?' * len(d))})", tuple(d.values())
        )

    def update_recording(self, rec_id: str, **changes: Any) -> None:
        unknown = set(changes) - set(_RECORDING_COLUMNS)
        if unknown:
            raise ValueError(f"unknown recording fields: {sorted(unknown)}")
        if "status" in changes and changes["status"] not in STATUSES:
            raise ValueError(f"unknown status {changes['status']!r}")
        if not changes:
            raise ValueError("no recording field to update")
        assignments = ",".join(f"{k}=?" for k in changes)
        cur = self._q(f"UPDATE recordings SET {assignments} WHERE id=?", (*changes.values(), rec_id))
        if cur.rowcount == 0:
            raise NotFound(rec_id)

    def checkpoint_recording(self, rec_id: str, sealed_bytes: int, sha256: str) -> None:
        self._q(
            "UPDATE recordings SET bytes=?, sha256=? WHERE id=? AND status=?",
            (sealed_bytes, sha256, rec_id, RecordingStatus.RECORDING),
        )

    def _recordings(self, where: str, params: tuple[Any, ...]) -> list[RecordingRow]:
        sql = f"SELECT {','.join(_RECORDING_COLUMNS)} FROM recordings {where}"
        return [_recording(row) for row in self._q(sql, params).fetchall()]

    def get_recording(self, rec_id: str) -> RecordingRow:
        rows = self._recordings("WHERE id=?", (rec_id,))
        if not rows:
            raise NotFound(rec_id)
        return rows[0]

    def list_recordings(self, status: str | None = None) -> list[RecordingRow]:
        if status is None:
            return self._recordings("ORDER BY started_at, id", ())
        return self._recordings("WHERE status=? ORDER BY started_at, id", (status,))

    def find_recording_by_fingerprint(self, fingerprint: str) -> RecordingRow | None:
        rows = self._recordings("WHERE source_fingerprint=? ORDER BY started_at DESC", (fingerprint,))
        return rows[0] if rows else None

    def recordings_of_call(self, call_id: str) -> list[RecordingRow]:
        return self._recordings("WHERE call_id=? ORDER BY started_at", (call_id,))

    def recording_by_object(self, object_name: str) -> RecordingRow | None:
        rows = self._recordings("WHERE object_name=?", (object_name,))
        return rows[0] if rows else None

    def encrypted_callers(
        self,
        after: str = "",
        limit: int = 1000,
        since: str | None = None,
        until: str | None = None,
        tenants: frozenset[str] | None = None,
    ) -> list[tuple[str, bytes]]:
        period, params = "", [after]
        if tenants is not None:
            if not tenants:
                return []
            period += f" AND tenant IN ({','.join('?' * len(tenants))})"
            params += sorted(tenants)
        if since is not None:
            period += " AND started_at >= ?"
            params.append(since)
        if until is not None:
            period += " AND started_at < ?"
            params.append(until)
        rows = self._q(
            "SELECT id, caller_enc, parties_enc FROM calls "
            f"WHERE (caller_enc IS NOT NULL OR parties_enc IS NOT NULL) AND id > ?{period} ORDER BY id LIMIT ?",
            (*params, limit),
        ).fetchall()
        # A recording session's participants come right after its caller, in the same batch.
        return [(r[0], bytes(v)) for r in rows for v in (r[1], r[2]) if v is not None]

    def calls_by_ids(self, call_ids: list[str]) -> list[CallRow]:
        cols = [f.name for f in fields(CallRow)]
        out: list[CallRow] = []
        for i in range(0, len(call_ids), 500):
            part = call_ids[i : i + 500]
            out += [
                _call(r)
                for r in self._q(
                    f"SELECT {','.join(cols)} FROM calls WHERE id IN ({','.join('?' * len(part))})",
                    tuple(part),
                ).fetchall()
            ]
        return sorted(out, key=lambda c: (c.started_at, c.id))

    def scrub_caller(self, call_id: str) -> None:
        self._q("UPDATE calls SET caller_enc=NULL, parties_enc=NULL WHERE id=?", (call_id,))

    def reseal_call(self, call_id: str, caller_enc: bytes | None, parties_enc: bytes | None) -> None:
        self._q("UPDATE calls SET caller_enc=?, parties_enc=? WHERE id=?", (caller_enc, parties_enc, call_id))

    def nodes(self) -> list[tuple[str, dict[str, Any], float]]:
        rows = self._q("SELECT name, status, heartbeat FROM nodes ORDER BY name").fetchall()
        return [(r[0], _details(r[1]), float(r[2])) for r in rows]

    def archived_audit(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for source, line in self._q("SELECT source, line FROM audit_archive ORDER BY source, n").fetchall():
            out.setdefault(source, []).append(line)
        return out

    def add_hold(self, rec_id: str, reason: str, actor: str) -> int:
        row = self._q(
            "INSERT INTO holds (recording_id, reason, actor, created_at) VALUES (?,?,?,?) RETURNING id",
            (rec_id, reason, actor, utcnow()),
        ).fetchone()
        return int(row[0]) if row else 0

    def release_holds(self, rec_id: str, reason: str, actor: str) -> int:
        cur = self._q(
            "UPDATE holds SET released_at=?, released_by=?, release_reason=? "
            "WHERE recording_id=? AND released_at IS NULL",
            (utcnow(), actor, reason, rec_id),
        )
        return int(cur.rowcount)

    def active_holds(self, rec_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT id, recording_id, reason, actor, created_at FROM holds WHERE released_at IS NULL"
        params: tuple[Any, ...] = ()
        if rec_id is not None:
            sql += " AND recording_id=?"
            params = (rec_id,)
        keys = ("id", "recording_id", "reason", "actor", "created_at")
        return [dict(zip(keys, r, strict=True)) for r in self._q(sql + " ORDER BY id", params).fetchall()]

    def page_recordings(self, q: RecordingQuery) -> list[RecordingRow]:
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("route", q.route),
            ("status", q.status),
            ("origin", q.origin),
            ("node", q.node),
            ("language", q.language),
            ("consent", q.consent),
        ):
            if value is not None:
                where.append(f"{column}=?")
                params.append(value)
        if q.tenants is not None:  # a user scoped to tenants (accounts/users.py)
            if not q.tenants:
                return []
            where.append(f"tenant IN ({','.join('?' * len(q.tenants))})")
            params += sorted(q.tenants)
        if q.since is not None:
            where.append("started_at>=?")
            params.append(q.since)
        if q.until is not None:
            where.append("started_at<?")
            params.append(q.until)
        if q.held:  # few: looked up from the holds, then sorted
            where.append("id IN (SELECT recording_id FROM holds WHERE released_at IS NULL)")
        elif q.held is not None:  # most: scanned in order, each checked against the holds
            where.append(
                "NOT EXISTS (SELECT 1 FROM holds h WHERE h.recording_id = recordings.id AND h.released_at IS NULL)"
            )
        if q.after is not None:  # the last row of the previous page
            # A row-value comparison: both engines read it as one range of the (started_at, id)
            # index; the equivalent OR of two conditions made them scan from the top.
            where.append(f"(started_at, id) {'>' if q.oldest_first else '<'} (?, ?)")
            params += [q.after[0], q.after[1]]
        order = "ASC" if q.oldest_first else "DESC"
        sql = (
            "WHERE " + " AND ".join(where) if where else ""
        ) + f" ORDER BY started_at {order}, id {order} LIMIT ?"
        return self._recordings(sql, (*params, q.limit))

    def add_grant(self, g: GrantRow) -> None:
        d = _grant_values(g)
        self._q(
            f"INSERT INTO review_grants ({','.join(d)}) VALUES ({','.join('?' * len(d))})", tuple(d.values())
        )

    def get_grant(self, grant_id: str) -> GrantRow:
        rows = self._grants("WHERE id=?", (grant_id,))
        if not rows:
            raise NotFound(grant_id)
        return rows[0]

    def replace_grant(self, g: GrantRow, expect: GrantState) -> bool:
        d = _grant_values(g)
        del d["id"]
        cur = self._q(
            f"UPDATE review_grants SET {','.join(f'{k}=?' for k in d)} WHERE id=? AND state=?",
            (*d.values(), g.id, str(expect)),
        )
        return bool(cur.rowcount)

    def grants(
        self,
        *,
        requester: str | None = None,
        states: tuple[GrantState, ...] = (),
        recording_id: str | None = None,
        due_by: float | None = None,
        limit: int = 200,
        tenants: frozenset[str] | None = None,
    ) -> list[GrantRow]:
        where: list[str] = []
        params: list[Any] = []
        if requester is not None:
            where.append("requester=?")
            params.append(requester)
        if recording_id is not None:
            where.append("recording_id=?")
            params.append(recording_id)
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            params += [str(s) for s in states]
        if due_by is not None:
            where.append("state=? AND expires_at<=?")
            params += [str(GrantState.APPROVED), due_by]
        if tenants is not None:  # a user scoped to tenants (accounts/users.py)
            marks = ",".join("?" * len(tenants)) or "NULL"
            where.append(f"recording_id IN (SELECT id FROM recordings WHERE tenant IN ({marks}))")
            params += sorted(tenants)
        sql = ("WHERE " + " AND ".join(where) if where else "") + " ORDER BY requested_at DESC, id LIMIT ?"
        return self._grants(sql, (*params, limit))

    def _grants(self, where: str, params: tuple[Any, ...]) -> list[GrantRow]:
        sql = f"SELECT {','.join(_GRANT_COLUMNS)} FROM review_grants {where}"
        return [_grant(row) for row in self._q(sql, params).fetchall()]

    def put_consent_receipt(self, call_id: str, receipt: dict[str, Any]) -> None:
        self._q(
            "INSERT INTO consent_receipts VALUES (?,?,?) ON CONFLICT (call_id) DO UPDATE SET "
            "receipt = excluded.receipt, created_at = excluded.created_at",
            (call_id, json.dumps(receipt, sort_keys=True), utcnow()),
        )

    def get_consent_receipt(self, call_id: str) -> dict[str, Any]:
        row = self._q("SELECT receipt FROM consent_receipts WHERE call_id=?", (call_id,)).fetchone()
        if row is None:
            raise NotFound(call_id)
        value: dict[str, Any] = json.loads(row[0])
        return value

    def append_audit(
        self, actor: str, action: str, subject: str, details: dict[str, Any] | None = None
    ) -> AuditEntry:
        details = dict(details or {})
        if "tenant" not in details:  # an entry about a tenant's call or recording carries it
            tenant = self._tenant_of(audit.references(subject, details))
            if tenant is not None:
                details["tenant"] = tenant
        # The backend's audit transaction keeps every other appender out between reading the
        # head and writing the entry: two nodes appending at once cannot both link to it.
        with self._audit_transaction() as tx:
            head = tx.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (head[0] + 1, head[1]) if head else (1, audit.GENESIS)
            entry = audit.seal(AuditEntry(seq, utcnow(), actor, action, subject, details), prev)
            tx.execute(
                "INSERT INTO audit (seq, ts, actor, action, subject, details, prev_hash, hash, v) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    entry.seq,
                    entry.ts,
                    entry.actor,
                    entry.action,
                    entry.subject,
                    json.dumps(entry.details, sort_keys=True),
                    entry.prev_hash,
                    entry.hash,
                    entry.v,
                ),
            )
        return entry

    def _tenant_of(self, refs: list[str]) -> str | None:
        """The tenant of the calls and recordings named: None when they belong to none, or to
        several (an entry naming two tenants' records is neither's: each export seals it)."""
        if not refs:
            return None
        refs = refs[:500]
        marks = ",".join("?" * len(refs))
        rows = self._q(
            f"SELECT tenant FROM recordings WHERE tenant IS NOT NULL AND id IN ({marks}) "
            f"UNION SELECT tenant FROM calls WHERE tenant IS NOT NULL AND id IN ({marks})",
            (*refs, *refs),
        ).fetchall()
        names = {r[0] for r in rows if r[0]}
        return names.pop() if len(names) == 1 else None

    def audit_entries(self) -> list[AuditEntry]:
        rows = self._q(
            "SELECT seq, ts, actor, action, subject, details, prev_hash, hash, v FROM audit ORDER BY seq"
        ).fetchall()
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], _details(r[5]), r[6], r[7], r[8]) for r in rows]

    def audit_head(self) -> tuple[int, str]:
        row = self._q("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(row[0]), row[1]) if row else (0, audit.GENESIS)

    def add_checkpoint(self, cp: audit.Checkpoint) -> None:
        self._q(
            "INSERT INTO audit_checkpoints (seq, ts, hash, signature, key) VALUES (?,?,?,?,?) "
            "ON CONFLICT (seq) DO UPDATE SET "
            "ts = excluded.ts, hash = excluded.hash, signature = excluded.signature, key = excluded.key",
            (cp.seq, cp.ts, cp.hash, cp.signature, cp.key),
        )

    def checkpoints(self) -> list[audit.Checkpoint]:
        rows = self._q("SELECT seq, hash, ts, signature, key FROM audit_checkpoints ORDER BY seq").fetchall()
        return [audit.Checkpoint(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def add_signing_key(self, fingerprint: str, node: str, public_pem: str) -> None:
        self._q(
            "INSERT INTO signing_keys (fingerprint, node, public_pem, added_at) VALUES (?,?,?,?) "
            "ON CONFLICT (fingerprint) DO NOTHING",
            (fingerprint, node, public_pem, utcnow()),
        )

    def signing_keys(self) -> list[tuple[str, str, str, str]]:
        rows = self._q(
            "SELECT fingerprint, node, public_pem, added_at FROM signing_keys ORDER BY added_at"
        ).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]


_CALL_BYTES = [i for i, f in enumerate(fields(CallRow)) if f.name in ("caller_enc", "parties_enc")]


def _call(row: Any) -> CallRow:
    r = list(row)
    for i in _CALL_BYTES:
        r[i] = bytes(r[i]) if r[i] is not None else None  # PostgreSQL gives memoryviews
    return CallRow(*r)


_BYTES_COLUMNS = [i for i, name in enumerate(_RECORDING_COLUMNS) if name in ("source_enc", "key_enc")]


_GRANT_COLUMNS = tuple(f.name for f in fields(GrantRow))


def _grant_values(g: GrantRow) -> dict[str, Any]:
    d = asdict(g)
    d["category"], d["state"] = str(g.category), str(g.state)
    d["allow_download"], d["self_granted"] = int(g.allow_download), int(g.self_granted)
    return d


def _grant(row: Any) -> GrantRow:
    d = dict(zip(_GRANT_COLUMNS, row, strict=True))
    d["category"], d["state"] = GrantCategory(d["category"]), GrantState(d["state"])
    d["allow_download"], d["self_granted"] = bool(d["allow_download"]), bool(d["self_granted"])
    return GrantRow(**d)


def _recording(row: Any) -> RecordingRow:
    r = list(row)
    for i in _BYTES_COLUMNS:
        r[i] = bytes(r[i]) if r[i] is not None else None
    return RecordingRow(*r)


class _SqliteResult:
    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self.rows, self.rowcount = rows, rowcount

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[Any]:
        return self.rows


class SqliteIndex(SqlIndex):
    """SQLite in WAL mode with full synchronous writes; safe to share between threads."""

    DIALECT = schema.SQLITE

    def __init__(self, path: str | Path, *, create: bool = False, lock_wait_s: float = 30.0) -> None:
        """`lock_wait_s`: how long a write waits for another writer (another process, a
        long transaction) before it fails with IndexBusy."""
        self.path = Path(path)
        self.where = str(self.path)
        self.lock_wait_s = lock_wait_s
        if not create and not self.path.exists():
            raise IndexAccessError(f"index {self.path} does not exist (run `gateway init` first)")
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=lock_wait_s
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            # Deleted rows (a scrubbed number, an erased subject's receipt) are overwritten with
            # zeros, not left in free pages for a copy of the file to reveal.
            self._db.execute("PRAGMA secure_delete=ON")
            self.migrate()
            self._db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as e:
            raise IndexAccessError(f"cannot open index {self.path}: {e}") from e
        if create:
            self.path.chmod(0o600)

    def _q(self, sql: str, params: tuple[Any, ...] = ()) -> _SqliteResult:
        with self._lock:
            try:
                cur = self._db.execute(sql, params)
                return _SqliteResult(cur.fetchall(), cur.rowcount)
            except sqlite3.OperationalError as e:
                self._raise_if_locked(e)
                raise

    @contextmanager
    def _audit_transaction(self) -> Iterator[Any]:
        try:
            with immediate(self._db, self._lock) as db:
                yield db
        except sqlite3.OperationalError as e:
            self._raise_if_locked(e)
            raise

    def _raise_if_locked(self, e: sqlite3.OperationalError) -> None:
        """Another writer held the database longer than this index waits: out of reach for now
        (IndexBusy, which a service process answers with its journal)."""
        code = getattr(e, "sqlite_errorcode", 0) & 0xFF  # extended codes keep the primary below
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            raise IndexBusy(
                f"index {self.where} is locked by another writer (waited {self.lock_wait_s:g} s)"
            ) from e

    def probe_writable(self) -> None:
        """Whether a write would get the database's write lock now (IndexUnavailable if not):
        the journal's replayer asks before it takes its own lock to replay."""
        with self._audit_transaction():
            pass

    def schema_version(self) -> int:
        has_meta = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        if not has_meta:
            return 0
        row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        return int(row[0]) if row else 0

    def _create(self, script: str) -> None:
        self._db.executescript(script)
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(schema.SCHEMA_VERSION),))

    def _apply(self, script: str, target: int) -> None:
        if target == 2:
            columns = {r[1] for r in self._db.execute("PRAGMA table_info(recordings)")}
            if "signature" not in columns:  # schema 1 indexes made before signing existed
                self._db.execute("ALTER TABLE recordings ADD COLUMN signature TEXT")
        self._db.execute("PRAGMA foreign_keys=OFF")
        try:
            self._db.executescript(
                f"BEGIN IMMEDIATE;\n{script}\nUPDATE meta SET value='{target}' WHERE key='schema';\nCOMMIT;"
            )
        except sqlite3.DatabaseError:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        problems = self._db.execute("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise IndexAccessError(f"migration to schema {target} left {len(problems)} broken references")

    def _migrated(self) -> None:
        # What the old schema held (keyed hashes) must not survive in free pages or the WAL.
        self._db.execute("VACUUM")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def update_recording(self, rec_id: str, **changes: Any) -> None:
        super().update_recording(rec_id, **changes)
        if "key_enc" in changes and changes["key_enc"] is None:
            # A destroyed key must not live on in the write-ahead log (secure_delete already
            # zeroes it in the database file's freed space).
            with self._lock:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _details(text: str) -> dict[str, Any]:
    # A hand-edited row may not even be JSON; keep it as text so verification names it.
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {"unparseable": str(text)}
    return value if isinstance(value, dict) else {"unparseable": str(text)}
