"""The audit log's hash chain and its signed checkpoints. Pure: entries in, verdicts out;
storage is the index's job, emitting checkpoints to witnesses is governance/witness.py's.

Each entry's hash covers its sequence number, the previous entry's hash and its own content
(hash version 3 covers the content's SHA-256, so that a tenant's export can show another
tenant's entry sealed, as its digest, and still be checked link by link; entries written before
keep their version-2 hash over the content itself, or version 1, which lacks the sequence
number). An edited entry no longer matches its hash, a deleted one breaks the link
and the numbering of its successor, a moved one links to an entry that is not its stored
predecessor.

A chain has no key: whoever can write the database can rewrite it from any point on and
recompute every later hash. What stops that is a **checkpoint**: the head's sequence number
and hash at a moment, signed with the gateway's Ed25519 key and sent to a witness outside the
gateway's control (the log stream, a remote syslog, a write-once file). A rewritten or cut
chain no longer contains a head the witness saw; `gateway audit verify --checkpoint FILE`
says so, and names the checkpoint.

Several nodes append to one chain and each signs with its own key, so a checkpoint names its
signer by the key's fingerprint (`key`, in the signed message since checkpoint version 2) and is
checked against that key: one witness may keep every node's checkpoints.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

GENESIS = "0" * 64


def key_fingerprint(public: Ed25519PublicKey) -> str:
    """A signing key's name: the first 128 bits of the SHA-256 of its raw public key, in hex.
    What checkpoints and recording signatures carry, and what an operator pins."""
    return hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:32]


# A signer's public key by fingerprint; None asks for the key of a signature made before
# signatures named their key (this gateway's own). None back: no such key is trusted.
KeyLookup = Callable[[str | None], Ed25519PublicKey | None]
HASH_VERSION = 3  # what new entries are written with


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
    v: int = HASH_VERSION
    # In a tenant's export, another tenant's entry: only the SHA-256 of its body, which a
    # version-3 hash covers instead of the body itself (see sealed_copy).
    sealed: str | None = None

    @property
    def tenant(self) -> str | None:
        """The tenant this entry belongs to, as written into it (none: the system's own, or
        written before entries carried their tenant)."""
        value = self.details.get("tenant")
        return value if isinstance(value, str) and value else None

    def body_digest(self) -> str:
        return self.sealed if self.sealed is not None else hashlib.sha256(self.body()).hexdigest()

    def sealed_copy(self) -> AuditEntry:
        """This entry as another tenant's export carries it: its place in the chain and the
        digest of its content, none of the content."""
        return AuditEntry(self.seq, "", "", "", "", {}, self.prev_hash, self.hash, self.v, self.body_digest())

    def body(self) -> bytes:
        return json.dumps(
            {
                "ts": self.ts,
                "actor": self.actor,
                "action": self.action,
                "subject": self.subject,
                "details": self.details,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
        ).encode()

    def as_json(self) -> dict[str, Any]:
        """The entry as `gateway audit export` writes it (one JSON object a line)."""
        if self.sealed is not None:
            return {
                "seq": self.seq,
                "prev_hash": self.prev_hash,
                "hash": self.hash,
                "v": self.v,
                "sealed": self.sealed,
            }
        return {
            "seq": self.seq,
            "ts": self.ts,
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "details": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
            "v": self.v,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AuditEntry:
        try:
            if "sealed" in d:
                return cls(
                    int(d["seq"]),
                    "",
                    "",
                    "",
                    "",
                    {},
                    str(d["prev_hash"]),
                    str(d["hash"]),
                    int(d["v"]),
                    str(d["sealed"]),
                )
            return cls(
                int(d["seq"]),
                str(d["ts"]),
                str(d["actor"]),
                str(d["action"]),
                str(d["subject"]),
                d["details"] if isinstance(d["details"], dict) else {"unparseable": str(d["details"])},
                str(d["prev_hash"]),
                str(d["hash"]),
                int(d.get("v", 1)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not an audit entry: {e}") from None


def entry_hash(prev_hash: str, body: bytes, seq: int = 0, v: int = HASH_VERSION) -> str:
    if v == 1:
        return hashlib.sha256(prev_hash.encode() + b"\n" + body).hexdigest()
    if v == 2:
        return hashlib.sha256(f"audit-v2\n{seq}\n{prev_hash}\n".encode() + body).hexdigest()
    return digest_hash(prev_hash, hashlib.sha256(body).hexdigest(), seq)


def digest_hash(prev_hash: str, body_digest: str, seq: int) -> str:
    """Version 3: over the body's SHA-256 rather than the body, so that an entry can be shown
    sealed (its digest alone) and the chain through it still checked (a tenant's export)."""
    return hashlib.sha256(f"audit-v3\n{seq}\n{prev_hash}\n{body_digest}".encode()).hexdigest()


def hash_of(e: AuditEntry) -> str | None:
    """What `e`'s hash must be; None for a sealed entry older than version 3 (its body is not
    shown, and its hash covers the body itself)."""
    if e.sealed is not None:
        return digest_hash(e.prev_hash, e.sealed, e.seq) if e.v >= 3 else None
    return entry_hash(e.prev_hash, e.body(), e.seq, e.v)


def seal(entry: AuditEntry, prev_hash: str, v: int = HASH_VERSION) -> AuditEntry:
    """The entry linked after `prev_hash`, with its hash filled in."""
    unsealed = AuditEntry(
        entry.seq, entry.ts, entry.actor, entry.action, entry.subject, entry.details, prev_hash, "", v
    )
    return AuditEntry(**{**unsealed.__dict__, "hash": entry_hash(prev_hash, unsealed.body(), entry.seq, v)})


REFERENCE_KEYS = ("call", "recording")  # details that name one call or recording
REFERENCE_LISTS = ("recordings", "calls")  # details that name several


def references(subject: str, details: dict[str, Any]) -> list[str]:
    """The calls and recordings an entry is about: its subject and what its details name. What
    decides the entry's tenant (issue 27): the index stamps it on when the entry is written."""
    refs = [subject] if subject and subject != "-" else []
    refs += [str(details[k]) for k in REFERENCE_KEYS if isinstance(details.get(k), str) and details[k]]
    for k in REFERENCE_LISTS:
        value = details.get(k)
        if isinstance(value, list):
            refs += [v for v in value if isinstance(v, str) and v]
    return list(dict.fromkeys(refs))


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    kind: str  # "edited", "deleted", "reordered", "rewritten" or "truncated"
    message: str


@dataclass(frozen=True)
class ChainVerdict:
    entries: int
    head_seq: int
    head_hash: str
    problem: ChainProblem | None
    checkpoints_checked: int = 0
    sealed: int = 0  # entries shown sealed (another tenant's): checked through their digest
    opaque: int = 0  # sealed entries older than version 3: their hash could not be recomputed

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify(entries: list[AuditEntry]) -> ChainVerdict:
    """Walk the chain in stored order and name the first entry that breaks it."""
    by_hash = {e.hash: e.seq for e in entries}
    prev_hash, prev_seq, latest_v = GENESIS, 0, 1
    sealed = opaque = 0

    def broken(e: AuditEntry, kind: str, message: str) -> ChainVerdict:
        return ChainVerdict(len(entries), prev_seq, prev_hash, ChainProblem(e.seq, kind, message))

    for e in entries:
        if e.v not in (1, 2, 3) or e.v < latest_v:
            return broken(
                e,
                "edited",
                f"entry #{e.seq} ({e.action}) claims hash version {e.v}, which is not "
                "possible at its place in the log",
            )
        latest_v = e.v
        expected = hash_of(e)
        sealed += e.sealed is not None
        opaque += expected is None
        if expected is not None and expected != e.hash:
            return broken(
                e,
                "edited",
                f"entry #{e.seq} ({e.action}) was altered: its content no longer matches its hash",
            )
        if e.prev_hash != prev_hash:
            if e.prev_hash in by_hash:
                return broken(
                    e,
                    "reordered",
                    f"entry #{e.seq} ({e.action}) was written after "
                    f"#{by_hash[e.prev_hash]} but is stored after #{prev_seq}: "
                    "entries were reordered",
                )
            where = f"after #{prev_seq}" if prev_seq else "at the start"
            return broken(e, "deleted", f"entries were deleted {where}, before #{e.seq} ({e.action})")
        if e.v >= 2 and e.seq != prev_seq + 1:
            return broken(
                e,
                "deleted",
                f"entries #{prev_seq + 1} to #{e.seq - 1} are missing "
                f"(after #{prev_seq}, before #{e.seq} ({e.action}))",
            )
        prev_hash, prev_seq = e.hash, e.seq
    return ChainVerdict(len(entries), prev_seq, prev_hash, None, sealed=sealed, opaque=opaque)


# -- checkpoints ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """The head of the chain at a moment, as a witness keeps it."""

    seq: int
    hash: str
    ts: str
    signature: str | None = None  # Ed25519 over message(), hex; None for a head noted by hand
    key: str | None = None  # the signer's key_fingerprint; None in version-1 checkpoints

    def _fields(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": "audit.checkpoint",
            "v": 1,
            "seq": self.seq,
            "hash": self.hash,
            "ts": self.ts,
        }
        if self.key is not None:
            d.update(v=2, key=self.key)
        return d

    def message(self) -> bytes:
        return json.dumps(self._fields(), sort_keys=True, separators=(",", ":")).encode()

    def as_json(self) -> dict[str, Any]:
        return {**self._fields(), "sig": self.signature}

    def line(self) -> str:
        return json.dumps(self.as_json(), sort_keys=True, separators=(",", ":"))

    def verify(self, public: Ed25519PublicKey) -> bool:
        if not self.signature:
            return False
        try:
            public.verify(bytes.fromhex(self.signature), self.message())
        except (InvalidSignature, ValueError):
            return False
        return True


def make_checkpoint(head_seq: int, head_hash: str, ts: str, key: Ed25519PrivateKey | None) -> Checkpoint:
    if key is None:
        return Checkpoint(head_seq, head_hash, ts)
    unsigned = Checkpoint(head_seq, head_hash, ts, key=key_fingerprint(key.public_key()))
    return Checkpoint(head_seq, head_hash, ts, key.sign(unsigned.message()).hex(), unsigned.key)


def parse_checkpoints(lines: Iterable[str]) -> list[Checkpoint]:
    """Checkpoints from a witness's record: a line may carry a prefix (a syslog header) before
    the checkpoint's JSON, or be a JSON log entry whose message holds it (the gateway's own log,
    `journalctl -o json`). Other lines are ignored."""
    out = []
    for line in lines:
        cp = _checkpoint_in(line.strip().rstrip("\x00"), depth=0)
        if cp is not None:
            out.append(cp)
    return out


def _checkpoint_in(text: str, depth: int) -> Checkpoint | None:
    start = text.find("{")
    if start < 0 or depth > 2:
        return None
    try:
        d = json.loads(text[start:])
    except ValueError:
        return None
    if not isinstance(d, dict):
        return None
    if d.get("type") != "audit.checkpoint":
        inner = d.get("msg", d.get("MESSAGE"))
        return _checkpoint_in(inner, depth + 1) if isinstance(inner, str) else None
    try:
        key = d.get("key")
        return Checkpoint(
            int(d["seq"]), str(d["hash"]), str(d["ts"]), d.get("sig"), str(key) if key else None
        )
    except (KeyError, TypeError, ValueError):
        return None


def check_checkpoints(
    entries: list[AuditEntry], checkpoints: list[Checkpoint], keys: KeyLookup
) -> ChainProblem | None:
    """Does the chain still contain every head the witness saw? A signed checkpoint must verify
    with the key it names (one of `keys`), or it is itself a problem; an unsigned one (a head
    noted by hand) counts as the operator's word."""
    by_seq = {e.seq: e for e in entries}
    last = entries[-1].seq if entries else 0
    for cp in sorted(checkpoints, key=lambda c: c.seq):
        public = keys(cp.key) if cp.signature is not None else None
        if cp.signature is not None and (public is None or not cp.verify(public)):
            signer = f"key {cp.key}" if cp.key else "this gateway's key"
            why = "which this system does not trust" if public is None else "but does not carry its signature"
            return ChainProblem(
                cp.seq, "forged-checkpoint", f"the checkpoint for #{cp.seq} names the {signer}, {why}"
            )
        entry = by_seq.get(cp.seq)
        if entry is None and cp.seq > last:
            return ChainProblem(
                cp.seq,
                "truncated",
                f"the witness saw entry #{cp.seq} ({cp.ts}) but the log ends at #{last}: "
                "entries were removed from the end",
            )
        if entry is None or entry.hash != cp.hash:
            return ChainProblem(
                cp.seq,
                "rewritten",
                f"entry #{cp.seq} is not the one the witness saw at {cp.ts} (hash "
                f"{cp.hash[:16]}...): the log was rewritten at or before it",
            )
    return None


def check_head(entries: list[AuditEntry], head_hash: str) -> ChainProblem | None:
    """Is a head recorded earlier (by hand, from `audit verify`) still in the chain?"""
    for e in entries:
        if e.hash == head_hash:
            return None
    last = entries[-1].seq if entries else 0
    return ChainProblem(
        last,
        "truncated",
        f"the recorded head {head_hash[:16]}... is not in the log: entries "
        "were removed from the end, or the log was rewritten",
    )
