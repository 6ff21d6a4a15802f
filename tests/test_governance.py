"""Retention, legal holds, data-subject requests and signed recordings: every deletion path
is exercised with a held recording present."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from gateway import age
from gateway.cli import exitcodes
from gateway.storage import pii
from gateway.storage.rows import CallRow, RecordingStatus, utcnow
from tests.audio import dominant_frequency
from tests.gw import GatewayUnderTest, make_gateway

ANNA, BERTIL = "+46 70 123 45 67", "+46702222222"


@pytest.fixture
def tgw(tmp_path: Path) -> GatewayUnderTest:
    return make_gateway(tmp_path)


def age_days(tgw: GatewayUnderTest, rec_id: str, days: int) -> None:
    then = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="milliseconds")
    tgw.open().index.update_recording(rec_id, started_at=then.replace("+00:00", "Z"))


def test_retention_deletes_expired_but_not_held(tgw: GatewayUnderTest, capsys) -> None:
    old, old_held, fresh = tgw.record(1), tgw.record(1), tgw.record(1)
    age_days(tgw, old, 100)
    age_days(tgw, old_held, 100)
    assert tgw.run("hold", "add", old_held, "--reason", "complaint 2026-17") == 0
    capsys.readouterr()
    assert tgw.run("retention", "run", "--dry-run") == 0
    assert f"would delete {old}" in capsys.readouterr().out
    gw = tgw.open()
    assert gw.index.get_recording(old).status == RecordingStatus.COMPLETE  # a dry run deletes nothing
    assert tgw.run("retention", "run") == 0
    out = capsys.readouterr().out
    assert f"deleted {old}" in out and f"kept {old_held}: on legal hold" in out
    assert gw.index.get_recording(old).status == RecordingStatus.DELETED
    assert not gw.store.exists(gw.index.get_recording(old).object_name)
    for kept in (old_held, fresh):
        assert gw.index.get_recording(kept).status == RecordingStatus.COMPLETE
    actions = [(e.action, e.subject) for e in gw.index.audit_entries()]
    assert ("recording.deleted", old) in actions and ("hold.added", old_held) in actions
    # Released, the held one goes on the next run.
    assert tgw.run("hold", "remove", old_held, "--reason", "complaint closed") == 0
    assert tgw.run("retention", "run") == 0
    assert gw.index.get_recording(old_held).status == RecordingStatus.DELETED


def test_hold_errors(tgw: GatewayUnderTest, capsys) -> None:
    rec = tgw.record(1)
    age_days(tgw, rec, 100)
    tgw.run("retention", "run")
    capsys.readouterr()
    assert tgw.run("hold", "add", rec, "--reason", "too late") == exitcodes.EXIT_NOT_FOUND
    assert "was deleted" in capsys.readouterr().err
    assert tgw.run("hold", "add", "nosuchid", "--reason", "x") == exitcodes.EXIT_NOT_FOUND
    assert (
        tgw.run("hold", "add", "--number", "+1555", "-i", str(tgw.key), "--reason", "x")
        == exitcodes.EXIT_NOT_FOUND
    )
    capsys.readouterr()
    assert tgw.run("hold", "add", "--number", "+1555", "--reason", "x") == exitcodes.EXIT_FINDINGS
    assert "needs --identity" in capsys.readouterr().err


def test_subject_find_export_and_erase_with_a_hold(tgw: GatewayUnderTest, tmp_path: Path, capsys) -> None:
    a1 = tgw.record(1, number=ANNA)
    a2 = tgw.record(2, number="+46701234567")  # the same number, written differently
    b1 = tgw.record(1, number=BERTIL)
    key = str(tgw.key)
    capsys.readouterr()
    assert tgw.run("subject", "find", "--number", ANNA, "-i", key, "--json") == 0
    io = capsys.readouterr()
    found = json.loads(io.out)
    assert sorted(r["id"] for r in found["recordings"]) == sorted([a1, a2])
    assert "searched for +46701234567: 3 stored number(s) checked" in io.err
    # Access request: her recordings decrypted, with their receipts.
    out = tmp_path / "request"
    assert tgw.run("subject", "export", "--number", ANNA, "-i", key, "-o", str(out)) == 0
    files = sorted(p.name for p in out.iterdir())
    assert (
        len([f for f in files if f.startswith("recording-")]) == 2
        and len([f for f in files if f.endswith(".json")]) == 2
    )
    with wave.open(str(out / f"recording-{a1}.wav")) as w:
        s = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert abs(dominant_frequency(s[0::2]) - 440) < 5
    # Erasure with one recording held.
    assert tgw.run("hold", "add", a2, "--reason", "police request") == 0
    capsys.readouterr()
    assert tgw.run("subject", "erase", "--number", ANNA, "-i", key) == 0
    out_text = capsys.readouterr().out
    assert "deleted 1 recording(s)" in out_text and f"kept {a2}: on legal hold" in out_text
    gw = tgw.open()
    assert gw.index.get_recording(a1).status == RecordingStatus.DELETED
    assert (
        gw.index.get_recording(a2).status == RecordingStatus.COMPLETE
        and gw.index.get_recording(b1).status == RecordingStatus.COMPLETE
    )
    # Her number is forgotten where nothing is held; the held call can still be found.
    assert tgw.run("subject", "find", "--number", ANNA, "-i", key, "--json") == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)["recordings"]] == [a2]
    # The audit log names each request by a random id, never by the number or anything derived from it.
    entries = gw.index.audit_entries()
    log = json.dumps([e.__dict__ for e in entries])
    assert "4670123" not in log and "subject.erased" in log and "subject.exported" in log
    subjects = {e.subject for e in entries if e.action.startswith("subject.")}
    assert subjects and all(re.fullmatch(r"request:[0-9a-f]{16}", x) for x in subjects)
    assert tgw.run("subject", "find", "--number", "+1 555 0000", "-i", key) == exitcodes.EXIT_NOT_FOUND


def test_the_index_holds_no_number_and_no_key_that_could_find_one(tgw: GatewayUnderTest) -> None:
    """A stolen data directory gives nothing to test a guessed number against: the number is
    only age-encrypted, and no hash or lookup key exists."""
    tgw.record(1, number=ANNA)
    assert not (tgw.dir / "secrets" / "lookup.key").exists()
    db = sqlite3.connect(tgw.dir / "index.sqlite3")
    assert [r[1] for r in db.execute("PRAGMA table_info(calls)")] == [
        "id",
        "started_at",
        "ended_at",
        "route",
        "caller_enc",
        "kind",
        "parties_enc",  # a SIPREC session's participants, age-encrypted like the number
        "siprec",  # a SIPREC client's identifiers (tests/test_siprec.py: nothing personal)
        "tenant",  # the data controller's name (config/tenants.py)
    ]
    raw = (tgw.dir / "index.sqlite3").read_bytes()
    # Whole forms of the number only: four digits turn up by chance in the hex of hashes and ids.
    for form in (b"46701234567", b"701234567", b"70 123 45 67", b"+46"):
        assert form not in raw, form


def test_national_numbers_need_a_country_code_and_match_international_ones(
    tgw: GatewayUnderTest, capsys
) -> None:
    intl = tgw.record(1, number="+46701234567")
    national = tgw.record(1, number="0701234567")  # a trunk that sends national numbers
    key = str(tgw.key)
    capsys.readouterr()
    # Without a country code a national number is ambiguous: refused, never a wrong "no data".
    assert tgw.run("subject", "find", "--number", "070-123 45 67", "-i", key) == exitcodes.EXIT_FINDINGS
    assert "not in international form" in capsys.readouterr().err
    cfg = tgw.config.read_text().replace('country_code = ""', 'country_code = "46"')
    tgw.config.write_text(cfg)
    for given in ("070-123 45 67", "+46 70 123 45 67", "0046701234567"):
        assert tgw.run("subject", "find", "--number", given, "-i", key, "--json") == 0
        io = capsys.readouterr()
        assert sorted(r["id"] for r in json.loads(io.out)["recordings"]) == sorted([intl, national]), given
        assert "searched for +46701234567" in io.err
    assert tgw.run("subject", "find", "--number", "anonymous", "-i", key) == exitcodes.EXIT_FINDINGS


def test_subject_requests_warn_when_the_identity_opens_only_some_numbers(
    tgw: GatewayUnderTest, tmp_path: Path, capsys
) -> None:
    tgw.record(1, number=ANNA)
    other = tmp_path / "other.txt"
    subprocess.run(["age-keygen", "-o", str(other)], check=True, capture_output=True)
    capsys.readouterr()
    assert tgw.run("subject", "find", "--number", ANNA, "-i", str(other)) == exitcodes.EXIT_NOT_FOUND
    assert "1 stored number(s) are not encrypted to this identity" in capsys.readouterr().err


def test_parallel_search_finds_the_same_calls(tgw: GatewayUnderTest) -> None:
    from gateway.config import NumbersConfig
    from gateway.governance import subject
    from gateway.storage import pii

    gw = tgw.open()
    recipients = gw.config.recording.recipients
    sealed = {n: pii.seal_value(n, recipients) for n in ("+46701234567", "+46702222222", "0701234567")}
    for i in range(3 * subject.PARALLEL_FROM // 2):
        number = list(sealed)[i % 3]
        gw.index.add_call(CallRow(f"c{i:06d}", utcnow(), caller_enc=sealed[number]))
    identities = age.load_identity_file(tgw.key)
    numbering = NumbersConfig(country_code="46")
    one = subject.matching_calls(gw.index, identities, "+46701234567", numbering, processes=1)
    two = subject.matching_calls(gw.index, identities, "+46701234567", numbering, processes=2)
    assert sorted(one[0]) == sorted(two[0]) and one[1:] == two[1:] == (3 * subject.PARALLEL_FROM // 2, 0)
    assert len(one[0]) == 2 * (subject.PARALLEL_FROM // 2)


def test_subject_export_never_overwrites_and_leaves_no_partial_plaintext(
    tgw: GatewayUnderTest, tmp_path: Path, capsys
) -> None:
    a1 = tgw.record(3, number=ANNA)
    tgw.record(3, number=ANNA)
    key = str(tgw.key)
    # A directory with something in it, or one others can enter, is refused.
    busy = tmp_path / "busy"
    busy.mkdir(mode=0o700)
    (busy / "notes.txt").write_text("mine")
    assert (
        tgw.run("subject", "export", "--number", ANNA, "-i", key, "-o", str(busy)) == exitcodes.EXIT_FINDINGS
    )
    assert "not empty" in capsys.readouterr().err and (busy / "notes.txt").read_text() == "mine"
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    assert (
        tgw.run("subject", "export", "--number", ANNA, "-i", key, "-o", str(shared))
        == exitcodes.EXIT_FINDINGS
    )
    assert "not a private directory" in capsys.readouterr().err
    # A tampered chunk in the second recording: the export fails, and nothing is left behind.
    gw = tgw.open()
    second = [r for r in gw.index.list_recordings() if r.id != a1][0]
    obj = gw.config.paths.spool_dir / second.object_name
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 1
    obj.write_bytes(bytes(data))
    out = tmp_path / "request"
    assert tgw.run("subject", "export", "--number", ANNA, "-i", key, "-o", str(out)) == exitcodes.EXIT_CORRUPT
    assert list(out.iterdir()) == []
    actions = [e.action for e in gw.index.audit_entries()]
    assert "subject.export_failed" in actions and "subject.exported" not in actions


def test_signatures_verify_without_a_key_and_catch_tampering(tgw: GatewayUnderTest, capsys) -> None:
    a, b, c = tgw.record(1, number=ANNA), tgw.record(1, number=BERTIL), tgw.record(1)
    assert tgw.run("recordings", "verify") == 0
    db = sqlite3.connect(tgw.dir / "index.sqlite3")
    db.execute("UPDATE recordings SET duration_s = duration_s + 60 WHERE id=?", (a,))
    call_b = db.execute("SELECT call_id FROM recordings WHERE id=?", (b,)).fetchone()[0]
    db.execute(
        "UPDATE consent_receipts SET receipt=? WHERE call_id=?",
        (json.dumps({"call_id": call_b, "decision": "declined", "digits": []}), call_b),
    )
    db.execute("UPDATE recordings SET signature=NULL WHERE id=?", (c,))
    db.commit()
    capsys.readouterr()
    assert tgw.run("recordings", "verify") == exitcodes.EXIT_FINDINGS
    out = capsys.readouterr().out
    assert f"{a}: signature does not match" in out and f"{b}: signature does not match" in out
    assert f"{c}: unsigned" in out


def test_exposure_scan_is_clean_then_finds_what_was_planted(
    tgw: GatewayUnderTest, tmp_path: Path, capsys
) -> None:
    from gateway.recording import wav

    tgw.record(1)
    temp = tmp_path / "tmp"
    temp.mkdir()
    assert tgw.run("audit", "--temp-dir", str(temp)) == 0, capsys.readouterr().out
    # Plant: a plaintext WAV in the data dir and in temp, a 0644 key, an identity on the gateway,
    # a non-age file in the store, an expired recording, and an edited audit entry.
    (tgw.dir / "leftover.wav").write_bytes(wav.header(8000, 1, data_size=8) + bytes(8))
    (temp / "tmpa1b2.wav").write_bytes(wav.header(8000, 1, data_size=8) + bytes(8))
    (tgw.dir / "secrets" / "signing.key").chmod(0o644)
    (tgw.dir / "operator-key.txt").write_bytes(tgw.key.read_bytes())
    (tgw.dir / "spool" / ("ab" * 16 + ".age")).write_bytes(b"RIFF....WAVE")
    old = tgw.record(1)
    age_days(tgw, old, 100)
    db = sqlite3.connect(tgw.dir / "index.sqlite3")
    db.execute("UPDATE audit SET actor='nobody' WHERE seq=2")
    db.commit()
    capsys.readouterr()
    assert tgw.run("audit", "scan", "--json", "--temp-dir", str(temp)) == exitcodes.EXIT_FINDINGS
    found = json.loads(capsys.readouterr().out)["findings"]
    kinds = {(f["kind"], Path(f["where"]).name if "/" in f["where"] else f["where"]) for f in found}
    for expected in [
        ("plaintext-audio", "leftover.wav"),
        ("plaintext-audio", "tmpa1b2.wav"),
        ("key-exposed", "signing.key"),
        ("identity-on-gateway", "operator-key.txt"),
        ("not-ciphertext", "ab" * 16 + ".age"),
        ("past-retention", old),
        ("audit-chain", "audit entry #2"),
    ]:
        assert expected in kinds, (expected, kinds)
    assert all(f["fix"] for f in found)


def test_running_gateway_applies_retention_on_its_own(tmp_path: Path) -> None:
    import time

    from tests.calls import CallLab

    lab = CallLab(tmp_path)
    try:
        old = lab.gw.record(1)
        age_days(lab.gw, old, 100)
        lab.start_gateway()
        gw = lab.gw.open()
        deadline = time.monotonic() + 15

        def audited() -> bool:  # the row changes first, the audit entry follows it
            return ("recording.deleted", "retention") in [
                (e.action, e.actor) for e in gw.index.audit_entries()
            ]

        while (
            not (gw.index.get_recording(old).status == RecordingStatus.DELETED and audited())
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        assert gw.index.get_recording(old).status == RecordingStatus.DELETED
        assert ("recording.deleted", "retention") in [(e.action, e.actor) for e in gw.index.audit_entries()]
    finally:
        lab.close()


def test_exposure_scan_keeps_to_what_the_gateway_owns(
    tgw: GatewayUnderTest, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default the temp directory is searched only for the gateway user's own files, and the
    configured prompt sets (the notice every caller hears) are not reported as leaks."""
    import os
    import tempfile

    from gateway.recording import wav

    systmp = tmp_path / "systmp"
    systmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(systmp))
    monkeypatch.setattr(tempfile, "tempdir", None)
    silent = wav.header(8000, 1, data_size=8) + bytes(8)
    (systmp / "someone-elses.wav").write_bytes(silent)
    os.chown(systmp / "someone-elses.wav", 65534, 65534)
    prompts = tgw.dir / "prompts"
    prompts.mkdir()
    (prompts / "notice.wav").write_bytes(silent)
    tgw.config.write_text(tgw.config.read_text().replace('dir = ""', f'dir = "{prompts}"', 1))
    capsys.readouterr()
    assert tgw.run("audit", "--json") == 0, capsys.readouterr().out
    capsys.readouterr()
    (systmp / "tmp-gateway.wav").write_bytes(silent)  # the gateway user's: a leak
    assert tgw.run("audit", "--json") == exitcodes.EXIT_FINDINGS
    found = json.loads(capsys.readouterr().out)["findings"]
    assert [Path(f["where"]).name for f in found] == ["tmp-gateway.wav"]


