"""Review access as audited operations: a reviewer's request for one recording, an approver's
decision, revocation, expiry, and each fetch of the ciphertext (and a recording's wrapped key)
under a grant. The rules are governance/grants.py; here every move is stored (once, even when
two people act at the same moment) and audited with both names, and a refused fetch is audited
too. Nothing here ever decrypts: the reviewer's browser does, with a key the server never sees.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..accounts.users import PERMISSIONS, Scope
from ..errors import GatewayError, NotFoundError
from ..governance import grants
from ..governance.grants import GrantRefused, Person, Policy, Refusal
from ..storage.index import Index, NotFound
from ..storage.rows import GrantRow, GrantState, RecordingRow, RecordingStatus
from ..storage.store import Store

log = logging.getLogger(__name__)


class RangeError(GatewayError):
    """A byte range outside the object (HTTP 416)."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


def person(name: str, role: str, actor: str = "", tenants: Scope = None) -> Person:
    """A user as the grant rules see them: their name, their role's permissions and the tenants
    they are scoped to (None: all)."""
    return Person(name, PERMISSIONS.get(role, frozenset()), actor, tenants)


@dataclass
class Fetch:
    """An open ranged read of a granted recording's ciphertext: bytes start..end (inclusive)
    of size; the caller streams and closes `stream`."""

    grant: GrantRow
    recording: RecordingRow
    start: int
    end: int
    size: int
    stream: BinaryIO


