"""Structural checks of stored recordings that need no key: what an auditor can run."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from .. import age
from ..age import format as fmt
from ..age import hybrid, x25519
from ..age.stream import payload_shape
from ..storage import index as ix
from ..storage.audit import KeyLookup
from ..storage.rows import RecordingRow, RecordingStatus
from ..storage.store import ObjectNotFound, Store
from . import signing

RECIPIENT_STANZAS = (x25519.STANZA_TYPE, hybrid.STANZA_TYPE)


@dataclass
class Finding:
    recording: str
    problem: str


def verify_signature(index: ix.Index, row: RecordingRow, keys: KeyLookup | None) -> list[str]:
    """The row's signature, checked with the key it names (`keys`: None checks nothing)."""
    if keys is None or row.status in (
        RecordingStatus.DISCARDED,
        RecordingStatus.DELETED,
        RecordingStatus.RECORDING,
    ):
        return []
    receipt = None
    if row.call_id is not None:
        try:
            receipt = index.get_consent_receipt(row.call_id)
        except ix.NotFound:
            receipt = None
    problem = signing.check(keys, row, receipt)
    return [] if problem is None else [problem]


def verify_recording(store: Store, row: RecordingRow) -> list[str]:
    """Problems with one recording's object, its index row and its structure."""
    if row.status in (RecordingStatus.DISCARDED, RecordingStatus.DELETED):
        return [f"object still present although {row.status}"] if store.exists(row.object_name) else []
    try:
        size = store.size(row.object_name)
    except ObjectNotFound:
        return ["object missing from the store"]
    problems = []
    # One forward pass (an object store streams; nothing is staged): the header is parsed from
    # the object's first bytes, and everything is hashed as it goes by.
    with store.open(row.object_name) as f:
        head = f.read(min(size, fmt.MAX_HEADER_SIZE + 1))
        first = io.BytesIO(head)
        try:
            header = fmt.parse(first)
        except age.HeaderError as e:
            return [f"not a valid age file: {e}"]
        header_len = first.tell()
        # A truncated recording's row covers the prefix its writer committed (service.recover);
        # anything after it is the unsigned tail the row's error mentions.
        covered = row.bytes if row.status == RecordingStatus.TRUNCATED and 0 < row.bytes <= size else size
        h = hashlib.sha256(head[:covered])
        left = covered - min(covered, len(head))
        while left > 0 and (block := f.read(min(1 << 20, left))):
            h.update(block)
            left -= len(block)
    if not any(s.type in RECIPIENT_STANZAS for s in header.stanzas):
        problems.append("no recipient stanza of a kind the gateway writes (X25519, mlkem768x25519)")
    if row.status != RecordingStatus.RECORDING:
        if row.bytes != covered:
            problems.append(f"size {size} differs from the index ({row.bytes})")
        if row.sha256 and h.hexdigest() != row.sha256:
            problems.append("ciphertext hash differs from the index: the file was altered or replaced")
    shape = payload_shape(size - header_len)
    if shape is None and row.status == RecordingStatus.COMPLETE:
        problems.append("payload length is impossible for a complete age file (torn or cut)")
    return problems


def verify_all(
    store: Store, index: ix.Index, rec_id: str | None = None, keys: KeyLookup | None = None
) -> tuple[int, list[Finding]]:
    rows = [index.get_recording(rec_id)] if rec_id else index.list_recordings()
    findings = [
        Finding(r.id, p) for r in rows for p in verify_recording(store, r) + verify_signature(index, r, keys)
    ]
    if rec_id is None:
        known = {r.object_name for r in rows}
        findings += [
            Finding("-", f"object {name} has no index row") for name in store.names() if name not in known
        ]
    return len(rows), findings
