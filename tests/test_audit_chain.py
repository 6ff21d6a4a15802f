from __future__ import annotations

import json
from dataclasses import replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.storage import audit
from gateway.storage.audit import AuditEntry


def chain(n: int, v: int = audit.HASH_VERSION, start: int = 1, prev: str = audit.GENESIS) -> list[AuditEntry]:
    entries = []
    for i in range(start, start + n):
        e = audit.seal(
            AuditEntry(i, f"2026-01-01T00:00:{i:02d}Z", "op", f"act{i}", f"s{i}", {"i": i}), prev, v
        )
        entries.append(e)
        prev = e.hash
    return entries


def relinked(entries: list[AuditEntry]) -> list[AuditEntry]:
    """What an attacker with write access does after deleting entries: renumber and rehash the rest."""
    out, prev = [], audit.GENESIS
    for i, e in enumerate(entries, 1):
        e = audit.seal(replace(e, seq=i), prev)
        out.append(e)
        prev = e.hash
    return out


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
    entries[1], entries[2] = entries[2], entries[1]
    v = audit.verify(entries)
    assert v.problem and v.problem.kind == "reordered" and v.problem.seq == 3


def test_renumbering_is_an_edit() -> None:
    """The sequence number is inside the hash: moving an entry to another number is an edit."""
    entries = chain(5)
    entries[1], entries[2] = replace(entries[2], seq=2), replace(entries[1], seq=3)
    v = audit.verify(entries)
    assert v.problem and v.problem.kind == "edited" and v.problem.seq == 2


def test_old_entries_keep_their_version_1_hashes_and_cannot_be_downgraded_to() -> None:
    old = chain(3, v=1)
    entries = old + chain(2, start=4, prev=old[-1].hash)
    assert audit.verify(entries).ok
    # A version-2 entry rewritten as version 1 (which would drop its sequence binding) is refused.
    entries[4] = audit.seal(entries[4], entries[3].hash, v=1)
    v = audit.verify(entries)
    assert v.problem and v.problem.kind == "edited" and v.problem.seq == 5


def only(key: Ed25519PrivateKey) -> audit.KeyLookup:
    """One node's key, as signers.Signers.lookup gives it."""
    fp = audit.key_fingerprint(key.public_key())
    return lambda name: key.public_key() if name in (fp, None) else None


def test_every_node_checkpoints_into_one_witness_and_each_is_checked_with_its_own_key() -> None:
    a, b = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    entries = chain(6)
    witness = [
        audit.make_checkpoint(3, entries[2].hash, "t3", a),
        audit.make_checkpoint(5, entries[4].hash, "t5", b),
    ]
    assert [cp.key for cp in witness] == [
        audit.key_fingerprint(a.public_key()),
        audit.key_fingerprint(b.public_key()),
    ]
    keys = {audit.key_fingerprint(k.public_key()): k.public_key() for k in (a, b)}
    assert audit.check_checkpoints(entries, witness, keys.get) is None
    problem = audit.check_checkpoints(entries, witness, only(a))  # node B's key unknown here
    assert problem and problem.kind == "forged-checkpoint" and problem.seq == 5
    # The key is in the signed message: naming another node's key breaks the signature.
    swapped = [audit.Checkpoint(5, entries[4].hash, "t5", witness[1].signature, witness[0].key)]
    assert audit.check_checkpoints(entries, swapped, keys.get) is not None
    # Version-1 checkpoints (no key named) are this gateway's own.
    v1 = audit.Checkpoint(3, entries[2].hash, "t3")
    v1 = audit.Checkpoint(3, entries[2].hash, "t3", a.sign(v1.message()).hex())
    assert audit.check_checkpoints(entries, [v1], only(a)) is None


