"""Data-subject requests (GDPR Art. 15 and 17) as audited operations: the search itself is in
governance/subject.py; here each request is logged under its random label (never the number),
whether it found anything or not, and an access or erasure happens only with its entry."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .. import age
from ..errors import GatewayError, NotFoundError
from ..governance import grants, subject
from ..governance.grants import GrantRefused, Person, Refusal
from ..governance.subject import SubjectRecords
from ..storage import pii
from ..storage.index import Index, NotFound
from ..storage.rows import CallRow, GrantState, RecordingRow, RecordingStatus
from ..storage.store import Store, StoreError
from .gateway import Gateway
from .retention import delete_recording


def search(
    gw: Gateway, identities: Sequence[age.AnyIdentity], number: str, tenant: str | None = None
) -> SubjectRecords:
    """The subject's calls and recordings, of `tenant`'s calls alone if given (a controller's
    own request); nothing is audited yet: see found/export/erase."""
    if tenant is not None:
        gw.config.tenancy.require(tenant)
    try:
        return subject.find(gw.index, list(identities), number, gw.config.numbering, tenant=tenant)
    except pii.NumberError as e:
        raise GatewayError(str(e)) from None


def _of(result: SubjectRecords) -> dict[str, str]:
    """What an entry about a request for one tenant says of it: that tenant, so that its
    `audit export --tenant` shows the entry whole."""
    return {} if result.tenant is None else {"tenant": result.tenant}


class Stores(Protocol):
    """What an erasure needs of the gateway (a Gateway, or the dashboard's BrowserSearch)."""

    @property
    def index(self) -> Index: ...

    @property
    def store(self) -> Store: ...


def _require_calls(gw: Stores, found: SubjectRecords, actor: str) -> None:
    """A request that finds nothing is logged as such, and ends there."""
    if not found.calls:
        gw.index.append_audit(
            actor, "subject.found", found.label, {"calls": 0, "recordings": 0, **_of(found)}
        )
        raise NotFoundError(f"no calls from {found.searched}")


def found(gw: Gateway, result: SubjectRecords, actor: str) -> None:
    """An access request answered with the list of calls and recordings."""
    _require_calls(gw, result, actor)
    gw.index.append_audit(
        actor,
        "subject.found",
        result.label,
        {"calls": len(result.calls), "recordings": len(result.recordings), **_of(result)},
    )


def export(
    gw: Gateway, result: SubjectRecords, identities: Sequence[age.AnyIdentity], out: Path, actor: str
) -> list[Path]:
    """Decrypt the subject's recordings and receipts into the new directory `out`."""
    _require_calls(gw, result, actor)
    try:
        written = subject.export(gw.store, gw.index, result, list(identities), out)
    except (subject.ExportDirError, OSError, age.AgeError) as e:
        gw.index.append_audit(
            actor,
            "subject.export_failed",
            result.label,
            {"recordings": [r.id for r in result.recordings], "error": e.__class__.__name__, **_of(result)},
        )
        if isinstance(e, subject.ExportDirError):
            raise GatewayError(str(e)) from None
        if isinstance(e, OSError):
            raise GatewayError(f"cannot write {out}: {e.strerror}; nothing was left there") from None
        raise
    gw.index.append_audit(
        actor,
        "subject.exported",
        result.label,
        {
            "recordings": [r.id for r in result.recordings],
            "calls": len(result.calls),
            "files": len(written),
            **_of(result),
        },
    )
    return written


@dataclass
class ErasureReport:
    deleted: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # the store refused or did not answer
    calls_scrubbed: int = 0


def erase(gw: Stores, result: SubjectRecords, actor: str) -> ErasureReport:
    """Delete the subject's recordings (except those on legal hold) and forget their number on
    every call that no longer has a held recording."""
    _require_calls(gw, result, actor)
    index = gw.index
    report = ErasureReport()
    held_calls = set()
    for rec in result.recordings:
        if index.active_holds(rec.id):
            report.held.append(rec.id)
            held_calls.add(rec.call_id)
            continue
        try:
            delete_recording(gw.store, index, rec, actor, "data-subject erasure")
        except StoreError as e:  # kept, and its call keeps the number so erasure can be retried
            report.failed[rec.id] = str(e)
            held_calls.add(rec.call_id)
            index.append_audit(
                actor, "recording.delete_failed", rec.id, {"reason": "data-subject erasure", "error": str(e)}
            )
            continue
        report.deleted.append(rec.id)
    for call in result.calls:
        if call.id not in held_calls:
            index.scrub_caller(call.id)
            report.calls_scrubbed += 1
    index.append_audit(
        actor,
        "subject.erased",
        result.label,
        {
            "deleted": len(report.deleted),
            "held": report.held,
            "failed": sorted(report.failed),
            "calls_scrubbed": report.calls_scrubbed,
            **_of(result),
        },
    )
    return report


def _scoped(tenants: frozenset[str] | None) -> dict[str, object]:
    """What an entry about an officer's search says of their scope: the tenants searched, and
    when that is one, the tenant the entry belongs to."""
    if tenants is None:
        return {}
    return {"tenants": sorted(tenants), **({"tenant": next(iter(tenants))} if len(tenants) == 1 else {})}


class BrowserSearch:
    """A data-subject search made in the officer's browser (dashboard/subjects.py): the server
    hands out the sealed numbers of a period page by page, the page decrypts and compares them
    with the officer's identity, and reports only the calls that matched. The server never
    learns the number searched for, nor any number it did not match. Both the search and what
    it found are audited under the request's random label."""

    PAGE = 500

    def __init__(self, index: Index, store: Store, numbering: pii.Numbering) -> None:
        self.index = index
        self.store = store
        self.numbering = numbering

    def start(
        self, actor: str, since: str | None, until: str | None, tenants: frozenset[str] | None = None
    ) -> str:
        label = f"request:{secrets.token_hex(8)}"
        scope = _scoped(tenants)
        self.index.append_audit(
            actor, "subject.searched", label, {"since": since, "until": until, "via": "browser", **scope}
        )
        return label

    def page(
        self, after: str, since: str | None, until: str | None, tenants: frozenset[str] | None = None
    ) -> tuple[list[tuple[str, bytes]], str | None]:
        """Up to PAGE calls' sealed values after call id `after` (of `tenants` only, if given:
        an officer scoped to tenants); the next cursor or None."""
        rows = self.index.encrypted_callers(after, self.PAGE, since, until, tenants)
        return rows, (rows[-1][0] if rows else None)

    def found(
        self, actor: str, label: str, call_ids: list[str], tenants: frozenset[str] | None = None
    ) -> tuple[list[CallRow], list[RecordingRow]]:
        """The matched calls and their recordings (erased ones left out), audited; of `tenants`
        only, if given (another tenant's call named here is left out as if it did not exist)."""
        if not label.startswith("request:") or len(label) > 40:
            raise GatewayError("not a subject request's label")
        calls = self.index.calls_by_ids(list(dict.fromkeys(call_ids))[:10_000])
        if tenants is not None:
            calls = [c for c in calls if c.tenant in tenants]
        recordings = [
            r
            for c in calls
            for r in self.index.recordings_of_call(c.id)
            if r.status not in (RecordingStatus.DELETED, RecordingStatus.DISCARDED)
        ]
        self.index.append_audit(
            actor,
            "subject.found",
            label,
            {"calls": len(calls), "recordings": len(recordings), "via": "browser", **_scoped(tenants)},
        )
        return calls, recordings

    def erase(self, who: Person, grant_id: str) -> ErasureReport:
        """Erase one recording of a data subject (and forget the number of its call) under an
        approved erasure grant of `who`'s: `gateway subject erase`'s semantics (a held recording
        is kept), with a second person's approval when four eyes are on. The grant is used once."""
        try:
            g = self.index.get_grant(grant_id)
            tenant = self.index.get_recording(g.recording_id).tenant
        except NotFound:
            raise NotFoundError(f"no request {grant_id}") from None
        if not grants.visible(g, who) or not who.sees(tenant):
            raise NotFoundError(f"no request {grant_id}")
        now = time.time()
        try:
            grants.check_erase(g, who, now)
        except GrantRefused as e:
            self.index.append_audit(
                who.audit_name,
                "review.erase_refused",
                g.recording_id,
                {"grant": g.id, "requester": g.requester, "refusal": str(e.refusal)},
            )
            raise
        row = self.index.get_recording(g.recording_id)
        calls = self.index.calls_by_ids([row.call_id]) if row.call_id else []
        if not calls:
            raise GatewayError(f"recording {row.id} belongs to no call: erase it with `gateway retention`")
        if not self.index.replace_grant(grants.used(g, now), GrantState.APPROVED):
            raise GrantRefused(Refusal.DECIDED, "this erasure was carried out or ended already")
        live = [r for r in [row] if r.status not in (RecordingStatus.DELETED, RecordingStatus.DISCARDED)]
        result = SubjectRecords(label=f"request:{g.id}", searched="", calls=calls, recordings=live)
        report = erase(self, result, who.audit_name)
        self.index.append_audit(
            who.audit_name,
            "review.erased",
            row.id,
            {"grant": g.id, "requester": g.requester, "approver": g.decided_by, "label": result.label},
        )
        return report
