"""Moving stored recordings to the configured recipients (each to its tenant's: config/tenants.py) (a new key, post-quantum recipients)
without decrypting their audio: each recording's header is rewrapped (RecordingService.rewrap,
audited per recording), then the callers' sealed numbers and participants follow, so that a
subject request still finds them once the old identity is retired. Run again after an
interruption, it goes on where it stopped."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .. import age
from ..config.tenants import Tenants
from ..errors import GatewayError, StorageError
from ..storage import pii
from ..storage.rows import RecordingRow, RecordingStatus
from ..storage.store import StoreError
from .gateway import Gateway

REWRAPPABLE = (RecordingStatus.COMPLETE, RecordingStatus.TRUNCATED, RecordingStatus.INCOMPLETE)


@dataclass
class RewrapReport:
    rewrapped: int = 0
    passed: int = 0  # already rewrapped, or not this identity's
    calls_resealed: int = 0
    calls_passed: int = 0


def rewrap(
    gw: Gateway,
    rows: Sequence[RecordingRow],
    identities: Sequence[age.AnyIdentity],
    actor: str,
    on_rewrapped: Callable[[str], None] = lambda _id: None,
) -> RewrapReport:
    tenants = gw.config.tenancy
    if not tenants.records:
        raise GatewayError("[recording] recipients is empty: nothing to rewrap to")
    service = gw.recording_service(None, actor=actor)
    report = RewrapReport()
    for row in rows:
        if row.status not in REWRAPPABLE:
            continue
        try:
            if service.rewrap(row.id, list(identities)):
                report.rewrapped += 1
                on_rewrapped(row.id)
            else:
                report.passed += 1
        except StoreError as e:
            raise StorageError(
                f"{row.id}: {e}; {report.rewrapped} rewrapped so far: run rewrap again to go on"
            ) from None
    report.calls_resealed, report.calls_passed = pii.reseal_all(
        gw.index, list(identities), lambda name: _sealing(tenants, name)
    )
    if report.calls_resealed:
        gw.index.append_audit(actor, "numbers.rewrapped", "calls", {"calls": report.calls_resealed})
    uploader = gw.uploader()
    if uploader is not None and report.rewrapped:
        uploader.round()  # the new objects leave the spool now (a running node would, within a minute)
    return report


def _sealing(tenants: Tenants, name: str | None) -> list[age.AnyRecipient] | None:
    """Whom a call of tenant `name` is sealed to now (None: no such tenant any more)."""
    try:
        return tenants.get(name).sealing
    except KeyError:
        return None
