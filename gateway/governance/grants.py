"""Access to a recording for review, as a pure state machine: who may ask, who may say yes,
for how long, and whether a given fetch is covered. No I/O: app/review.py stores each move,
audits it and serves the ciphertext.

    requested --approve--> approved --(time passes)--> expired
        |  \\--deny-----> denied       \\--revoke--> revoked
        \\--revoke (the reviewer withdraws it)--> revoked

Four eyes: an approver is never the requester. With `four_eyes` off (a small site) a reviewer
may approve their own request; the grant says so (`self_granted`) and the caller audits it
loudly. A grant covers one recording, one reviewer, until `expires_at`; nothing else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum

from ..accounts.users import Scope, in_scope
from ..storage.rows import GrantCategory, GrantRow, GrantState

REASON_MIN = 3
REASON_MAX = 500
# The permissions (accounts/users.py PERMISSIONS) these rules ask about.
REVIEW = "review"  # ask for access, and use a grant of one's own
APPROVE = "approve"  # decide others' requests, revoke any grant
AUDIT = "audit"  # see every request and grant (never use one)
SUBJECT = "subject"  # data-subject requests: ask for, and carry out, an erasure


class Refusal(StrEnum):
    """Why a move or a fetch is refused (the audit log records this word)."""

    ROLE = "role"  # the person's role may not do this
    OWN_REQUEST = "own_request"  # four eyes: the requester cannot decide their own request
    NOT_YOURS = "not_yours"  # the grant is another reviewer's
    WRONG_RECORDING = "wrong_recording"
    NOT_DECIDED = "not_decided"  # still waiting for an approver
    DENIED = "denied"
    REVOKED = "revoked"
    EXPIRED = "expired"
    DECIDED = "decided"  # already approved or denied: a decision is made once
    NO_DOWNLOAD = "no_download"  # the grant does not allow a decrypted download
    BAD_REQUEST = "bad_request"  # an unknown category, a reason too short or too long
    PURPOSE = "purpose"  # an erasure grant used to listen, or a listening grant to erase


class GrantRefused(Exception):
    def __init__(self, refusal: Refusal, message: str) -> None:
        super().__init__(message)
        self.refusal = refusal


@dataclass(frozen=True)
class Person:
    name: str
    permissions: frozenset[str]
    actor: str = ""  # how the audit log names them ("dashboard:NAME"); empty: the name
    tenants: Scope = None  # the tenants whose recordings they may see or act on (None: all)

    @property
    def audit_name(self) -> str:
        return self.actor or self.name

    def may(self, permission: str) -> bool:
        return permission in self.permissions

    def sees(self, tenant: str | None) -> bool:
        """Whether a recording of `tenant` is within their scope: one outside it is, to them,
        a recording that does not exist."""
        return in_scope(self.tenants, tenant)


@dataclass(frozen=True)
class Policy:
    """[review] in gateway.toml."""

    four_eyes: bool = True
    grant_s: float = 86400.0
    allow_download: bool = False


def effective_state(g: GrantRow, now: float) -> GrantState:
    """The state at `now`: an approved grant past its time is expired, stored so or not yet."""
    if g.state is GrantState.APPROVED and g.expires_at is not None and now >= g.expires_at:
        return GrantState.EXPIRED
    return g.state


def request(
    grant_id: str, recording_id: str, person: Person, category: str, reason: str, now: float
) -> GrantRow:
    if not person.may(REVIEW):
        raise GrantRefused(Refusal.ROLE, "only a reviewer may request access to a recording")
    try:
        cat = GrantCategory(category)
    except ValueError:
        raise GrantRefused(
            Refusal.BAD_REQUEST,
            f"category must be one of {', '.join(c.value for c in GrantCategory)}",
        ) from None
    if cat is GrantCategory.ERASURE and not person.may(SUBJECT):
        raise GrantRefused(Refusal.ROLE, "only the data protection officer may ask to erase a recording")
    reason = reason.strip()
    if not REASON_MIN <= len(reason) <= REASON_MAX:
        raise GrantRefused(
            Refusal.BAD_REQUEST, f"say why in {REASON_MIN} to {REASON_MAX} characters (the approver reads it)"
        )
    return GrantRow(grant_id, recording_id, person.name, cat, reason, GrantState.REQUESTED, now)


def _undecided(g: GrantRow, now: float) -> None:
    state = effective_state(g, now)
    if state is not GrantState.REQUESTED:
        raise GrantRefused(Refusal.DECIDED, f"this request is already {state}")


def approve(g: GrantRow, person: Person, policy: Policy, now: float) -> GrantRow:
    _undecided(g, now)
    own = person.name == g.requester
    if own:
        if policy.four_eyes:
            raise GrantRefused(
                Refusal.OWN_REQUEST, "four eyes: another person, an approver, must decide your request"
            )
        if not person.may(REVIEW):
            raise GrantRefused(Refusal.ROLE, "your role may not approve requests")
    elif not person.may(APPROVE):
        raise GrantRefused(Refusal.ROLE, "only an approver may approve a request")
    return dataclasses.replace(
        g,
        state=GrantState.APPROVED,
        decided_by=person.name,
        decided_at=now,
        expires_at=now + policy.grant_s,
        allow_download=policy.allow_download,
        self_granted=own,
    )


def deny(g: GrantRow, person: Person, now: float) -> GrantRow:
    _undecided(g, now)
    if person.name == g.requester:
        raise GrantRefused(Refusal.OWN_REQUEST, "withdraw your own request instead (revoke)")
    if not person.may(APPROVE):
        raise GrantRefused(Refusal.ROLE, "only an approver may deny a request")
    return dataclasses.replace(g, state=GrantState.DENIED, decided_by=person.name, decided_at=now)


def revoke(g: GrantRow, person: Person, now: float) -> GrantRow:
    """End a request or a grant now: an approver may end any, a reviewer their own."""
    state = effective_state(g, now)
    if state not in (GrantState.REQUESTED, GrantState.APPROVED):
        raise GrantRefused(Refusal.DECIDED, f"this grant is already {state}")
    if person.name != g.requester and not person.may(APPROVE):
        raise GrantRefused(Refusal.ROLE, "only an approver or the reviewer may revoke a grant")
    return dataclasses.replace(g, state=GrantState.REVOKED, closed_by=person.name, closed_at=now)


def expire(g: GrantRow, now: float) -> GrantRow:
    """The stored form of a grant whose time ran out (closed by the gateway at expires_at)."""
    if effective_state(g, now) is not GrantState.EXPIRED or g.state is GrantState.EXPIRED:
        raise GrantRefused(Refusal.DECIDED, f"this grant is {effective_state(g, now)}, not newly expired")
    return dataclasses.replace(g, state=GrantState.EXPIRED, closed_by="gateway", closed_at=g.expires_at)


_STATE_REFUSALS = {
    GrantState.REQUESTED: (Refusal.NOT_DECIDED, "this request has not been approved yet"),
    GrantState.DENIED: (Refusal.DENIED, "this request was denied"),
    GrantState.REVOKED: (Refusal.REVOKED, "this grant was revoked"),
    GrantState.EXPIRED: (Refusal.EXPIRED, "this grant has expired: request access again"),
}


def check_fetch(g: GrantRow, person: Person, recording_id: str, now: float) -> None:
    """A fetch of `recording_id`'s ciphertext by `person` under `g`: allowed, or GrantRefused."""
    if person.name != g.requester:
        raise GrantRefused(Refusal.NOT_YOURS, "this grant is another reviewer's")
    if not person.may(REVIEW):
        raise GrantRefused(Refusal.ROLE, "your role may not fetch recordings")
    if recording_id != g.recording_id:
        raise GrantRefused(Refusal.WRONG_RECORDING, "this grant is for another recording")
    if g.category is GrantCategory.ERASURE:
        raise GrantRefused(Refusal.PURPOSE, "an erasure grant does not give access to the audio")
    _in_force(g, now)


