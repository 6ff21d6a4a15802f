"""Keys sent as audio tones (in-band DTMF) through a real gateway: from pjsua2 callers and from
sipp playing pcaps of G.711 RTP made here. A caller who says no with tones only is not
recorded; speech and music never press a key; a key sent both as tones and as an event counts
once; a route that takes events only ignores tones."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from gateway.storage.rows import RecordingStatus
from simphone.phone import dtmf_tones
from tests.calls import CallLab
from tests.pcapgen import write_rtp_pcap
from tests.test_calls import finish
from tests.test_sipp import sipp_caller, sipp_pbx

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def only_receipt(lab: CallLab) -> dict:
    gw = lab.gw.open()
    [(call_id,)] = gw.index._q("SELECT id FROM calls").fetchall()
    return gw.index.get_consent_receipt(call_id)


def test_a_caller_who_declines_with_tones_only_is_not_recorded(lab: CallLab) -> None:
    caller, pbx = lab.one_call("--inband", "--digits", "9@0.6", "--hangup-after", "5")
    assert caller.event("sent_tones") is not None and caller.event("sent") is None, "tones, no event"
    assert pbx.event("incoming")["headers"]["x-recording-consent"] == "declined"
    assert lab.gw.open().index.list_recordings() == []
    assert list((lab.gw.dir / "spool").iterdir()) == []
    receipt = only_receipt(lab)
    assert receipt["decision"] == "declined" and receipt["reason"] == "decline key"
    [digit] = receipt["digits"]
    assert digit["digit"] == "9" and digit["via"] == "inband" and 0.5 < digit["t"] < 0.9


def test_withdrawal_with_tones_mid_call_discards_the_recording(lab: CallLab) -> None:
    caller, pbx = lab.one_call("--inband", "--digits", "*@5.0,9@5.4", "--hangup-after", "8")
    assert [e["digit"] for e in pbx.events() if e["event"] == "digit"] == [], (
        "tones are not relayed as events"
    )
    [rec] = lab.gw.open().index.list_recordings()
    assert rec.status == RecordingStatus.DISCARDED
    receipt = only_receipt(lab)
    assert receipt["state"] == "withdrawn" and receipt["digits"][-1]["via"] == "inband"


def test_a_key_sent_as_tones_and_as_an_event_counts_once(lab: CallLab) -> None:
    caller, pbx = lab.one_call("--both", "--digits", "5@0.5", "--hangup-after", "5")
    assert caller.event("sent_tones") is not None and caller.event("sent") is not None
    receipt = only_receipt(lab)
    assert [(d["digit"], d["effect"]) for d in receipt["digits"]] == [("5", "ignored")]
    assert receipt["decision"] == "granted"


def write_wav(path: Path, pcm: bytes) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm)
    return path


def music(seconds: float = 8.0) -> bytes:
    """Chords of the tempered scale with overtones, a new one every quarter second."""
    rng, t = np.random.default_rng(11), np.arange(2000) / 8000
    x = np.concatenate(
        [
            sum(
                a * np.sin(2 * np.pi * n * h * t)
                for n in 220 * 2 ** (rng.integers(0, 36, 3) / 12)
                for h, a in ((1, 1), (2, 0.5), (3, 0.3))
            )
            for _ in range(int(seconds * 4))
        ]
    )
    return (x / np.abs(x).max() * 16000).astype("<i2").tobytes()


@pytest.mark.parametrize("sound", ["speech", "music"])
def test_speech_and_music_never_press_a_key(lab: CallLab, tmp_path: Path, sound: str) -> None:
    """The caller talks (the shipped notice, synthetic speech) or plays music through the
    notice and the call, sends no event, and so is listened to for tones all along."""
    wav = (
        ROOT / "ivr_prompts" / "en" / "notice-opt-in.wav"
        if sound == "speech"
        else write_wav(tmp_path / "music.wav", music())
    )
    caller, pbx = lab.one_call("--wav", str(wav), "--hangup-after", "8")
    receipt = only_receipt(lab)
    assert receipt["digits"] == [] and receipt["decision"] == "granted"
    [rec] = lab.gw.open().index.list_recordings()
    assert rec.status == RecordingStatus.COMPLETE


def test_a_route_that_takes_events_only_ignores_tones(lab: CallLab) -> None:
    lab.gw.set("calls", "dtmf", "rfc4733")
    caller, pbx = lab.one_call("--inband", "--digits", "9@0.6", "--hangup-after", "5")
    receipt = only_receipt(lab)
    assert receipt["digits"] == [] and receipt["decision"] == "granted"


def test_sipp_pcap_with_tones_declines_and_a_pcap_of_speech_does_not(lab: CallLab, tmp_path: Path) -> None:
    """sipp plays G.711 RTP from pcaps made here: a '9' as tones then silence, and (second call)
    silence followed by sip-tester's own speech pcap."""
    lab.start_gateway()
    nine = write_rtp_pcap(tmp_path / "nine.pcap", dtmf_tones("9", 0.12, 8000) + bytes(8000))
    quiet = write_rtp_pcap(tmp_path / "quiet.pcap", bytes(8000))
    outcomes = []
    for pcap in (nine, quiet):
        pbx, _ = sipp_pbx(lab, tmp_path)
        res = sipp_caller(lab, tmp_path, 8, "", hold_ms=6000, digit_pcap=pcap)
        assert res.returncode == 0, res.stderr[-500:]
        pbx.wait_exit(30)
        outcomes.append(len(lab.gw.open().index.list_recordings()))
    finish(lab)
    assert outcomes == [0, 1], "the toned call was not recorded, the speech call was"
    gw = lab.gw.open()
    receipts = [
        gw.index.get_consent_receipt(r[0])
        for r in gw.index._q("SELECT id FROM calls ORDER BY rowid").fetchall()
    ]
    assert [d["via"] for d in receipts[0]["digits"]] == ["inband"] and receipts[0]["decision"] == "declined"
    assert receipts[1]["digits"] == [] and receipts[1]["decision"] == "granted"
