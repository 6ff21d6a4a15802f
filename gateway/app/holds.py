"""Legal holds: a held recording is exempt from retention and erasure until released. Each
placement and release is audited with who did it and why, and mirrored onto the object when
the store keeps Object Lock."""

from __future__ import annotations

from typing import Protocol

from ..accounts.users import Scope, in_scope
from ..errors import GatewayError, NotFoundError
from ..storage.index import Index, NotFound
from ..storage.rows import RecordingRow, RecordingStatus


class Gateway(Protocol):
    """What holds need of the gateway (app/gateway.py's Gateway): its index, and the mirroring
    of a hold onto the stored object."""

    @property
    def index(self) -> Index: ...

    def set_legal_hold(self, rec_id: str, object_name: str, on: bool) -> None: ...


class ReasonRequired(GatewayError):
    """A hold placed or released without saying why."""


def one_recording(gw: Gateway, rec_id: str, scope: Scope = None) -> RecordingRow:
    """The recording, as a user of `scope` may know of it: another tenant's does not exist."""
    try:
        row = gw.index.get_recording(rec_id)
    except NotFound:
        raise NotFoundError(f"no recording {rec_id}") from None
    if not in_scope(scope, row.tenant):
        raise NotFoundError(f"no recording {rec_id}")
    return row


def place(gw: Gateway, label: str, rows: list[RecordingRow], reason: str, actor: str) -> list[RecordingRow]:
    """Hold every recording of `rows` that still exists; the audit entry names them under
    `label` (a recording id, a subject request's label, "legacy-import"). Returns those held."""
    live = [r for r in rows if r.status not in (RecordingStatus.DELETED, RecordingStatus.DISCARDED)]
    for r in live:
        gw.index.add_hold(r.id, reason, actor)
        gw.set_legal_hold(r.id, r.object_name, True)
    gw.index.append_audit(actor, "hold.added", label, {"recordings": [r.id for r in live], "reason": reason})
    return live


def place_on(gw: Gateway, rec_id: str, reason: str, actor: str) -> list[RecordingRow]:
    """Hold one recording, which must still exist."""
    row = one_recording(gw, rec_id)
    if row.status in (RecordingStatus.DELETED, RecordingStatus.DISCARDED):
        raise NotFoundError(f"recording {rec_id} was {row.status}: nothing left to hold")
    return place(gw, row.id, [row], reason, actor)


def place_new(gw: Gateway, label: str, rec_ids: list[str], reason: str, actor: str) -> list[str]:
    """Hold those of `rec_ids` not already held (a repeated import holds nothing twice)."""
    held = {h["recording_id"] for h in gw.index.active_holds()}
    rows = [gw.index.get_recording(r) for r in rec_ids if r not in held]
    return [r.id for r in place(gw, label, rows, reason, actor)]


def release(gw: Gateway, label: str, rows: list[RecordingRow], reason: str, actor: str) -> int:
    """Release every active hold on `rows`; how many were released."""
    released = 0
    for r in rows:
        n = gw.index.release_holds(r.id, reason, actor)
        released += n
        if n and not gw.index.active_holds(r.id):
            gw.set_legal_hold(r.id, r.object_name, False)
    gw.index.append_audit(
        actor,
        "hold.removed",
        label,
        {"recordings": [r.id for r in rows], "reason": reason, "released": released},
    )
    return released


class Holds:
    """Holds one recording at a time, as the dashboard places and releases them: always with a
    reason (at most 500 characters), audited with the user's name; a user scoped to tenants
    (`scope`) holds their tenants' recordings alone."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    @staticmethod
    def _reason(reason: str) -> str:
        reason = reason.strip()
        if not reason:
            raise ReasonRequired("say why (a case or complaint reference): the audit log keeps it")
        return reason[:500]

    def place(self, rec_id: str, reason: str, actor: str, scope: Scope = None) -> bool:
        """Hold a recording; False if it was held already (nothing is added twice)."""
        reason = self._reason(reason)
        row = one_recording(self.gw, rec_id, scope)
        if self.gw.index.active_holds(row.id):
            return False
        place_on(self.gw, row.id, reason, actor)
        return True

    def release(self, rec_id: str, reason: str, actor: str, scope: Scope = None) -> int:
        """Release every active hold on a recording; how many."""
        reason = self._reason(reason)
        row = one_recording(self.gw, rec_id, scope)
        return release(self.gw, row.id, [row], reason, actor)
