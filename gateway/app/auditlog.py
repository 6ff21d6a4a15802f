"""Reading the audit log out of the system is itself an access, and is logged as one: the
export's own entry is the last one exported.

A tenant's export (`--tenant T`, issue 27) is the whole chain with every entry that is not T's
sealed: its place in the chain and the SHA-256 of its content, nothing else. Entries of hash
version 3 cover that digest rather than the content, so the tenant checks every link up to the
signed checkpoints without seeing another tenant's entry. An entry is T's when it names T
(details "tenant") or its subject (or the call or recording it names) is a call or recording of
T; entries about the system itself (exports, accounts, keys) are no tenant's and stay sealed.
"""

from __future__ import annotations

from typing import Any

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


def tenants_of(index: Index, entries: list[AuditEntry]) -> dict[int, str]:
    """The tenant of each entry that has one, by sequence number."""
    named: dict[int, list[str]] = {}
    for e in entries:
        refs = [e.subject, *(str(e.details.get(k)) for k in ("call", "recording") if e.details.get(k))]
        named[e.seq] = refs
    ids = sorted({r for refs in named.values() for r in refs if r and r != "-"})
    owner: dict[str, str] = {}
    for rec in index.list_recordings():
        if rec.tenant:
            owner[rec.id] = rec.tenant
    for i in range(0, len(ids), 500):
        for call in index.calls_by_ids(ids[i : i + 500]):
            if call.tenant:
                owner[call.id] = call.tenant
    out: dict[int, str] = {}
    for e in entries:
        explicit = e.details.get("tenant")
        found = explicit if isinstance(explicit, str) and explicit else None
        found = found or next((owner[r] for r in named[e.seq] if r in owner), None)
        if found:
            out[e.seq] = found
    return out
