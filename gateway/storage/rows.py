"""What the index holds, as Python values: a call, a recording, and a recording's status
(the one vocabulary of the index, the recorder's result and the command line)."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class RecordingStatus(StrEnum):
    """A stored recording's status: the one vocabulary of the index, the recorder's result and
    the command line (the live view's states during a call are callevents.RecordingState)."""

    RECORDING = "recording"  # being written now
    COMPLETE = "complete"  # final chunk written
    TRUNCATED = "truncated"  # the writer died; sealed chunks decrypt, the end is missing
    INCOMPLETE = "incomplete"  # storage failed mid-call; sealed chunks decrypt
    DISCARDED = "discarded"  # deleted at the caller's request (consent withdrawn)
    DELETED = "deleted"  # deleted by retention or erasure


STATUSES = tuple(s.value for s in RecordingStatus)


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class CallRow:
    id: str
    started_at: str
    route: str | None = None
    ended_at: str | None = None
    caller_enc: builtins.bytes | None = (
        None  # the caller's number, age-encrypted; nothing else about it is kept
    )
    kind: str = "call"  # "call" (through the gateway) or "siprec" (forked by a recording client)
    # A recording session's participants (numbers, names, stream labels) as JSON, age-encrypted.
    parties_enc: builtins.bytes | None = None
    # A recording session's identifiers the client made up (session, group and stream ids, which
    # participant sends which label), as JSON: nothing personal.
    siprec: str | None = None
    # The data controller whose keys its caller's number (and recording) are sealed to
    # (config/tenants.py); None: the implicit tenant of a system without [[tenants]].
    tenant: str | None = None


@dataclass
class RecordingRow:
    id: str
    object_name: str
    started_at: str
    status: str = RecordingStatus.RECORDING
    call_id: str | None = None
    origin: str = "call"  # "call" or "legacy"
    media_type: str = "audio/wav"
    sample_rate: int | None = None
    channels: int | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    bytes: int = 0
    sha256: str | None = None
    route: str | None = None
    retention_days: int | None = None
    error: str | None = None
    source_enc: builtins.bytes | None = None  # a legacy import's original path, age-encrypted
    # A legacy import's original file as it was encrypted: SHA-256 over its device, inode,
    # size, mtime and content hash (legacy.py). Shredding and resuming compare against it.
    source_fingerprint: str | None = None
    writer: str | None = None  # host:pid:start-time of the process writing it (liveness.py)
    signature: str | None = None  # Ed25519 over the recording's manifest (recording/signing.py)
    # With a key of its own (recording/keys.py): its identity, age-encrypted to the operators.
    # Erasing the recording deletes it: whatever ciphertext survives can no longer be opened.
    key_enc: builtins.bytes | None = None
    # For the recordings list and its filters (the receipt stays the evidence): the node that
    # recorded it, the notice's language, and the consent outcome (consent/receipt.Outcome).
    node: str | None = None
    language: str | None = None
    consent: str | None = None
    # Whose keys it is encrypted to (config/tenants.py); None: the implicit tenant.
    tenant: str | None = None


class GrantState(StrEnum):
    """Where a reviewer's request for access to one recording stands (governance/grants.py has
    the rules that move it)."""

    REQUESTED = "requested"  # waiting for an approver
    APPROVED = "approved"  # the reviewer may fetch the ciphertext until expires_at
    DENIED = "denied"  # an approver said no
    REVOKED = "revoked"  # ended before its time, by an approver or the reviewer
    EXPIRED = "expired"  # its time ran out (set by the first to notice: a fetch or the sweep)


class GrantCategory(StrEnum):
    """Why a reviewer asks for a recording."""

    COMPLAINT = "complaint"
    QUALITY = "quality"
    SUBJECT_REQUEST = "subject_request"
    LEGAL = "legal"
    OTHER = "other"
    # Not to listen: to erase a data subject's recording (the officer; four eyes like any grant).
    ERASURE = "erasure"


@dataclass(frozen=True)
class GrantRow:
    """One reviewer's request for one recording, and what became of it. Times are seconds since
    the epoch (compared, never shown raw)."""

    id: str
    recording_id: str
    requester: str
    category: GrantCategory
    reason: str
    state: GrantState
    requested_at: float
    decided_by: str | None = None
    decided_at: float | None = None
    expires_at: float | None = None
    closed_by: str | None = None  # who revoked it (or "gateway" for an expiry)
    closed_at: float | None = None
    allow_download: bool = False  # fixed when approved, from [review] allow_download
    self_granted: bool = False  # approved by its own requester ([review] four_eyes = false)


@dataclass(frozen=True)
class RecordingQuery:
    """A page of the recordings list: filters on indexed columns, newest first, and the key of
    the previous page's last row (started_at, id) to continue after."""

    since: str | None = None  # started_at >= (ISO time, as stored)
    until: str | None = None  # started_at <
    route: str | None = None
    status: str | None = None
    origin: str | None = None
    held: bool | None = None
    node: str | None = None
    language: str | None = None
    consent: str | None = None
    tenants: frozenset[str] | None = None  # only these tenants' recordings (None: every one's)
    after: tuple[str, str] | None = None
    oldest_first: bool = False  # the same index read the other way
    limit: int = 50