def _in_force(g: GrantRow, now: float) -> None:
    state = effective_state(g, now)
    if state is not GrantState.APPROVED:
        refusal, message = _STATE_REFUSALS[state]
        raise GrantRefused(refusal, message)


def check_erase(g: GrantRow, person: Person, now: float) -> None:
    """Erasing the grant's recording (data-subject erasure) by `person`: allowed, or GrantRefused.
    Only under an approved erasure grant of their own, in time."""
    if person.name != g.requester:
        raise GrantRefused(Refusal.NOT_YOURS, "this grant is someone else's")
    if not person.may(SUBJECT):
        raise GrantRefused(Refusal.ROLE, "your role may not erase recordings")
    if g.category is not GrantCategory.ERASURE:
        raise GrantRefused(Refusal.PURPOSE, "this grant is for listening, not erasing: request an erasure")
    _in_force(g, now)


def used(g: GrantRow, now: float) -> GrantRow:
    """An erasure grant once carried out: closed (as revoked by its requester), never used twice."""
    return dataclasses.replace(g, state=GrantState.REVOKED, closed_by=g.requester, closed_at=now)


def check_download(g: GrantRow, person: Person, now: float) -> None:
    """Saving the decrypted recording to the reviewer's disk: only when the grant allows it."""
    check_fetch(g, person, g.recording_id, now)
    if not g.allow_download:
        raise GrantRefused(Refusal.NO_DOWNLOAD, "this grant allows listening only, not a download")


def visible(g: GrantRow, person: Person) -> bool:
    """Whether `person` may see this request at all: their own, or everyone's for approvers and
    auditors."""
    return g.requester == person.name or person.may(APPROVE) or person.may(AUDIT)
