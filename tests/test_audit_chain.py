from __future__ import annotations

from dataclasses import replace

from gateway.storage import audit
from gateway.storage.audit import AuditEntry


def chain(n: int) -> list[AuditEntry]:
    entries, prev = [], audit.GENESIS
    for i in range(1, n + 1):
        e = audit.seal(AuditEntry(i, f"2026-01-01T00:00:{i:02d}Z", "op", f"act{i}", f"s{i}", {"i": i}), prev)
        entries.append(e)
        prev = e.hash
    return entries


def test_intact_chain() -> None:
    v = audit.verify(chain(5))
    assert v.ok and v.head_seq == 5 and v.entries == 5


def test_edit_is_named() -> None:
    entries = chain(5)
    entries[2] = replace(entries[2], details={"i": 99})
    v = audit.verify(entries)
    assert v.problem and v.problem.kind == "edited" and v.problem.seq == 3


def test_deletion_is_named() -> None:
    entries = chain(5)
    del entries[1]
    v = audit.verify(entries)
    assert v.problem and v.problem.kind == "deleted" and v.problem.seq == 3
    v = audit.verify(chain(5)[1:])
    assert v.problem and v.problem.kind == "deleted" and "at the start" in v.problem.message


def test_reorder_is_named() -> None:
    entries = chain(5)
    # Swap two entries' content while the stored sequence numbers stay in place.
    a, b = entries[1], entries[2]
    entries[1], entries[2] = replace(b, seq=2), replace(a, seq=3)
    v = audit.verify(entries)
    assert v.problem and v.problem.kind == "reordered" and v.problem.seq == 2
