"""A shared index may be out of reach (PostgreSQL restarting, a network cut); a call may not
notice. `JournaledIndex` wraps the index a worker uses: a write that cannot reach it goes to a
durable local journal instead (JSON lines, fsynced, 0600, in `DATA_DIR/journal/`), and later
writes queue behind it so that order is kept. A background thread reconnects and replays the
journal into the index, in order; meanwhile nothing blocks on the database. `gateway audit`
reports a journal that is waiting.

Audit entries written while the index is away keep the time they happened (`ts`) and get their
place in the chain when they are replayed; each carries its journal id in its details, so an
entry replayed twice (a crash between applying it and forgetting it) is recognisable.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .. import osthreads
from . import audit
from .audit import AuditEntry
from .index import Index, IndexAccessError, IndexBusy, IndexUnavailable
from .liveness import process_token, writer_is_gone
from .rows import CallRow, GrantRow, GrantState, RecordingQuery, RecordingRow, utcnow
from .spool import ensure_private_dir

log = logging.getLogger(__name__)

WRITES = (
    "add_call",
    "end_call",
    "update_session",
    "add_recording",
    "update_recording",
    "checkpoint_recording",
    "scrub_caller",
    "reseal_call",
    "release_holds",
    "put_consent_receipt",
    "append_audit",
    "add_checkpoint",
    "add_signing_key",
)


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$b64"}:
            return base64.b64decode(value["$b64"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


class Journal:
    """One process's journal file: operations appended and fsynced, replayed in order."""

    def __init__(self, directory: Path, token: str | None = None) -> None:
        ensure_private_dir(directory)
        self.token = token or process_token()
        self.path = directory / (self.token.replace(":", "~") + ".jsonl")

    def append(self, op: str, args: dict[str, Any]) -> str:
        jid = secrets.token_hex(8)
        line = json.dumps({"id": jid, "op": op, "at": utcnow(), "args": _encode(args)}, sort_keys=True) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return jid

    def entries(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                log.error("journal %s: a torn last line is dropped", self.path)  # a crash mid-append
        return out

    def set_aside(self, entry: Any, why: str) -> None:
        """Keep an entry replay refused in `NAME.rejected` beside the journal (0600)."""
        path = self.path.with_suffix(".rejected")
        line = json.dumps({"why": why, "entry": entry}, sort_keys=True, default=str) + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def rewrite(self, remaining: list[dict[str, Any]]) -> None:
        """Keep only `remaining` (what has not been replayed yet); atomic."""
        if not remaining:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(json.dumps(e, sort_keys=True) + "\n" for e in remaining))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


class JournalEntryError(ValueError):
    """A journal line that is not a write this module journals (a forged or damaged line)."""


_S, _B, _N = (str,), (bytes,), (type(None),)

# Every write the journal records, with the arguments it takes and their types: replay runs
# these and nothing else, so that a line in the journal can never name another method of the
# index (`query`), nor hand the database a value of the wrong kind (which it would refuse with
# an error of its own, every time the replay tried again).
_PLAIN_ARGS: dict[str, dict[str, tuple[type, ...]]] = {
    "end_call": {"call_id": _S, "ended_at": _S},
    "update_session": {"call_id": _S, "parties_enc": _B + _N, "siprec": _S + _N},
    "checkpoint_recording": {"rec_id": _S, "sealed_bytes": (int,), "sha256": _S},
    "scrub_caller": {"call_id": _S},
    "reseal_call": {"call_id": _S, "caller_enc": _B + _N, "parties_enc": _B + _N},
    "release_holds": {"rec_id": _S, "reason": _S, "actor": _S},
    "put_consent_receipt": {"call_id": _S, "receipt": (dict,)},
    "add_signing_key": {"fingerprint": _S, "node": _S, "public_pem": _S},
}


