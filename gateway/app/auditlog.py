"""Reading the audit log out of the system is itself an access, and is logged as one: the
export's own entry is the last one exported."""

from __future__ import annotations

from ..storage.audit import AuditEntry
from .gateway import Gateway


def export(gw: Gateway, actor: str, destination: str) -> list[AuditEntry]:
    """Every entry, ending with this export's ("stdout" or "file")."""
    gw.index.append_audit(actor, "audit.exported", "-", {"destination": destination})
    return gw.index.audit_entries()