def test_every_participant_of_a_siprec_session_is_found_exported_and_erased(
    tgw: GatewayUnderTest, tmp_path: Path, capsys
) -> None:
    """A recording session's participants are looked up like callers: by the operator's
    identity, in E.164 form, and forgotten by erasure."""
    from gateway.storage.rows import CallRow, utcnow

    gw = tgw.open()
    recipients = gw.config.recording.recipients
    parties: list[dict[str, object]] = [
        {"id": "p1", "number": "+46701234567", "aor": "sip:+46701234567@sbc", "name": "Anna", "role": "caller",
         "labels": ["96"]},
        {"id": "p2", "number": "+46812345678", "aor": "sip:+46812345678@sbc", "name": "Agent 7",
         "role": "helpline", "labels": ["97"]},
    ]  # fmt: skip
    gw.index.add_call(
        CallRow(
            "sess-1",
            utcnow(),
            route="116117",
            caller_enc=pii.seal_value("+46701234567", recipients),
            kind="siprec",
            parties_enc=pii.seal_parties(parties, recipients),
            siprec='{"sessions": {}}',
        )
    )
    gw.index.put_consent_receipt("sess-1", {"call_id": "sess-1", "decision": "granted", "digits": []})
    gw.close()
    rec = tgw.record(1, call_id="sess-1")
    key = str(tgw.key)
    capsys.readouterr()
    for number in ("+46701234567", "+46812345678"):  # the caller, and the agent
        assert tgw.run("subject", "find", "--number", number, "-i", key, "--json") == 0
        assert [r["id"] for r in json.loads(capsys.readouterr().out)["recordings"]] == [rec]
    out = tmp_path / "request"
    assert tgw.run("subject", "export", "--number", "+46812345678", "-i", key, "-o", str(out)) == 0
    exported = json.loads((out / "call-sess-1.json").read_text())
    assert exported["kind"] == "siprec" and [p["name"] for p in exported["participants"]] == [
        "Anna",
        "Agent 7",
    ]
    assert tgw.run("subject", "erase", "--number", "+46812345678", "-i", key) == 0
    capsys.readouterr()
    call = tgw.open().index.get_call("sess-1")
    assert call.caller_enc is None and call.parties_enc is None
    assert tgw.run("subject", "find", "--number", "+46701234567", "-i", key) == exitcodes.EXIT_NOT_FOUND
