"""Data-subject requests (GDPR Art. 15 and 17) without the gateway being able to read numbers:
the operator gives the number, the keyed hash finds the calls."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import age
from ..recording import export as ex
from ..storage import index as ix
from ..storage import pii
from ..storage.index import CallRow, Index, NotFound, RecordingRow
from ..storage.store import Store
from .retention import delete_recording


@dataclass
class SubjectRecords:
    label: str  # how the audit log names this subject: a prefix of the keyed hash, not the number
    calls: list[CallRow] = field(default_factory=list)
    recordings: list[RecordingRow] = field(default_factory=list)


def find(index: Index, secret: bytes, number: str) -> SubjectRecords:
    h = pii.number_hash(secret, number)
    found = SubjectRecords(label=f"subject:{h[:16]}", calls=index.calls_by_caller_hash(h))
    for call in found.calls:
        found.recordings += [r for r in index.recordings_of_call(call.id) if r.status not in (ix.DELETED, ix.DISCARDED)]
    return found


def export(store: Store, index: Index, found: SubjectRecords, identities: list[age.Identity], out: Path) -> list[Path]:
    """Decrypt the subject's recordings and write their receipts into `out` (0700, files 0600)."""
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    written = []
    for call in found.calls:
        try:
            receipt = index.get_consent_receipt(call.id)
        except NotFound:
            receipt = None
        path = out / f"call-{call.id}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"call": call.id, "started_at": call.started_at, "ended_at": call.ended_at,
                       "route": call.route, "consent_receipt": receipt}, f, indent=2, sort_keys=True)
        written.append(path)
    for rec in found.recordings:
        fmt = ex.MEDIA_EXTENSIONS.get(rec.media_type, ".wav")
        path = out / f"recording-{rec.id}{fmt}"
        with store.open(rec.object_name) as src:
            reader = age.AgeReader(src, identities, recover=rec.status != ix.COMPLETE)
            with ex.open_destination(str(path), force=True) as dest:
                ex.write_export(reader.chunks(), rec.media_type, fmt, dest)
        written.append(path)
    return written


@dataclass
class ErasureReport:
    deleted: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    calls_scrubbed: int = 0


def erase(store: Store, index: Index, found: SubjectRecords, actor: str) -> ErasureReport:
    """Delete the subject's recordings (except those on legal hold) and forget their number on
    every call that no longer has a held recording."""
    report = ErasureReport()
    held_calls = set()
    for rec in found.recordings:
        if index.active_holds(rec.id):
            report.held.append(rec.id)
            held_calls.add(rec.call_id)
            continue
        delete_recording(store, index, rec, actor, "data-subject erasure")
        report.deleted.append(rec.id)
    for call in found.calls:
        if call.id not in held_calls:
            index.scrub_caller(call.id)
            report.calls_scrubbed += 1
    index.append_audit(actor, "subject.erased", found.label,
                       {"deleted": len(report.deleted), "held": report.held, "calls_scrubbed": report.calls_scrubbed})
    return report
