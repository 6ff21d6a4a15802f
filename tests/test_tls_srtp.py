"""Encrypted signalling and media (issue 13) through a real node: Kamailio with TLS in front,
pjsua2 workers behind it, pjsua2 callers and a pjsua2 PBX over TLS with SRTP, and tshark
watching the loopback interface."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import time
from pathlib import Path

import pytest
from cryptography import x509

from gateway.storage.rows import RecordingStatus
from gateway.telephony.net import free_port
from tests.audio import dominant_frequency
from tests.calls import CallLab, Proc
from tests.test_calls import decrypt, finish
from tests.tlscerts import TestCA
from tests.wire import Capture, read

pytestmark = pytest.mark.slow


class SecureLab:
    """A node (two workers) with TLS at its front door and a PBX reached over sips:."""

    def __init__(
        self,
        tmp: Path,
        caller_srtp: str,
        pbx_srtp: str = "mandatory",
        *,
        verify_clients: bool = False,
    ) -> None:
        self.ca = TestCA(tmp / "pki")
        self.cert, self.key = self.ca.issue("frontdoor")
        self.pbx_cert, self.pbx_key = self.ca.issue("pbx")
        self.lab = CallLab(tmp, workers=2)
        self.tls_port, self.pbx_tls_port = free_port(), free_port()
        gw = self.lab.gw
        gw.set("sip", "tls_listen", f"127.0.0.1:{self.tls_port}")
        gw.set("sip", "tls_cert", str(self.cert))
        gw.set("sip", "tls_key", str(self.key))
        gw.set("sip", "srtp", caller_srtp)
        if verify_clients:
            gw.set("sip", "tls_ca", str(self.ca.path))
            gw.set("sip", "tls_verify_clients", True)
        gw.set("pbx", "uri", f"sips:helpline@127.0.0.1:{self.pbx_tls_port}")
        gw.set("pbx", "srtp", pbx_srtp)
        gw.set("pbx", "tls_ca", str(self.ca.path))

    def pbx(self, *args: str, srtp: str = "mandatory") -> Proc:
        return self.lab.peer(
            "pbx",
            "--tls-port",
            str(self.pbx_tls_port),
            "--tls-cert",
            str(self.pbx_cert),
            "--tls-key",
            str(self.pbx_key),
            "--sips",
            "--srtp",
            srtp,
            *args,
        )

    def caller(self, srtp: str, *args: str, tls: bool = True) -> Proc:
        target = (
            f"sip:1177@127.0.0.1:{self.tls_port};transport=tls"
            if tls
            else f"sip:1177@127.0.0.1:{self.lab.sip_port}"
        )
        return self.lab.peer("caller", "--tls", "--srtp", srtp, "--target", target, *args)


def streams(p: Proc) -> list[str]:
    return [e["proto"] for e in p.events() if e["event"] == "stream"]


def refused(p: Proc) -> int | None:
    gone = p.event("disconnected")
    return None if gone is None or p.event("confirmed") is not None else gone["code"]


@pytest.mark.alone  # tshark captures all of lo
def test_tls_and_mandatory_srtp_leave_neither_sip_nor_the_tones_on_the_wire(tmp_path: Path) -> None:
    s = SecureLab(tmp_path, "mandatory")
    lab = s.lab
    try:
        lab.start_gateway()
        with Capture(tmp_path / "wire.pcap"):
            pbx = s.pbx("--tone", "1000")
            caller = s.caller("mandatory", "--tone", "440", "--hangup-after", "7")
            caller.wait_exit()
            pbx.wait_exit()
        assert streams(caller) == ["RTP/SAVP"] and streams(pbx) == ["RTP/SAVP"]
        wire = read(tmp_path / "wire.pcap")
        assert len(wire.payloads) > 200, "the capture saw the call's packets"
        assert wire.rtp, "RTP headers stay in clear under SRTP: the streams were captured"
        assert wire.sip_in_clear() == [], wire.sip_in_clear()[:1]
        assert not wire.carries_tone(440) and not wire.carries_tone(1000), wire.rtp_tones()

        # Mandatory means SRTP or nothing: a plain offer over TLS is refused by the worker,
        # and keys sent over UDP are refused at the front door, before any worker answers.
        plain = s.caller("off", "--timeout", "10")
        plain.wait_exit()
        keys_in_clear = s.caller("mandatory", "--keys-in-clear", "--timeout", "10", tls=False)
        keys_in_clear.wait_exit()
        assert refused(plain) == 488 and refused(keys_in_clear) == 488
        # The allowlist holds for TLS peers too: a source not on it gets 403 over TLS.
        stranger = s.caller("mandatory", "--bind", "127.0.0.9", "--timeout", "10")
        stranger.wait_exit()
        assert refused(stranger) == 403
        finish(lab)
        gw = lab.gw.open()
        [rec] = gw.index.list_recordings()
        assert rec.status == RecordingStatus.COMPLETE
        left, right = decrypt(lab, rec)
        assert abs(dominant_frequency(left) - 440) < 5 and abs(dominant_frequency(right) - 1000) < 5
    finally:
        lab.close()


@pytest.mark.alone  # tshark captures all of lo
def test_optional_srtp_takes_both_and_never_answers_keys_in_clear(tmp_path: Path) -> None:
    s = SecureLab(tmp_path, "optional")
    lab = s.lab
    try:
        lab.start_gateway()
        pbx = s.pbx("--tone", "1000", "--calls", "3", "--timeout", "90")
        secure = s.caller("mandatory", "--hangup-after", "5")
        secure.wait_exit()
        # A plain caller over UDP: the control for the wire checks of the test above, which
        # see both the SIP and the caller's tone in this capture.
        with Capture(tmp_path / "plain.pcap"):
            plain = s.caller("off", "--tone", "440", "--hangup-after", "6", tls=False)
            plain.wait_exit()
        # Best-effort SRTP offered over UDP (RTP/AVP with keys): the front door removes the
        # exposed keys and the call goes on in plain RTP, with no key of ours on that hop.
        with Capture(tmp_path / "careless.pcap"):
            careless = s.caller("optional", "--keys-in-clear", "--hangup-after", "5", tls=False)
            careless.wait_exit()
        pbx.wait_exit()
        assert streams(secure) == ["RTP/SAVP"]
        assert streams(plain) == ["RTP/AVP"] and streams(careless) == ["RTP/AVP"]
        control = read(tmp_path / "plain.pcap")
        assert control.sip_in_clear() and control.carries_tone(440), control.rtp_tones()
        careless_wire = read(tmp_path / "careless.pcap")
        answers = [
            p for p in careless_wire.sip_in_clear() if p.startswith(b"SIP/2.0 200") and b"m=audio" in p
        ]
        assert answers and not any(b"a=crypto" in p for p in answers)
        finish(lab)
        recs = lab.gw.open().index.list_recordings()
        assert len(recs) == 3 and all(r.status == RecordingStatus.COMPLETE for r in recs)
    finally:
        lab.close()


def presented_certificate(port: int) -> x509.Certificate:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with ctx.wrap_socket(sock) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_certificate_reload_on_sighup_keeps_the_call_and_client_certificates_are_checked(
    tmp_path: Path,
) -> None:
    s = SecureLab(tmp_path, "mandatory", verify_clients=True)
    lab = s.lab
    client_cert, client_key = s.ca.issue("trunk")
    try:
        lab.start_gateway()
        assert lab.gateway is not None
        pbx = s.pbx("--tone", "1000", "--calls", "1", "--timeout", "60")
        caller = s.caller(
            "mandatory", "--tls-cert", str(client_cert), "--tls-key", str(client_key), "--hangup-after", "12"
        )
        caller.wait_for(lambda: caller.event("confirmed"))
        pbx.wait_for(lambda: pbx.event("confirmed"), 15)
        before = presented_certificate(s.tls_port)
        # A certificate that does not load is refused, and the one in use stays.
        good = s.cert.read_bytes()
        s.cert.write_text("not a certificate\n")
        os.kill(lab.gateway.proc.pid, signal.SIGHUP)
        lab.gateway.wait_for(lambda: any("not reloaded" in line for line in lab.gateway.stderr_lines), 10)
        assert presented_certificate(s.tls_port).serial_number == before.serial_number
        # The renewed certificate is presented to new connections at once.
        s.cert.write_bytes(good)
        new_cert, new_key = s.ca.issue("frontdoor-renewed")
        s.cert.write_bytes(new_cert.read_bytes())
        s.key.write_bytes(new_key.read_bytes())
        os.kill(lab.gateway.proc.pid, signal.SIGHUP)
        lab.gateway.wait_for(
            lambda: any("TLS certificate reloaded" in line for line in lab.gateway.stderr_lines)
        )
        deadline = time.monotonic() + 10
        while presented_certificate(s.tls_port).serial_number == before.serial_number:
            assert time.monotonic() < deadline, "the renewed certificate was not presented"
            time.sleep(0.2)
        # A trunk without a client certificate gets no TLS session, so no call.
        anonymous = s.caller("mandatory", "--timeout", "10")
        anonymous.wait_exit()
        assert anonymous.event("confirmed") is None
        caller.wait_exit()
        pbx.wait_exit()
        gone = caller.event("disconnected")
        assert gone["code"] == 200 and gone["connected_s"] > 11.5, "the call outlived both reloads"
        finish(lab)
        [rec] = lab.gw.open().index.list_recordings()
        left, right = decrypt(lab, rec)
        assert abs(dominant_frequency(right) - 1000) < 5
    finally:
        lab.close()


def test_a_pbx_without_srtp_is_never_bridged_in_clear_when_the_helpline_leg_demands_it(
    tmp_path: Path,
) -> None:
    """[pbx] srtp = "mandatory" and a PBX that only speaks plain RTP: the PBX refuses the SRTP
    offer, the call is not bridged in clear, the caller hears the unavailable message and
    nothing is recorded."""
    s = SecureLab(tmp_path, "mandatory")
    lab = s.lab
    try:
        lab.start_gateway()
        pbx = s.pbx("--tone", "1000", "--timeout", "8", srtp="off")
        caller = s.caller("mandatory", "--timeout", "20")
        caller.wait_exit()
        pbx.wait_exit()
        assert pbx.event("confirmed") is None, "the PBX never got a call it could take"
        gone = caller.event("disconnected")
        # Notice (1.5 s), grace (1 s), then the unavailable message (0.6 s) before the hang-up.
        assert caller.event("confirmed") is not None and gone["connected_s"] > 1.5 + 1.0 + 0.5
        finish(lab)
        gw = lab.gw.open()
        assert gw.index.list_recordings() == []
        failed = [line for line in lab.gateway.stderr_lines if "dialling -> unavailable" in line]
        assert failed, "the call went to the unavailable message"
    finally:
        lab.close()
