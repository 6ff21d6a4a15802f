"""The audit log's hash chain. Pure: entries in, verdicts out; storage is the index's job.

Each entry's hash covers the previous entry's hash and its own content, so an edited entry no
longer matches its hash, a deleted one breaks the link of its successor, and a moved one links
to an entry that is not its stored predecessor. Removing entries from the end cannot be seen
from inside the chain: `gateway audit verify` prints the head so that it can be anchored
elsewhere (a monitoring system, a ticket) and compared later.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    ts: str
    actor: str
    action: str
    subject: str
    details: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS
    hash: str = ""

    def body(self) -> bytes:
        return json.dumps(
            {"ts": self.ts, "actor": self.actor, "action": self.action, "subject": self.subject,
             "details": self.details},
            sort_keys=True, separators=(",", ":"), ensure_ascii=True,
        ).encode()


def entry_hash(prev_hash: str, body: bytes) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + body).hexdigest()


def seal(entry: AuditEntry, prev_hash: str) -> AuditEntry:
    """The entry linked after `prev_hash`, with its hash filled in."""
    unsealed = AuditEntry(entry.seq, entry.ts, entry.actor, entry.action, entry.subject,
                          entry.details, prev_hash)
    return AuditEntry(**{**unsealed.__dict__, "hash": entry_hash(prev_hash, unsealed.body())})


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    kind: str  # "edited", "deleted" or "reordered"
    message: str


@dataclass(frozen=True)
class ChainVerdict:
    entries: int
    head_seq: int
    head_hash: str
    problem: ChainProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify(entries: list[AuditEntry]) -> ChainVerdict:
    """Walk the chain in stored order and name the first entry that breaks it."""
    by_hash = {e.hash: e.seq for e in entries}
    prev_hash, prev_seq = GENESIS, 0
    for e in entries:
        if entry_hash(e.prev_hash, e.body()) != e.hash:
            return ChainVerdict(len(entries), prev_seq, prev_hash, ChainProblem(
                e.seq, "edited", f"entry #{e.seq} ({e.action}) was altered: its content no longer matches its hash"))
        if e.prev_hash != prev_hash:
            if e.prev_hash in by_hash:
                moved = ChainProblem(e.seq, "reordered",
                                     f"entry #{e.seq} ({e.action}) was written after #{by_hash[e.prev_hash]} "
                                     f"but is stored after #{prev_seq}: entries were reordered")
                return ChainVerdict(len(entries), prev_seq, prev_hash, moved)
            where = f"after #{prev_seq}" if prev_seq else "at the start"
            return ChainVerdict(len(entries), prev_seq, prev_hash, ChainProblem(
                e.seq, "deleted", f"entries were deleted {where}, before #{e.seq} ({e.action})"))
        prev_hash, prev_seq = e.hash, e.seq
    return ChainVerdict(len(entries), prev_seq, prev_hash, None)