def _check(op: str, name: str, value: Any, allowed: tuple[type, ...]) -> None:
    if isinstance(value, bool) and bool not in allowed:
        allowed = ()  # True is an int to Python, not to PostgreSQL
    if not isinstance(value, allowed) and not (float in allowed and isinstance(value, int)):
        raise JournalEntryError(f"{op}: {name} is {type(value).__name__}, not {_allowed_names(allowed)}")
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise JournalEntryError(f"{op}: {name} is out of a column's range")


def _allowed_names(allowed: tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in allowed) or "that"


def _row(op: str, cls: type, values: Any) -> Any:
    """`cls` (a row dataclass) from a journalled dict, each value of its field's type."""
    if not isinstance(values, dict):
        raise JournalEntryError(f"{op}: not a row")
    hints = _hints(cls)
    for name, value in values.items():
        if name not in hints:
            raise JournalEntryError(f"{op}: no column {str(name)[:40]!r}")
        _check(op, name, value, hints[name])
    return cls(**values)


_HINTS: dict[type, dict[str, tuple[type, ...]]] = {}


def _hints(cls: type) -> dict[str, tuple[type, ...]]:
    """A row dataclass's fields and the types each may hold (its annotation, unions spread)."""
    if cls not in _HINTS:
        import types
        import typing

        out = {}
        for name, hint in typing.get_type_hints(cls).items():
            args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
            out[name] = tuple(typing.get_origin(a) or a for a in args)
        _HINTS[cls] = out
    return _HINTS[cls]


def apply(index: Index, entry: Any) -> None:
    """Carry out one journalled write on the index; JournalEntryError for anything that is not
    one of WRITES with its arguments, each of its type."""
    if not isinstance(entry, dict):
        raise JournalEntryError("not a journal entry")
    op = entry.get("op")
    try:
        args = _decode(entry.get("args"))
    except (TypeError, ValueError):  # a "$b64" that is not base64 text
        raise JournalEntryError("arguments that do not decode") from None
    if op not in WRITES or not isinstance(args, dict):
        raise JournalEntryError(f"not a journalled write: {str(op)[:40]!r}")
    try:
        _apply(index, op, args, entry)
    except (TypeError, KeyError) as e:
        raise JournalEntryError(f"{op} with arguments it does not take: {e}") from None
    except IndexUnavailable:
        raise  # out of reach for now: tried again later
    except (IndexAccessError, sqlite3.IntegrityError) as e:
        # Refused for what it holds (a recording of a call whose line was lost, a value out of
        # a column's bounds): it would be refused again at every try.
        raise JournalEntryError(f"{op} refused by the index: {e}") from None


def _apply(index: Index, op: str, args: dict[str, Any], entry: dict[str, Any]) -> None:
    if op == "add_call":
        try:
            index.add_call(_row(op, CallRow, args["call"]))
        except IndexAccessError as e:
            if "duplicate" not in str(e).lower() and "unique" not in str(e).lower():
                raise  # replayed twice: it is there already
    elif op == "add_recording":
        try:
            index.add_recording(_row(op, RecordingRow, args["rec"]))
        except IndexAccessError as e:
            if "duplicate" not in str(e).lower() and "unique" not in str(e).lower():
                raise
    elif op == "update_recording":
        rec_id = args.pop("rec_id")
        _check(op, "rec_id", rec_id, _S)
        columns = _hints(RecordingRow)
        for name, value in args.items():
            _check(op, name, value, columns.get(name, ()))
        index.update_recording(rec_id, **args)  # checks the columns itself
    elif op == "append_audit":
        for name in ("actor", "action", "subject"):
            _check(op, name, args[name], _S)
        details = args.get("details") or {}
        _check(op, "details", details, (dict,))
        journal_id = {"id": entry["id"], "at": entry["at"]}
        _check(op, "journal id", journal_id["id"], _S)
        index.append_audit(args["actor"], args["action"], args["subject"], {**details, "journal": journal_id})
    elif op == "add_checkpoint":
        index.add_checkpoint(_row(op, audit.Checkpoint, args["cp"]))
    else:
        wanted = _PLAIN_ARGS[op]
        if set(args) != set(wanted):
            raise TypeError(sorted(set(args) ^ set(wanted)))
        for name, value in args.items():
            _check(op, name, value, wanted[name])
        getattr(index, op)(**args)


