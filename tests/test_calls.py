"""Calls through a real `gateway run`, with pjsua2 peer processes as caller and PBX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gateway import age
from gateway.storage.rows import RecordingRow, RecordingStatus
from tests.audio import dominant_frequency, split_channels
from tests.calls import CallLab
from tests.tlscerts import TestCA

pytestmark = pytest.mark.slow


def decrypt(lab: CallLab, rec: RecordingRow) -> tuple[np.ndarray, np.ndarray]:
    gw = lab.gw.open()
    with gw.store.open(rec.object_name) as f:
        plain = age.AgeReader(f, age.load_identity_file(lab.gw.key)).read_all()
    return split_channels(plain[44:])


def finish(lab: CallLab) -> None:
    lab.stop_gateway()


@pytest.mark.parametrize("bridge_ms", [40, 20], ids=["bridge-40ms", "bridge-20ms"])
def test_consenting_call_is_recorded_with_both_parties_on_their_channels(
    lab: CallLab, bridge_ms: int
) -> None:
    lab.gw.set("calls", "bridge_ptime_ms", bridge_ms)
    lab.start_gateway()
    assert lab.gateway is not None
    limits = Path(f"/proc/{lab.gateway.proc.pid}/limits").read_text()
    assert [line.split()[4:6] for line in limits.splitlines() if line.startswith("Max core file size")] == [
        ["0", "0"]
    ]
    pbx = lab.peer("pbx", "--tone", "1000")
    caller = lab.peer(
        "caller", "--tone", "440", "--hangup-after", "7", "--number", "+46701234567", "--display", "Anna"
    )
    caller.wait_exit()
    pbx.wait_exit()
    finish(lab)
    # Logs are JSON lines and never carry the caller's number.
    assert lab.gateway is not None
    assert all(
        line.startswith("{") for line in lab.gateway.stderr_lines if " gateway." in line or '"logger"' in line
    )
    assert not any("46701234567" in line for line in lab.gateway.stderr_lines + lab.gateway.lines)
    incoming = pbx.event("incoming")
    assert incoming is not None
    h = incoming["headers"]
    assert h["x-recording-consent"] == "granted"
    assert "Anna" in h["from"] and "+46701234567" in h["from"] and "+46701234567" in h["p-asserted-identity"]
    bridged_s = pbx.event("disconnected")["connected_s"]
    gw = lab.gw.open()
    [rec] = gw.index.list_recordings()
    assert rec.status == RecordingStatus.COMPLETE
    left, right = decrypt(lab, rec)
    assert abs(dominant_frequency(left) - 440) < 5 and abs(dominant_frequency(right) - 1000) < 5
    assert abs(len(left) / 8000 - bridged_s) <= 0.05 * bridged_s
    receipt = gw.index.get_consent_receipt(rec.call_id)
    assert receipt["decision"] == "granted" and receipt["reason"] == "no decline key before the deadline"
    assert receipt["prompt"]["id"] == "notice-opt-out" and receipt["prompt"]["played_ms"] == 1500
    assert receipt["ended_at"] is not None
    # What the recordings list shows and filters on, from the receipt and the config.
    assert (rec.consent, rec.language) == ("silence", receipt["language"]["code"])
    actions = [e.action for e in gw.index.audit_entries()]
    assert "consent.decided" in actions and "recording.complete" in actions
    # The audit entry says how much of the recording is silence put in for audio that never
    # came, and how much audio came and was not kept: next to nothing on a clean call.
    [done] = [e for e in gw.index.audit_entries() if e.action == "recording.complete"]
    assert done.details["silence_filled_s"] < 0.5 and done.details["audio_dropped_s"] < 0.5, done.details


@pytest.mark.parametrize("info", [False, True], ids=["rfc2833", "sip-info"])
def test_decline_key_means_no_recording_and_the_pbx_is_told(lab: CallLab, info: bool) -> None:
    lab.start_gateway()
    pbx = lab.peer("pbx", "--tone", "1000")
    args = ["--tone", "440", "--digits", "9@0.6", "--hangup-after", "5"] + (["--info"] if info else [])
    caller = lab.peer("caller", *args)
    caller.wait_exit()
    pbx.wait_exit()
    finish(lab)
    assert pbx.event("incoming")["headers"]["x-recording-consent"] == "declined"
    assert pbx.event("confirmed") is not None, "the declined call was still put through"
    gw = lab.gw.open()
    assert gw.index.list_recordings() == []
    assert list((lab.gw.dir / "spool").iterdir()) == []
    [call_id] = [e.subject for e in gw.index.audit_entries() if e.action == "consent.decided"]
    receipt = gw.index.get_consent_receipt(call_id)
    assert receipt["decision"] == "declined" and receipt["reason"] == "decline key"
    [digit] = receipt["digits"]
    assert digit["digit"] == "9" and digit["effect"] == "decline" and 0.5 < digit["t"] < 1.5
    assert 300 < receipt["prompt"]["played_ms"] < 1500  # heard until the key, then cut short


def test_caller_hangs_up_during_the_notice(lab: CallLab) -> None:
    lab.start_gateway()
    pbx = lab.peer("pbx", "--tone", "1000", "--timeout", "6")
    caller = lab.peer("caller", "--hangup-after", "0.5")
    caller.wait_exit()
    pbx.wait_exit()
    finish(lab)
    assert pbx.event("incoming") is None
    gw = lab.gw.open()
    rows = gw.index._q("SELECT id FROM calls").fetchall()
    receipt = gw.index.get_consent_receipt(rows[0][0])
    assert receipt["state"] == "abandoned" and receipt["decision"] is None
    assert 200 < receipt["prompt"]["played_ms"] < 1200, "the receipt says how much of the notice was heard"


def test_pbx_busy_plays_unavailable_and_ends_the_call(lab: CallLab) -> None:
    lab.start_gateway()
    pbx = lab.peer("pbx", "--code", "486", "--timeout", "10")
    caller = lab.peer("caller", "--timeout", "15")
    caller.wait_exit()
    pbx.wait_exit()
    finish(lab)
    gone = caller.event("disconnected")
    assert gone is not None and gone["connected_s"] > 2.5 + 0.5  # notice + grace + the message
    gw = lab.gw.open()
    assert gw.index.list_recordings() == []


def test_withdrawal_mid_call_discards_the_recording_and_the_call_goes_on(lab: CallLab) -> None:
    lab.start_gateway()
    pbx = lab.peer("pbx", "--tone", "1000")
    caller = lab.peer("caller", "--digits", "*@5.0,9@5.3", "--hangup-after", "8")
    caller.wait_exit()
    pbx.wait_exit()
    finish(lab)
    relayed = [e["digit"] for e in pbx.events() if e["event"] == "digit"]
    assert relayed == ["*", "9"], "caller digits are relayed to the PBX"
    assert pbx.event("disconnected")["connected_s"] > 4.0, "the call went on after withdrawal"
    gw = lab.gw.open()
    [rec] = gw.index.list_recordings()
    assert rec.status == RecordingStatus.DISCARDED and rec.bytes == 0
    assert list((lab.gw.dir / "spool").iterdir()) == []
    receipt = gw.index.get_consent_receipt(rec.call_id)
    assert receipt["state"] == "withdrawn" and receipt["withdrawn_after_s"] > 5
    assert rec.consent == "withdrawn"
    actions = [e.action for e in gw.index.audit_entries()]
    assert "consent.withdrawn" in actions and "recording.discarded" in actions


def test_helpline_pause_and_resume(lab: CallLab) -> None:
    lab.start_gateway()
    pbx = lab.peer("pbx", "--tone", "1000", "--digits", "*@1.0,1@1.2,*@3.0,2@3.2")
    caller = lab.peer("caller", "--hangup-after", "8")
    caller.wait_exit()
    pbx.wait_exit()
    finish(lab)
    gw = lab.gw.open()
    [rec] = gw.index.list_recordings()
    left, right = decrypt(lab, rec)
    rms = [
        float(np.sqrt((left[i * 800 : (i + 1) * 800].astype(float) ** 2).mean()))
        for i in range(len(left) // 800)
    ]
    silent = [i / 10 for i, r in enumerate(rms) if r < 100]
    assert 1.0 <= len(silent) / 10 <= 2.6, f"about 2 s of pause expected, got {len(silent) / 10} s"
    assert 0.8 < silent[0] < 2.0
    actions = [e.action for e in gw.index.audit_entries()]
    assert "recording.paused" in actions and "recording.resumed" in actions


def test_two_calls_at_once_and_a_third_is_refused(lab: CallLab) -> None:
    lab.start_gateway()
    pbx = lab.peer("pbx", "--tone", "1000", "--calls", "2", "--timeout", "30")
    first = lab.peer("caller", "--hangup-after", "7", "--timeout", "25")
    first.wait_for(lambda: first.event("confirmed"))
    second = lab.peer("caller", "--hangup-after", "5", "--timeout", "25")
    second.wait_for(lambda: second.event("confirmed"))
    third = lab.peer("caller", "--timeout", "10")
    assert third.wait_for(lambda: third.event("disconnected"))["code"] == 486  # the worker is full
    for p in (first, second, third, pbx):
        p.wait_exit()
    finish(lab)
    gw = lab.gw.open()
    recs = gw.index.list_recordings()
    assert len(recs) == 2 and {r.status for r in recs} == {RecordingStatus.COMPLETE}
    for rec in recs:
        left, right = decrypt(lab, rec)
        assert abs(dominant_frequency(left) - 440) < 5 and abs(dominant_frequency(right) - 1000) < 5


def test_hold_passes_through_and_the_taps_survive_the_reinvite(lab: CallLab) -> None:
    lab.start_gateway()
    pbx = lab.peer("pbx", "--tone", "1000")
    caller = lab.peer("caller", "--hold-at", "4", "--unhold-at", "6", "--hangup-after", "10")
    caller.wait_exit()
    pbx.wait_exit()
    finish(lab)
    import pjsua2 as pj

    statuses = [e["status"] for e in pbx.events() if e["event"] == "media"]
    assert pj.PJSUA_CALL_MEDIA_REMOTE_HOLD in statuses, "the PBX saw the caller's hold"
    assert statuses[-1] == pj.PJSUA_CALL_MEDIA_ACTIVE, "and the unhold"
    gw = lab.gw.open()
    [rec] = gw.index.list_recordings()
    left, right = decrypt(lab, rec)
    # Recording started at about 2.5 s; the last two seconds come after both re-INVITEs.
    tail = slice(len(left) - 2 * 8000, len(left) - 4000)
    assert abs(dominant_frequency(left[tail]) - 440) < 5 and abs(dominant_frequency(right[tail]) - 1000) < 5


def test_maximum_call_duration(tmp_path: Path) -> None:
    lab = CallLab(tmp_path)
    lab.gw.config.write_text(
        lab.gw.config.read_text().replace("max_duration_s = 14400", "max_duration_s = 5")
    )
    try:
        lab.start_gateway()
        pbx = lab.peer("pbx", "--tone", "1000")
        caller = lab.peer("caller", "--timeout", "20")
        gone = caller.wait_for(lambda: caller.event("disconnected"), 15)
        assert 4.5 < gone["connected_s"] < 6.5
        pbx.wait_exit()
        assert pbx.event("disconnected") is not None
    finally:
        lab.close()


def test_call_over_tls(tmp_path: Path) -> None:
    from tests.calls import free_port

    cert, key = TestCA(tmp_path / "ca").issue("gateway")
    tls_port = free_port()
    lab = CallLab(tmp_path)
    text = lab.gw.config.read_text().replace('tls_listen = ""', f'tls_listen = "127.0.0.1:{tls_port}"')
    lab.gw.config.write_text(
        text.replace('tls_cert = ""', f'tls_cert = "{cert}"').replace('tls_key = ""', f'tls_key = "{key}"')
    )
    try:
        lab.start_gateway()
        pbx = lab.peer("pbx", "--tone", "1000")
        caller = lab.peer(
            "caller",
            "--tls",
            "--hangup-after",
            "5",
            "--target",
            f"sip:1177@127.0.0.1:{tls_port};transport=tls",
        )
        caller.wait_exit()
        pbx.wait_exit()
        assert caller.event("confirmed") is not None and pbx.event("confirmed") is not None
        assert len(lab.gw.open().index.list_recordings()) == 1
    finally:
        lab.close()


@pytest.mark.parametrize("key,recorded", [("1", True), (None, False)], ids=["accept-key", "silence"])
def test_opt_in_route(tmp_path: Path, key: str | None, recorded: bool) -> None:
    lab = CallLab(tmp_path, mode="opt-in")
    try:
        lab.start_gateway()
        pbx = lab.peer("pbx", "--tone", "1000")
        caller = lab.peer("caller", "--hangup-after", "6", *(["--digits", f"{key}@0.5"] if key else []))
        caller.wait_exit()
        pbx.wait_exit()
        finish(lab)
        consent = pbx.event("incoming")["headers"]["x-recording-consent"]
        assert consent == ("granted" if recorded else "declined")
        recs = lab.gw.open().index.list_recordings()
        assert len(recs) == (1 if recorded else 0)
        assert [r.consent for r in recs] == (["key"] if recorded else [])
    finally:
        lab.close()


@pytest.mark.parametrize("pbx_there", [True, False], ids=["rings-forever", "unreachable"])
def test_pbx_no_answer_or_unreachable_plays_the_message(tmp_path: Path, pbx_there: bool) -> None:
    lab = CallLab(tmp_path)
    lab.gw.config.write_text(lab.gw.config.read_text().replace("pbx_timeout_s = 30", "pbx_timeout_s = 3"))
    try:
        lab.start_gateway()
        pbx = lab.peer("pbx", "--code", "180", "--timeout", "12") if pbx_there else None
        caller = lab.peer("caller", "--timeout", "20")
        gone = caller.wait_for(lambda: caller.event("disconnected"), 20)
        # notice 1.5 s + grace 1 s + 3 s of ringing + the 0.6 s message
        assert 5.5 < gone["connected_s"] < 9
        if pbx is not None:
            pbx.wait_exit()
            assert pbx.event("incoming") is not None and pbx.event("disconnected")["code"] == 487
        finish(lab)
        assert lab.gw.open().index.list_recordings() == []
    finally:
        lab.close()