def test_a_relinked_chain_passes_alone_but_not_against_a_checkpoint() -> None:
    key = Ed25519PrivateKey.generate()
    entries = chain(6)
    witness = [
        audit.make_checkpoint(4, entries[3].hash, "t4", key),
        audit.make_checkpoint(6, entries[5].hash, "t6", key),
    ]
    assert audit.check_checkpoints(entries, witness, only(key)) is None
    forged = relinked(entries[:2] + entries[3:])  # #3 deleted, the rest renumbered and rehashed
    assert audit.verify(forged).ok, "without a key the chain alone cannot show this"
    problem = audit.check_checkpoints(forged, witness, only(key))
    assert problem and problem.kind == "rewritten" and problem.seq == 4


def test_checkpoints_catch_a_cut_end_and_forged_checkpoints() -> None:
    key = Ed25519PrivateKey.generate()
    entries = chain(6)
    witness = [audit.make_checkpoint(6, entries[5].hash, "t6", key)]
    problem = audit.check_checkpoints(entries[:4], witness, only(key))
    assert problem and problem.kind == "truncated" and "ends at #4" in problem.message
    other = Ed25519PrivateKey.generate()
    fake = [audit.make_checkpoint(2, "f" * 64, "t2", other)]
    problem = audit.check_checkpoints(entries, fake, only(key))
    assert problem and problem.kind == "forged-checkpoint" and "does not trust" in problem.message
    # A checkpoint that names a trusted key but was signed by another (or altered after).
    lying = [
        audit.Checkpoint(2, entries[1].hash, "t2", fake[0].signature, audit.key_fingerprint(key.public_key()))
    ]
    problem = audit.check_checkpoints(entries, lying, only(key))
    assert (
        problem and problem.kind == "forged-checkpoint" and "does not carry its signature" in problem.message
    )
    assert audit.check_head(entries, entries[5].hash) is None
    head = audit.check_head(entries[:5], entries[5].hash)
    assert head and head.kind == "truncated"


def test_checkpoints_are_found_in_a_witness_record_with_prefixes() -> None:
    key = Ed25519PrivateKey.generate()
    cp = audit.make_checkpoint(7, "a" * 64, "2026-11-27T10:00:00Z", key)
    log_line = json.dumps({"ts": 1.0, "level": "info", "msg": "audit checkpoint " + cp.line()})
    lines = [
        "Nov 27 10:00:00 gw consent-gateway[123]: " + cp.line(),
        "unrelated line",
        '{"type":"other"}',
        log_line,
        json.dumps({"MESSAGE": "audit checkpoint " + cp.line()}),
    ]
    parsed = audit.parse_checkpoints(lines)
    assert parsed == [cp, cp, cp] and parsed[0].verify(key.public_key())


def test_version_3_follows_version_2_and_never_precedes_it() -> None:
    old = chain(3, v=2)
    new = chain(3, v=3, start=4, prev=old[-1].hash)
    assert audit.verify(old + new).ok
    back = chain(1, v=2, start=7, prev=new[-1].hash)
    assert audit.verify(old + new + back).problem.kind == "edited"


def test_a_sealed_version_3_entry_is_checked_through_its_digest_and_an_old_one_only_linked() -> None:
    old = chain(2, v=2)
    new = chain(4, v=3, start=3, prev=old[-1].hash)
    shown = [old[0].sealed_copy(), old[1], new[0], new[1].sealed_copy(), new[2].sealed_copy(), new[3]]
    v = audit.verify(shown)
    assert v.ok and (v.sealed, v.opaque) == (3, 1) and v.head_hash == new[-1].hash
    # What a sealed line carries: no content at all.
    line = shown[3].as_json()
    assert set(line) == {"seq", "prev_hash", "hash", "v", "sealed"}
    assert AuditEntry.from_json(json.loads(json.dumps(line))) == shown[3]
    # Another entry's digest in its place (a swapped entry) breaks the chain there.
    forged = replace(shown[3], sealed=new[2].body_digest())
    assert audit.verify([*shown[:3], forged, *shown[4:]]).problem.seq == 4
    # A shown entry whose content was edited still fails as before.
    edited = replace(new[0], actor="someone-else")
    assert audit.verify([*shown[:2], edited, *shown[3:]]).problem.kind == "edited"