class JournaledIndex(Index):
    """The worker's index: writes reach the shared index, or the journal while it cannot."""

    def __init__(
        self,
        backend: Index,
        directory: Path,
        *,
        retry_s: float = 2.0,
        on_replayed: Callable[[int], None] | None = None,
    ) -> None:
        self.backend = backend
        self.directory = directory
        self.journal = Journal(directory)
        self.retry_s = retry_s
        self.on_replayed = on_replayed
        self._lock = threading.RLock()
        self._down = bool(self.journal.entries())
        self._busy = False  # down only because another writer holds the SQLite index
        self._stop = threading.Event()
        self._thread = osthreads.Thread(target=self._replayer, name="index-replay", daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        return len(self.journal.entries())

    # -- writes ----------------------------------------------------------------------------

    def _write(self, op: str, args: dict[str, Any], call: Callable[[], Any]) -> Any:
        with self._lock:
            if not self._down:
                try:
                    return call()
                except IndexBusy as e:
                    # A node's own SQLite file, held for a while by one of its processes or a
                    # long transaction: expected now and then at the busiest times.
                    log.warning(
                        "index busy (%s): writes go to the local journal %s until it is free",
                        e,
                        self.journal.path,
                    )
                    self._down, self._busy = True, True
                except IndexUnavailable as e:
                    log.error(
                        "index unreachable (%s): writes go to the local journal %s until it is back",
                        e,
                        self.journal.path,
                    )
                    self._down, self._busy = True, False
            self.journal.append(op, args)
            return None

    def add_call(self, call: CallRow) -> None:
        self._write("add_call", {"call": asdict(call)}, lambda: self.backend.add_call(call))

    def end_call(self, call_id: str, ended_at: str) -> None:
        self._write(
            "end_call",
            {"call_id": call_id, "ended_at": ended_at},
            lambda: self.backend.end_call(call_id, ended_at),
        )

    def update_session(self, call_id: str, parties_enc: bytes | None, siprec: str) -> None:
        self._write(
            "update_session",
            {"call_id": call_id, "parties_enc": parties_enc, "siprec": siprec},
            lambda: self.backend.update_session(call_id, parties_enc, siprec),
        )

    def add_recording(self, rec: RecordingRow) -> None:
        self._write("add_recording", {"rec": asdict(rec)}, lambda: self.backend.add_recording(rec))

    def update_recording(self, rec_id: str, **changes: Any) -> None:
        self._write(
            "update_recording",
            {"rec_id": rec_id, **changes},
            lambda: self.backend.update_recording(rec_id, **changes),
        )

    def checkpoint_recording(self, rec_id: str, sealed_bytes: int, sha256: str) -> None:
        self._write(
            "checkpoint_recording",
            {"rec_id": rec_id, "sealed_bytes": sealed_bytes, "sha256": sha256},
            lambda: self.backend.checkpoint_recording(rec_id, sealed_bytes, sha256),
        )

    def scrub_caller(self, call_id: str) -> None:
        self._write("scrub_caller", {"call_id": call_id}, lambda: self.backend.scrub_caller(call_id))

    def reseal_call(self, call_id: str, caller_enc: bytes | None, parties_enc: bytes | None) -> None:
        self._write(
            "reseal_call",
            {"call_id": call_id, "caller_enc": caller_enc, "parties_enc": parties_enc},
            lambda: self.backend.reseal_call(call_id, caller_enc, parties_enc),
        )

    def release_holds(self, rec_id: str, reason: str, actor: str) -> int:
        out = self._write(
            "release_holds",
            {"rec_id": rec_id, "reason": reason, "actor": actor},
            lambda: self.backend.release_holds(rec_id, reason, actor),
        )
        return int(out or 0)

    def put_consent_receipt(self, call_id: str, receipt: dict[str, Any]) -> None:
        self._write(
            "put_consent_receipt",
            {"call_id": call_id, "receipt": receipt},
            lambda: self.backend.put_consent_receipt(call_id, receipt),
        )

    def append_audit(
        self, actor: str, action: str, subject: str, details: dict[str, Any] | None = None
    ) -> AuditEntry:
        entry = self._write(
            "append_audit",
            {"actor": actor, "action": action, "subject": subject, "details": details or {}},
            lambda: self.backend.append_audit(actor, action, subject, details),
        )
        # Journalled: its place in the chain is decided when it is replayed.
        return entry if entry is not None else AuditEntry(0, utcnow(), actor, action, subject, details or {})

    def add_checkpoint(self, cp: audit.Checkpoint) -> None:
        self._write("add_checkpoint", {"cp": asdict(cp)}, lambda: self.backend.add_checkpoint(cp))

    def add_signing_key(self, fingerprint: str, node: str, public_pem: str) -> None:
        self._write(
            "add_signing_key",
            {"fingerprint": fingerprint, "node": node, "public_pem": public_pem},
            lambda: self.backend.add_signing_key(fingerprint, node, public_pem),
        )

    def signing_keys(self) -> list[tuple[str, str, str, str]]:
        return self._read(self.backend.signing_keys)

    def add_hold(self, rec_id: str, reason: str, actor: str) -> int:
        return self._read(lambda: self.backend.add_hold(rec_id, reason, actor))  # needs its id: no journal

    # Review grants are decided by people at a dashboard, who are told when the index is away
    # (nothing of a call depends on them): no journal.
    def add_grant(self, g: GrantRow) -> None:
        self._read(lambda: self.backend.add_grant(g))

    def replace_grant(self, g: GrantRow, expect: GrantState) -> bool:
        return bool(self._read(lambda: self.backend.replace_grant(g, expect)))

    # -- reads: the index itself, once the journal has been replayed -------------------------

    def _read(self, call: Callable[[], Any]) -> Any:
        # While the index is away a read fails at once (the replayer thread is the one that
        # waits for it): a call must never stall on the database.
        if self._down:
            raise IndexUnavailable("the index is unreachable (writes are kept in the local journal)")
        with self._lock:
            try:
                return call()
            except IndexUnavailable:
                self._down = True
                raise

    def get_call(self, call_id: str) -> CallRow:
        return self._read(lambda: self.backend.get_call(call_id))

    def get_recording(self, rec_id: str) -> RecordingRow:
        return self._read(lambda: self.backend.get_recording(rec_id))

    def list_recordings(self, status: str | None = None) -> list[RecordingRow]:
        return self._read(lambda: self.backend.list_recordings(status))

    def find_recording_by_fingerprint(self, fingerprint: str) -> RecordingRow | None:
        return self._read(lambda: self.backend.find_recording_by_fingerprint(fingerprint))

    def recording_by_object(self, object_name: str) -> RecordingRow | None:
        return self._read(lambda: self.backend.recording_by_object(object_name))

    def recordings_of_call(self, call_id: str) -> list[RecordingRow]:
        return self._read(lambda: self.backend.recordings_of_call(call_id))

    def get_consent_receipt(self, call_id: str) -> dict[str, Any]:
        return self._read(lambda: self.backend.get_consent_receipt(call_id))

    def encrypted_callers(
        self,
        after: str = "",
        limit: int = 1000,
        since: str | None = None,
        until: str | None = None,
        tenants: frozenset[str] | None = None,
    ) -> list[tuple[str, bytes]]:
        return self._read(lambda: self.backend.encrypted_callers(after, limit, since, until, tenants))

    def calls_by_ids(self, call_ids: list[str]) -> list[CallRow]:
        return self._read(lambda: self.backend.calls_by_ids(call_ids))

    def active_holds(self, rec_id: str | None = None) -> list[dict[str, Any]]:
        return self._read(lambda: self.backend.active_holds(rec_id))

    def page_recordings(self, q: RecordingQuery) -> list[RecordingRow]:
        return self._read(lambda: self.backend.page_recordings(q))

    def get_grant(self, grant_id: str) -> GrantRow:
        return self._read(lambda: self.backend.get_grant(grant_id))

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
        return self._read(
            lambda: self.backend.grants(
                requester=requester,
                states=states,
                recording_id=recording_id,
                due_by=due_by,
                limit=limit,
                tenants=tenants,
            )
        )

    def audit_entries(self) -> list[AuditEntry]:
        return self._read(self.backend.audit_entries)

    def audit_head(self) -> tuple[int, str]:
        return self._read(self.backend.audit_head)

    def checkpoints(self) -> list[audit.Checkpoint]:
        return self._read(self.backend.checkpoints)

    def nodes(self) -> list[tuple[str, dict[str, Any], float]]:
        return self._read(self.backend.nodes)

    def archived_audit(self) -> dict[str, list[str]]:
        return self._read(self.backend.archived_audit)

    # -- replay ----------------------------------------------------------------------------

    def replay(self) -> bool:
        """Apply the journal (this process's, and those of processes that died with one) to the
        index, in order. True once everything has been applied and writes go straight again."""
        try:
            self.backend.probe_writable()  # reach the index first, outside the lock (it may take a while)
        except IndexUnavailable:
            return False
        with self._lock:
            journals = [self.journal] + [
                Journal(self.directory, p.stem.replace("~", ":"))
                for p in sorted(self.directory.glob("*.jsonl"))
                if p != self.journal.path and writer_is_gone(p.stem.replace("~", ":"))
            ]
            applied = 0
            for j in journals:
                pending = j.entries()
                done = 0
                try:
                    for entry in pending:
                        try:
                            apply(self.backend, entry)
                        except ValueError as e:  # JournalEntryError, or a column update_recording refuses
                            # Kept aside for whoever investigates, never applied, never blocking
                            # the writes behind it.
                            jid = entry.get("id") if isinstance(entry, dict) else None
                            log.error("journal %s: entry %s set aside: %s", j.path, jid, e)
                            j.set_aside(entry, str(e))
                        done += 1
                except IndexUnavailable:
                    j.rewrite(pending[done:])
                    self._down = True
                    return False
                j.rewrite([])
                applied += done
            if self._down:
                if self._busy:
                    log.info("index free again: %d journalled write(s) replayed", applied)
                else:
                    log.warning("index reachable again: %d journalled write(s) replayed", applied)
            self._down = False
        if applied and self.on_replayed is not None:
            self.on_replayed(applied)
        return True

    def _replayer(self) -> None:
        while not self._stop.wait(self.retry_s):
            if self._down or self.journal.path.exists():
                try:
                    self.replay()
                except Exception:
                    log.exception("replaying the index journal failed; retrying")

    def close(self) -> None:
        self._stop.set()
        try:
            self.replay()
        except Exception:
            log.warning(
                "index journal %s kept for the next start (%d entries)", self.journal.path, self.backlog
            )
        self.backend.close()

    def __getattr__(self, name: str) -> Any:  # schema_version and backend-specific extras
        return getattr(self.backend, name)


def directory_of(data_dir: Path) -> Path:
    """Where a data directory's processes keep their journals (one source for the path)."""
    return data_dir / "journal"


def backlog(directory: Path) -> int:
    """Journalled writes waiting under `directory` (all processes)."""
    total = 0
    for p in directory.glob("*.jsonl"):
        total += len(Journal(directory, p.stem.replace("~", ":")).entries())
    return total
