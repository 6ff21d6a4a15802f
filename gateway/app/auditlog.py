"""Reading the audit log out of the system is itself an access, and is logged as one: the
export's own entry is the last one exported.

A tenant's export (`--tenant T`, issue 27) is the whole chain with every entry that is not T's
sealed: its place in the chain and the SHA-256 of its content, nothing else. Entries of hash
version 3 cover that digest rather than the content, so the tenant checks every link up to the
signed checkpoints without seeing another tenant's entry. An entry is T's when it names T
(details "tenant") or its subject (or the call or recording it names) is a call or recording of
T (the index writes that tenant into each entry as it is appended); entries about the system
itself (exports, accounts, keys), or about several tenants' records, are no tenant's and stay
sealed.
"""

from __future__ import annotations

from typing import Any

from ..accounts.users import Scope, in_scope
from ..storage import audit
from ..storage.audit import AuditEntry
from ..storage.index import Index
from .gateway import Gateway


def export(gw: Gateway, actor: str, destination: str, tenant: str | None = None) -> list[AuditEntry]:
    """Every entry, ending with this export's ("stdout" or "file"); with `tenant`, the others
    sealed."""
    details: dict[str, Any] = {"destination": destination}
    if tenant is not None:
        details["tenant_export"] = tenant  # not "tenant": the export is the system's act
    gw.index.append_audit(actor, "audit.exported", "-", details)
    entries = gw.index.audit_entries()
    if tenant is None:
        return entries
    owners = tenants_of(gw.index, entries)
    return [e if owners.get(e.seq) == tenant else e.sealed_copy() for e in entries]


def view(index: Index, scope: Scope, limit: int) -> tuple[audit.ChainVerdict, list[AuditEntry]]:
    """The dashboard's audit view: the whole chain's verdict and its last `limit` entries,
    newest first; for a user scoped to tenants, only their tenants' entries (the verdict still
    covers every link: a break anywhere is theirs to know of, not what the entry said)."""
    entries = index.audit_entries()
    verdict = audit.verify(entries)
    if scope is not None:
        owners = tenants_of(index, entries)
        entries = [e for e in entries if in_scope(scope, owners.get(e.seq))]
    return verdict, list(reversed(entries[-limit:]))


def tenants_of(index: Index, entries: list[AuditEntry]) -> dict[int, str]:
    """The tenant of each entry that has one, by sequence number: the tenant written into the
    entry, or for an entry written before entries carried theirs, the tenant of the one call or
    recording it is about (if that is still in the index)."""
    named = {e.seq: audit.references(e.subject, e.details) for e in entries if e.tenant is None}
    ids = sorted({r for refs in named.values() for r in refs})
    owner: dict[str, str] = {}
    if ids:
        for rec in index.list_recordings():
            if rec.tenant:
                owner[rec.id] = rec.tenant
        for i in range(0, len(ids), 500):
            for call in index.calls_by_ids(ids[i : i + 500]):
                if call.tenant:
                    owner[call.id] = call.tenant
    out: dict[int, str] = {}
    for e in entries:
        if e.tenant is not None:
            out[e.seq] = e.tenant
            continue
        found = {owner[r] for r in named[e.seq] if r in owner}
        if len(found) == 1:
            out[e.seq] = found.pop()
    return out