class Review:
    def __init__(
        self,
        index: Index,
        store: Store,
        policy: Policy,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.index = index
        self.store = store
        self.policy = policy
        self.clock = clock

    # -- requests and decisions ------------------------------------------------------------

    def _recording(self, rec_id: str, who: Person | None = None) -> RecordingRow:
        """The recording, as `who` may know of it: another tenant's is one that does not exist."""
        try:
            row = self.index.get_recording(rec_id)
        except NotFound:
            raise NotFoundError(f"no recording {rec_id}") from None
        if who is not None and not who.sees(row.tenant):
            raise NotFoundError(f"no recording {rec_id}")
        if row.status in (RecordingStatus.DISCARDED, RecordingStatus.DELETED, RecordingStatus.RECORDING):
            raise NotFoundError(f"recording {row.id} is {row.status}: there is nothing to review")
        return row

    def grant(self, grant_id: str) -> GrantRow:
        try:
            return self.index.get_grant(grant_id)
        except NotFound:
            raise NotFoundError(f"no access request {grant_id}") from None

    def visible_grant(self, who: Person, grant_id: str) -> GrantRow:
        """A request `who` may know of: their own or (for approvers and auditors) anyone's, for
        a recording within their scope. Any other answers as one that does not exist."""
        g = self.grant(grant_id)
        if not grants.visible(g, who) or not who.sees(self._tenant(g.recording_id)):
            raise NotFoundError(f"no access request {grant_id}")
        return g

    def _tenant(self, rec_id: str) -> str | None:
        try:
            return self.index.get_recording(rec_id).tenant
        except NotFound:
            return None

    def _audit(self, actor: str, action: str, g: GrantRow, **details: Any) -> None:
        self.index.append_audit(
            actor,
            action,
            g.recording_id,
            {"grant": g.id, "requester": g.requester, **details},
        )

    def _refused(self, who: Person, g: GrantRow, move: str, e: GrantRefused) -> GrantRefused:
        self._audit(who.audit_name, "review.refused", g, move=move, refusal=str(e.refusal))
        return e

    def request(self, who: Person, rec_id: str, category: str, reason: str) -> GrantRow:
        row = self._recording(rec_id, who)
        g = grants.request(secrets.token_hex(8), row.id, who, category, reason, self.clock())
        self.index.add_grant(g)
        self._audit(who.audit_name, "review.requested", g, category=str(g.category), reason=g.reason)
        return g

    def _move(self, who: Person, grant_id: str, move: str, step: Callable[[GrantRow], GrantRow]) -> GrantRow:
        g = self.visible_grant(who, grant_id)
        try:
            new = step(g)
        except GrantRefused as e:
            raise self._refused(who, g, move, e) from None
        if not self.index.replace_grant(new, g.state):
            now = self.grant(grant_id)
            raise self._refused(
                who, g, move, GrantRefused(Refusal.DECIDED, f"someone else acted first: it is {now.state}")
            )
        return new

    def approve(self, who: Person, grant_id: str) -> GrantRow:
        g = self._move(who, grant_id, "approve", lambda g: grants.approve(g, who, self.policy, self.clock()))
        details = {"approver": who.name, "expires_at": g.expires_at, "allow_download": g.allow_download}
        if g.self_granted:
            log.warning(
                "review: %s granted themselves access to recording %s ([review] four_eyes = false)",
                who.name,
                g.recording_id,
            )
            self._audit(who.audit_name, "review.self_granted", g, **details)
        else:
            self._audit(who.audit_name, "review.approved", g, **details)
        return g

    def deny(self, who: Person, grant_id: str, note: str = "") -> GrantRow:
        g = self._move(who, grant_id, "deny", lambda g: grants.deny(g, who, self.clock()))
        self._audit(who.audit_name, "review.denied", g, approver=who.name, note=note[:500])
        return g

    def revoke(self, who: Person, grant_id: str, note: str = "") -> GrantRow:
        g = self._move(who, grant_id, "revoke", lambda g: grants.revoke(g, who, self.clock()))
        self._audit(who.audit_name, "review.revoked", g, approver=g.decided_by, note=note[:500])
        return g

    def visible_grants(
        self, who: Person, *, recording_id: str | None = None, limit: int = 200
    ) -> list[GrantRow]:
        everyone = who.may(grants.APPROVE) or who.may(grants.AUDIT)
        return self.index.grants(
            requester=None if everyone else who.name,
            recording_id=recording_id,
            limit=limit,
            tenants=who.tenants,
        )

    # -- expiry ----------------------------------------------------------------------------

    def _expire(self, g: GrantRow) -> bool:
        """Store and audit one grant's expiry; False if another node (or a fetch) did first."""
        new = grants.expire(g, self.clock())
        if not self.index.replace_grant(new, GrantState.APPROVED):
            return False
        self._audit("gateway", "review.expired", new, approver=g.decided_by, expired_at=g.expires_at)
        return True

    def expire_due(self) -> int:
        """Every approved grant past its time, expired and audited once; how many."""
        return sum(self._expire(g) for g in self.index.grants(due_by=self.clock(), limit=1000))

    # -- fetching --------------------------------------------------------------------------

    def _covered(self, who: Person, grant_id: str, what: str) -> tuple[GrantRow, RecordingRow]:
        g = self.visible_grant(who, grant_id)
        now = self.clock()
        try:
            grants.check_fetch(g, who, g.recording_id, now)
        except GrantRefused as e:
            if e.refusal is Refusal.EXPIRED and g.state is GrantState.APPROVED:
                self._expire(g)
            self._audit(who.audit_name, "review.fetch_refused", g, what=what, refusal=str(e.refusal))
            raise
        return g, self._recording(g.recording_id)

    def still_covers(self, who: Person, grant_id: str) -> bool:
        """Whether a fetch under way may go on (a revocation or expiry ends it at once)."""
        try:
            g = self.grant(grant_id)
            grants.check_fetch(g, who, g.recording_id, self.clock())
        except (GrantRefused, NotFoundError):
            return False
        return True

    def fetch(
        self, who: Person, grant_id: str, start: int = 0, end: int | None = None, *, suffix: int | None = None
    ) -> Fetch:
        """Open the granted recording's ciphertext at bytes start..end (inclusive; None: to its
        end; `suffix`: its last so many bytes), audited before the first byte leaves."""
        g, row = self._covered(who, grant_id, "ciphertext")
        size = self.store.size(row.object_name)
        if suffix is not None:
            start, end = max(0, size - suffix), None
        last = size - 1 if end is None else min(end, size - 1)
        if start < 0 or start >= size or last < start:
            raise RangeError(f"bytes {start}-{'' if end is None else end} are outside 0-{size - 1}", size)
        self._audit(
            who.audit_name,
            "review.fetched",
            g,
            approver=g.decided_by,
            start=start,
            end=last,
            size=size,
        )
        return Fetch(g, row, start, last, size, self.store.open_from(row.object_name, start))

    def wrapped_key(self, who: Person, grant_id: str) -> bytes:
        """A recording's own key, as stored: age-encrypted to the operators' recipients."""
        g, row = self._covered(who, grant_id, "key")
        if row.key_enc is None:
            raise NotFoundError(f"recording {row.id} has no key of its own")
        self._audit(who.audit_name, "review.key_fetched", g, approver=g.decided_by)
        return row.key_enc

    def download(self, who: Person, grant_id: str) -> None:
        """The reviewer's page saved the decrypted recording (it tells us first; refused unless
        the grant allows it). Audited."""
        g = self.visible_grant(who, grant_id)
        try:
            grants.check_download(g, who, self.clock())
        except GrantRefused as e:
            self._audit(who.audit_name, "review.download_refused", g, refusal=str(e.refusal))
            raise
        self._audit(who.audit_name, "review.downloaded", g, approver=g.decided_by)
