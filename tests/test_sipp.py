"""sipp as caller (sip-tester's G.711 and RFC 2833 pcaps) and as PBX, against a real gateway."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from gateway import age
from gateway.storage.rows import RecordingStatus
from tests.audio import split_channels
from tests.calls import CallLab, Proc, free_port
from tests.conftest import require_tool

pytestmark = pytest.mark.slow
SCENARIOS = Path(__file__).parent / "sipp"
PCAPS = Path("/usr/share/sip-tester")


@pytest.fixture(autouse=True)
def _sipp() -> None:
    require_tool("sipp")


def stop_gateway(lab: CallLab) -> None:
    """Stop the gateway (which finalises every recording) before reading the index."""
    assert lab.gateway is not None and lab.gateway.stop() == 0


def sipp_caller(
    lab: CallLab,
    tmp: Path,
    payload: int,
    digit: str,
    hold_ms: int = 6000,
    scenario: str = "caller.xml",
    digit_pcap: Path | None = None,
    media_ip: str = "127.0.0.1",
) -> subprocess.CompletedProcess[str]:
    """Runs one sipp call; its SIP messages are traced to tmp/caller-messages.log. The caller
    plays `digit_pcap` (default: sip-tester's RFC 2833 pcap of `digit`) 300 ms after the ACK."""
    return subprocess.run(
        [
            "sipp",
            "-sf",
            str(SCENARIOS / scenario),
            "-trace_msg",
            "-message_file",
            str(tmp / "caller-messages.log"),
            "-key",
            "payload",
            str(payload),
            "-key",
            "audio_pcap",
            str(PCAPS / "g711a.pcap"),
            "-key",
            "digit_pcap",
            str(digit_pcap or PCAPS / f"dtmf_2833_{digit}.pcap"),
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-mi",
            media_ip,
            "-p",
            str(free_port()),
            "-mp",
            str(free_port()),
            "-d",
            str(hold_ms),
            "-nostdin",
            "-timeout",
            "60",
            "-timeout_error",
            f"127.0.0.1:{lab.sip_port}",
        ],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=90,
    )


def sipp_pbx(lab: CallLab, tmp: Path) -> tuple[Proc, Path]:
    log = tmp / "pbx.log"
    p = Proc(
        [
            "sipp",
            "-sf",
            str(SCENARIOS / "pbx.xml"),
            "-key",
            "audio_pcap",
            str(PCAPS / "g711a.pcap"),
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            str(lab.pbx_port),
            "-mp",
            str(free_port()),
            "-nostdin",
            "-timeout",
            "60",
            "-trace_logs",
            "-log_file",
            str(log),
        ]
    )
    lab.procs.append(p)
    return p, log


def test_sipp_caller_declines_with_an_rfc2833_pcap_and_sipp_pbx_is_told(lab: CallLab, tmp_path: Path) -> None:
    lab.start_gateway()
    pbx, log = sipp_pbx(lab, tmp_path)
    res = sipp_caller(lab, tmp_path, 8, "9")
    assert res.returncode == 0, res.stdout[-1500:] + res.stderr[-1500:]
    assert pbx.wait_exit() == 0
    assert "consent=declined" in log.read_text()
    stop_gateway(lab)
    gw = lab.gw.open()
    assert gw.index.list_recordings() == []
    [call_id] = [e.subject for e in gw.index.audit_entries() if e.action == "consent.decided"]
    receipt = gw.index.get_consent_receipt(call_id)
    assert receipt["digits"][0]["digit"] == "9" and receipt["decision"] == "declined"


def test_sipp_call_with_consent_records_both_pcap_streams(lab: CallLab, tmp_path: Path) -> None:
    lab.start_gateway()
    pbx, log = sipp_pbx(lab, tmp_path)
    res = sipp_caller(lab, tmp_path, 8, "5", hold_ms=9000)  # 5 is not a consent key: ignored
    assert res.returncode == 0, res.stdout[-1500:] + res.stderr[-1500:]
    assert pbx.wait_exit() == 0
    assert "consent=granted" in log.read_text()
    stop_gateway(lab)
    gw = lab.gw.open()
    [rec] = gw.index.list_recordings()
    assert rec.status == RecordingStatus.COMPLETE
    with gw.store.open(rec.object_name) as f:
        plain = age.AgeReader(f, age.load_identity_file(lab.gw.key)).read_all()
    left, right = split_channels(plain[44:])
    # Both sides sent the same g711a.pcap recording: each channel carries sound.
    assert float(np.abs(left.astype(float)).mean()) > 100 and float(np.abs(right.astype(float)).mean()) > 100
    [call_id] = [e.subject for e in gw.index.audit_entries() if e.action == "consent.decided"]
    receipt = gw.index.get_consent_receipt(call_id)
    assert receipt["digits"][0] == {
        "digit": "5",
        "t": receipt["digits"][0]["t"],
        "effect": "ignored",
        "via": "rfc4733",
    }


def test_no_common_codec_is_488(lab: CallLab, tmp_path: Path) -> None:
    lab.start_gateway()
    res = sipp_caller(lab, tmp_path, 18, "9")  # offers G.729 only
    assert res.returncode == 0, res.stdout[-1500:] + res.stderr[-1500:]
    assert "SIP/2.0 488" in (tmp_path / "caller-messages.log").read_text()


def test_caller_that_never_acks_rings_nobody(lab: CallLab, tmp_path: Path) -> None:
    lab.start_gateway()
    pbx = lab.peer("pbx", "--tone", "1000", "--timeout", "8")
    res = subprocess.run(
        [
            "sipp",
            "-sf",
            str(SCENARIOS / "no_ack.xml"),
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            str(free_port()),
            "-mp",
            str(free_port()),
            "-nostdin",
            "-timeout",
            "20",
            f"127.0.0.1:{lab.sip_port}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout[-1500:]
    pbx.wait_exit()
    assert pbx.event("incoming") is None, "the PBX must not ring for a caller who never ACKed"
    # The gateway goes on serving: a normal call right after is bridged and recorded.
    pbx2 = lab.peer("pbx", "--tone", "1000")
    caller = lab.peer("caller", "--hangup-after", "5")
    caller.wait_exit()
    pbx2.wait_exit()
    assert pbx2.event("confirmed") is not None


def test_invite_without_sdp_is_a_late_offer_and_works(lab: CallLab, tmp_path: Path) -> None:
    lab.start_gateway()
    pbx = lab.peer("pbx", "--tone", "1000")
    res = subprocess.run(
        [
            "sipp",
            "-sf",
            str(SCENARIOS / "late_offer.xml"),
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            str(free_port()),
            "-mp",
            str(free_port()),
            "-nostdin",
            "-timeout",
            "30",
            "-timeout_error",
            f"127.0.0.1:{lab.sip_port}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout[-1500:]
    pbx.wait_exit()
    assert pbx.event("incoming")["headers"]["x-recording-consent"] == "granted"
    stop_gateway(lab)
    [rec] = lab.gw.open().index.list_recordings()
    assert rec.status == RecordingStatus.COMPLETE


def test_callers_that_never_ack_free_their_slots_quickly(tmp_path: Path) -> None:
    """A burst of INVITEs whose answers are never ACKed held both of a worker's call slots for
    pjsip's Timer H (32 s): real calls meanwhile got 486 (or, in a node, failed open
    unrecorded). Unconfirmed calls now end after [calls] ack_timeout_s."""
    lab = CallLab(tmp_path)
    lab.gw.config.write_text(lab.gw.config.read_text().replace("ack_timeout_s = 8", "ack_timeout_s = 2"))
    try:
        lab.start_gateway()
        burst = subprocess.run(
            [
                "sipp",
                "-sf",
                str(SCENARIOS / "no_ack.xml"),
                "-m",
                "2",
                "-r",
                "10",
                "-i",
                "127.0.0.1",
                "-p",
                str(free_port()),
                "-mp",
                str(free_port()),
                "-nostdin",
                "-timeout",
                "20",
                f"127.0.0.1:{lab.sip_port}",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        # Both answered, neither ACKed: 2 s later the gateway ended both with a BYE, which
        # sipp (still waiting out its pause) reports as unexpected.
        assert "unexpected BYE" in burst.stderr + burst.stdout, burst.stdout[-1500:]
        pbx = lab.peer("pbx", "--tone", "1000")
        caller = lab.peer("caller", "--hangup-after", "5", "--timeout", "25")
        caller.wait_exit(40)
        pbx.wait_exit()
        assert caller.event("confirmed") is not None, caller.lines[-5:]
        stop_gateway(lab)
        gw = lab.gw.open()
        assert [r.status for r in gw.index.list_recordings()] == [RecordingStatus.COMPLETE]
        unconfirmed = [json.loads(line) for line in lab.gateway.stderr_lines if "never confirmed" in line]
        assert len(unconfirmed) == 2
    finally:
        lab.close()


def test_a_caller_offering_ipv6_media_is_put_through_unrecorded(tmp_path: Path) -> None:
    """Issue 28.19: a dual-stack softphone calls over IPv4 with its media on IPv6. The workers'
    SIP stack has no IPv6 (the pjsua2 wheel is built without it), so the front door puts the
    call straight through to the PBX, flagged unrecorded, instead of the 488 that dropped it."""
    lab = CallLab(tmp_path, workers=1)
    try:
        lab.start_gateway()
        pbx, log = sipp_pbx(lab, tmp_path)
        res = sipp_caller(lab, tmp_path, 8, "5", hold_ms=3000, media_ip="::1")
        assert res.returncode == 0, res.stdout[-1500:] + res.stderr[-1500:]
        assert pbx.wait_exit() == 0
        assert "consent=unavailable" in log.read_text()
        messages = (tmp_path / "caller-messages.log").read_text()
        assert "SIP/2.0 200" in messages and "SIP/2.0 488" not in messages
        assert lab.node_status()["failopen"] == 1
        lab.stop_gateway()
        assert lab.gw.open().index.list_recordings() == []
    finally:
        lab.close()
