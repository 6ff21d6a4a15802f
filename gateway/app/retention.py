"""Retention: recordings older than their retention are deleted, unless on legal hold. A
recording's retention is its own (its route's, set when it was made), else its tenant's, else
[recording] retention_days. Every deletion is audited, and belongs to the recording's tenant's
audit trail; `dry_run` reports what would go; a run may be limited to one tenant."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ..storage.index import Index
from ..storage.rows import RecordingRow, RecordingStatus, utcnow
from ..storage.store import ObjectNotFound, Store, StoreError

if TYPE_CHECKING:
    from ..config import Config

KEPT_STATUSES = (RecordingStatus.COMPLETE, RecordingStatus.TRUNCATED, RecordingStatus.INCOMPLETE)


@dataclass
class RetentionReport:
    deleted: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # the object was already gone
    failed: dict[str, str] = field(default_factory=dict)  # the store refused or did not answer
    removed_later: list[str] = field(default_factory=list)  # erased earlier; the store let go now


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Retention:
    """How many days recordings are kept: `default_days` ([recording] retention_days), or their
    tenant's (`by_tenant`) when it has its own; a recording's own retention_days comes first."""

    default_days: int
    by_tenant: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, config: Config) -> Retention:
        return cls(
            config.recording.retention_days,
            {t.name: t.retention_days for t in config.tenancy.listed if t.retention_days is not None},
        )

    def days(self, row: RecordingRow) -> int:
        if row.retention_days is not None:
            return row.retention_days
        return self.by_tenant.get(row.tenant or "", self.default_days)


def expired(
    index: Index, keep: Retention, now: datetime | None = None, tenant: str | None = None
) -> list[RecordingRow]:
    """Recordings past their retention (of `tenant` alone, if given)."""
    now = now or datetime.now(UTC)
    out = []
    for row in index.list_recordings():
        if row.status not in KEPT_STATUSES or (tenant is not None and row.tenant != tenant):
            continue
        if _parse(row.started_at) + timedelta(days=keep.days(row)) < now:
            out.append(row)
    return out


# In a deleted row's error: its key was destroyed but the store still keeps its ciphertext
# (Object Lock); retention removes the object once the store lets it.
KEPT_BY_STORE = "ciphertext kept by the store"


def delete_recording(store: Store, index: Index, row: RecordingRow, actor: str, reason: str) -> bool:
    """Delete one recording's object and mark its row; False if the object was already gone."""
    finished = row.finished_at or utcnow()
    return delete_object(
        store,
        index,
        row.id,
        row.object_name,
        row.bytes,
        finished,
        actor,
        reason,
        has_key=row.key_enc is not None,
    )


def delete_object(
    store: Store,
    index: Index,
    rec_id: str,
    object_name: str,
    size: int,
    finished_at: str | None,
    actor: str,
    reason: str,
    *,
    has_key: bool = False,
) -> bool:
    """`delete_recording` from what the caller knows of the recording, without reading its row
    (its finish time is left as it is when `finished_at` is None).

    A recording with a key of its own (`has_key`, recording/keys.py) is erased by destroying
    that key first: from then on it is unreadable, even if the store refuses to delete its
    ciphertext (Object Lock), which is then reported, kept and deleted by retention later.
    Without one, a store that refuses raises StoreError and nothing is marked."""
    if has_key:
        index.update_recording(rec_id, key_enc=None)
    present, kept = True, ""
    try:
        store.delete(object_name)
    except ObjectNotFound:
        present = False
    except StoreError as e:
        if not has_key:
            raise
        kept = str(e)
    changes: dict[str, str] = {"status": RecordingStatus.DELETED, "error": f"deleted: {reason}"}
    details: dict[str, object] = {"reason": reason, "bytes": size, "object_present": present}
    if has_key:
        details["key_destroyed"] = True
    if kept:
        changes["error"] += f"; key destroyed, {KEPT_BY_STORE} ({kept[:200]})"
        details["object_kept"] = kept[:200]
    if finished_at is not None:
        changes["finished_at"] = finished_at
    index.update_recording(rec_id, **changes)
    index.append_audit(actor, "recording.deleted", rec_id, details)
    return present


def run(
    store: Store,
    index: Index,
    keep: Retention,
    actor: str,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    tenant: str | None = None,
) -> RetentionReport:
    """Delete what is past its retention (of `tenant`'s recordings alone, if given)."""
    report = RetentionReport()
    for row in expired(index, keep, now, tenant):
        if index.active_holds(row.id):
            report.held.append(row.id)
            continue
        if dry_run:
            report.deleted.append(row.id)
            continue
        try:
            present = delete_recording(store, index, row, actor, "retention")
        except StoreError as e:
            report.failed[row.id] = str(e)
            index.append_audit(
                actor, "recording.delete_failed", row.id, {"reason": "retention", "error": str(e)}
            )
            continue
        (report.deleted if present else report.missing).append(row.id)
    if not dry_run:
        report.removed_later = _remove_kept_objects(store, index, actor)
        index.append_audit(
            actor,
            "retention.run",
            "-",
            {
                "deleted": len(report.deleted),
                "held": len(report.held),
                "missing": len(report.missing),
                "failed": len(report.failed),
                **({} if tenant is None else {"tenant": tenant}),
            },
        )
    return report


def _remove_kept_objects(store: Store, index: Index, actor: str) -> list[str]:
    """Ciphertext of erased recordings that the store kept (its key is destroyed): delete it
    once the store allows (its Object Lock date has passed)."""
    removed = []
    for row in index.list_recordings(RecordingStatus.DELETED):
        if KEPT_BY_STORE not in (row.error or ""):
            continue
        try:
            store.delete(row.object_name)
        except ObjectNotFound:
            pass
        except StoreError:
            continue  # still locked: next run
        index.update_recording(row.id, error=(row.error or "").split("; key destroyed")[0])
        index.append_audit(actor, "recording.object_removed", row.id, {"reason": "retention"})
        removed.append(row.id)
    return removed
