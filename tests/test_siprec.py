"""SIPREC recording server mode with real SIP: a pjsua2 recording client (simphone's siprec
role: two sendonly labelled streams and RFC 7865 metadata in a multipart INVITE) forking a
call to a real `gateway run`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from gateway import age
from gateway.storage import pii
from gateway.storage.rows import RecordingStatus
from gateway.telephony.net import free_port
from tests.audio import dominant_frequency
from tests.calls import CallLab
from tests.conftest import require_tool
from tests.tlscerts import TestCA

pytestmark = pytest.mark.slow

HELPLINE_ROUTE = '\n[[routes]]\nnumber = "116117"\nmode = "opt-out"\npbx = "sip:helpline@127.0.0.1:5070"\n'


def lab_for(tmp: Path, extra: str = "", clients: tuple[str, ...] = ("127.0.0.1",)) -> CallLab:
    """A gateway taking recording sessions from `clients`, with a 3 s key window."""
    lab = CallLab(tmp, extra=extra)
    lab.gw.set("siprec", "enabled", True)
    lab.gw.set("siprec", "clients", list(clients))
    lab.gw.set("siprec", "window_s", 3)
    return lab


def client(lab: CallLab, *args: str) -> dict[str, object]:
    """Run one recording session from the client to its end; its last events. The session goes
    to [sip] listen unless `args` give a --target."""
    target = () if "--target" in args else ("--target", f"sip:srs@{lab.host}:{lab.sip_port}")
    p = lab.peer("siprec", *target, "--timeout", "30", *args)
    p.wait_exit(40)
    gone = p.event("disconnected")
    assert gone is not None, p.lines[-5:]
    gone["contact"] = (p.event("answered") or {}).get("contact")
    assert lab.gateway is not None
    gone["gateway_log"] = [line for line in lab.gateway.stderr_lines if "recording session" in line][-3:]
    return gone


def test_forked_call_is_recorded_from_its_start_with_each_party_on_its_channel(tmp_path: Path) -> None:
    lab = lab_for(tmp_path)
    try:
        lab.start_gateway()
        # The caller (+46701234567) sends the second stream: the metadata says so, and the
        # helpline's number (116117, a route... here the "*" route, so by order of the streams
        # unless a route names it) decides the channels.
        gone = client(
            lab, "--tone", "440", "--tone2", "1000", "--number", "+46701234567", "--hangup-after", "6"
        )
        assert gone["code"] == 200, str(gone["gateway_log"])
        lab.stop_gateway()
        gw = lab.gw.open()
        [rec] = gw.index.list_recordings()
        assert rec.status == RecordingStatus.COMPLETE
        left, right = lab.decrypt(rec)
        assert abs(dominant_frequency(left) - 440) < 5 and abs(dominant_frequency(right) - 1000) < 5
        # Held in memory during the 3 s window, then written from the session's start.
        assert len(left) / 8000 >= 5.0, len(left) / 8000
        call = gw.index.get_call(rec.call_id)
        assert call.kind == "siprec"
        assert call.caller_enc is not None
        ident = age.load_identity_file(lab.gw.key)
        assert pii.open_value(call.caller_enc, ident) == "+46701234567"
        assert call.parties_enc is not None
        parties = json.loads(pii.open_value(call.parties_enc, ident) or "[]")
        assert {p["role"] for p in parties} == {"caller", "helpline"}
        summary = json.loads(call.siprec or "{}")
        assert summary["sessions"] and summary["channels"] == {"96": 0, "97": 1}
        assert "+46701234567" not in (call.siprec or "")
        receipt = gw.index.get_consent_receipt(rec.call_id)
        assert receipt["decision"] == "granted" and receipt["prompt"] is None
        assert receipt["siprec"]["decided_by"] == "window"
        assert receipt["siprec"]["notice"] == "played by the recording client"
        assert (rec.consent, rec.language) == ("window", None)
        assert lab.gateway is not None
        assert not any("46701234567" in line for line in lab.gateway.stderr_lines)
    finally:
        lab.close()


def test_the_helpline_number_in_the_metadata_says_which_stream_is_the_callers(tmp_path: Path) -> None:
    lab = lab_for(
        tmp_path, HELPLINE_ROUTE + '\n[[routes]]\nnumber = "*"\npbx = "sip:helpline@127.0.0.1:5070"\n'
    )
    try:
        lab.start_gateway()
        client(lab, "--tone", "440", "--tone2", "1000", "--caller-second", "--hangup-after", "5")
        lab.stop_gateway()
        gw = lab.gw.open()
        [rec] = gw.index.list_recordings()
        left, right = lab.decrypt(rec)
        assert abs(dominant_frequency(left) - 440) < 5 and abs(dominant_frequency(right) - 1000) < 5
        assert json.loads(gw.index.get_call(rec.call_id).siprec or "{}")["roles_by"] == "metadata"
        assert rec.route == "116117"
    finally:
        lab.close()


@pytest.mark.parametrize("how", ["key", "tones", "header"])
def test_a_refusal_stores_nothing(tmp_path: Path, how: str) -> None:
    lab = lab_for(tmp_path)
    try:
        lab.start_gateway()
        args = {
            "key": ["--digits", "9@1.0"],  # an RFC 4733 event in the caller's fork
            "tones": ["--digits", "9@1.0", "--inband"],  # the keypad's tones in its audio
            "header": ["--header", "X-Recording-Consent: declined"],
        }[how]
        gone = client(lab, "--hangup-after", "5", *args)
        assert gone["code"] == 200  # the session stayed up (on_refusal = "idle")
        lab.stop_gateway()
        gw = lab.gw.open()
        assert gw.index.list_recordings() == []
        assert not list((lab.gw.dir / "spool").rglob("*.age"))
        [call_id] = {c for c, _ in gw.index.encrypted_callers()}
        receipt = gw.index.get_consent_receipt(call_id)
        assert receipt["decision"] == "declined"
        assert receipt["siprec"]["decided_by"] == ("client-header" if how == "header" else "key")
        if how != "header":
            digit = receipt["digits"][0]
            assert digit["effect"] == "decline", receipt["digits"]
            assert digit["via"] == ("inband" if how == "tones" else "rfc4733")
    finally:
        lab.close()


@pytest.mark.parametrize(
    ("args", "code"),
    [(["--no-metadata"], 400), (["--labels", "96,"], 400)],
    ids=["no-metadata", "no-label"],
)
def test_what_cannot_be_recorded_is_refused_with_the_rfc_status(
    tmp_path: Path, args: list[str], code: int
) -> None:
    lab = lab_for(tmp_path)
    try:
        lab.start_gateway()
        gone = client(lab, *args)
        assert gone["code"] == code
        lab.stop_gateway()
        assert lab.gw.open().index.list_recordings() == []
    finally:
        lab.close()


def test_a_client_not_on_the_list_is_refused(tmp_path: Path) -> None:
    lab = lab_for(tmp_path, clients=("10.9.9.9",))
    try:
        lab.start_gateway()
        gone = client(lab)
        assert gone["code"] == 403
        lab.stop_gateway()
    finally:
        lab.close()


def _request(line: str, cseq: int, *, routed: bool) -> str:
    """An ACK or BYE of the scenario's dialog (`line`: method and Request-URI), as CDATA."""
    method = line.split()[0]
    routes = "[routes]\n" if routed else ""
    return f"""<![CDATA[
{line} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
{routes}From: <sip:src@127.0.0.1>;tag=[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: {cseq} {method}
Max-Forwards: 70
Content-Length: 0

]]>"""


def sipp_scenario(invite_file: Path | str, code: int) -> str:
    """A sipp scenario that sends one of tests/siprec/'s INVITEs (or that text) to the gateway,
    expects `code`, and ends the session (BYE) or acknowledges the refusal."""
    raw = invite_file.read_bytes().decode() if isinstance(invite_file, Path) else invite_file
    text = raw.replace("\r\n", "\n")
    text = text.replace("sip:recorder@127.0.0.1", "sip:srs@[remote_ip]:[remote_port]")
    text = text.replace("198.51.100.1", "[local_ip]")  # RTCP stays on loopback
    text = text.replace("Via: SIP/2.0/UDP 127.0.0.1:", "Via: SIP/2.0/[transport] [local_ip]:")
    if code == 200:  # answered: ACK it along the route set, hang up after 2 s
        tail = f"""
  <recv response="200" rtd="true" rrs="true"/>
  <send>{_request("ACK sip:srs@[remote_ip]:[remote_port]", 101, routed=True)}</send>
  <pause milliseconds="2000"/>
  <send retrans="500">{_request("BYE [next_url]", 102, routed=True)}</send>
  <recv response="200"/>"""
    else:  # refused: the ACK of a non-2xx answer, hop by hop
        tail = f"""
  <recv response="{code}"/>
  <send>{_request("ACK sip:srs@[remote_ip]:[remote_port]", 101, routed=False)}</send>"""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="siprec">
  <send retrans="500"><![CDATA[
{text}]]></send>
  <recv response="100" optional="true"/>{tail}
</scenario>
"""


RFC_EXAMPLES = [
    ("rfc7866.txt", 200),
    ("rfc8068.txt", 200),
    ("vendor.txt", 200),
    ("no-metadata.txt", 400),
    ("no-label.txt", 400),
    ("bad-metadata.txt", 400),
]


def test_rfc_and_vendor_invites_from_sipp_are_accepted_or_refused_as_the_rfcs_say(tmp_path: Path) -> None:
    require_tool("sipp")
    lab = lab_for(tmp_path)
    try:
        lab.start_gateway()
        for name, code in RFC_EXAMPLES:
            scenario = tmp_path / f"{name}.xml"
            scenario.write_text(sipp_scenario(Path(__file__).parent / "siprec" / name, code))
            done = subprocess.run(
                ["sipp", "-sf", str(scenario), "-m", "1", "-i", "127.0.0.1", "-p", str(free_port()), "-trace_msg",
                 "-nostdin", "-timeout", "30", "-timeout_error", f"127.0.0.1:{lab.sip_port}"],
                cwd=tmp_path, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert done.returncode == 0, (name, lab.gateway.stderr_lines[-8:] if lab.gateway else None)
        lab.stop_gateway()
        gw = lab.gw.open()
        calls = [gw.index.get_call(c) for c in dict.fromkeys(c for c, _ in gw.index.encrypted_callers())]
        assert [c.kind for c in calls] == ["siprec"] * 3  # the three accepted sessions
        receipts = [gw.index.get_consent_receipt(c.id) for c in calls]
        assert sorted(r["siprec"]["decided_by"] or "" for r in receipts) == ["", "", "client-header"]
        assert lab.gateway is not None
        refused = [line for line in lab.gateway.stderr_lines if "recording session refused" in line]
        assert len(refused) == 3, refused
    finally:
        lab.close()


def sipp_answer(tmp: Path, invite: str, code: int, target: int, source: str = "127.0.0.1") -> None:
    """Send `invite` (a tests/siprec/ text) from `source` to port `target` with sipp and check
    that the answer is `code`."""
    scenario = tmp / f"scenario-{free_port()}.xml"
    scenario.write_text(sipp_scenario(invite, code))
    done = subprocess.run(
        ["sipp", "-sf", str(scenario), "-m", "1", "-i", source, "-p", str(free_port()), "-nostdin",
         "-timeout", "20", "-timeout_error", f"127.0.0.1:{target}"],
        cwd=tmp, capture_output=True, text=True, timeout=40,
    )  # fmt: skip
    assert done.returncode == 0, (code, done.stdout[-1500:], done.stderr[-500:])


def offer_srtp(lab: CallLab, tmp: Path) -> None:
    """Caller-side SRTP optional, which needs TLS for signalling: a TLS port beside UDP/TCP."""
    ca = TestCA(tmp / "pki")
    cert, key = ca.issue("frontdoor")
    lab.gw.set("sip", "tls_listen", f"127.0.0.1:{free_port()}")
    lab.gw.set("sip", "tls_cert", str(cert))
    lab.gw.set("sip", "tls_key", str(key))
    lab.gw.set("sip", "srtp", "optional")


RFC7866 = (Path(__file__).parent / "siprec" / "rfc7866.txt").read_text()
KEYED = RFC7866.replace(
    "a=label:96\n", "a=label:96\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + "A" * 40 + "\n"
).replace(
    "RTP/AVP 0 8 101\na=rtpmap:101 telephone-event/8000\na=sendonly\na=label:96",
    "RTP/SAVP 0 8 101\na=rtpmap:101 telephone-event/8000\na=sendonly\na=label:96",
)


def test_only_listed_clients_open_sessions_whatever_their_headers_and_keys_never_cross_a_clear_hop(
    tmp_path: Path,
) -> None:
    """Issue 21.2 and 21.3 through a node: a trunk that splits `Require` over two headers, or
    puts `+sip.src` in a second Contact, is not a recording client; nor is a local process that
    sends straight to a worker (with or without a made-up front-door header); a listed client's
    SDES keys over UDP are refused, multipart body or not."""
    require_tool("sipp")
    lab = CallLab(tmp_path, workers=1)
    lab.gw.set("siprec", "enabled", True)
    lab.gw.set("siprec", "clients", ["127.0.0.9"])  # the trunk on 127.0.0.1 is no client
    lab.gw.set("siprec", "window_s", 1)
    offer_srtp(lab, tmp_path)
    try:
        lab.start_gateway()
        split_require = RFC7866.replace("Require: siprec\n", "Require: timer\nRequire: siprec\n")
        sipp_answer(tmp_path, split_require, 403, lab.sip_port)
        second_contact = RFC7866.replace("Require: siprec\n", "").replace(
            "Contact: <sip:src@127.0.0.1:[local_port]>;+sip.src\n",
            "Contact: <sip:src@127.0.0.1:[local_port]>\nContact: <sip:x@127.0.0.1:[local_port]>;+SIP.SRC\n",
        )
        sipp_answer(tmp_path, second_contact, 403, lab.sip_port)
        # Straight to the worker, from a listed client's address, bypassing Kamailio: refused,
        # even with a front-door header it made up.
        worker_port = lab.node_status()["workers"][0]["port"]
        sipp_answer(tmp_path, RFC7866, 403, worker_port, source="127.0.0.9")
        forged = RFC7866.replace(
            "Require: siprec\n", "Require: siprec\nX-Gateway-Door: " + "0" * 32 + ";src=127.0.0.9\n"
        )
        sipp_answer(tmp_path, forged, 403, worker_port, source="127.0.0.9")
        # The listed client itself, through the front door: SDES keys over UDP in a multipart
        # body are refused (caller SRTP is optional here: only a plain SDP's keys can be taken
        # out), and without keys it is answered.
        sipp_answer(tmp_path, KEYED, 488, lab.sip_port, source="127.0.0.9")
        sipp_answer(tmp_path, RFC7866, 200, lab.sip_port, source="127.0.0.9")
        lab.stop_gateway()
        gw = lab.gw.open()
        calls = [gw.index.get_call(c) for c in dict.fromkeys(c for c, _ in gw.index.encrypted_callers())]
        assert [c.kind for c in calls] == ["siprec"], "only the listed client's session is in the index"
        gw.close()
    finally:
        lab.close()


def test_a_lone_worker_never_answers_a_recording_session_with_keys_over_udp(tmp_path: Path) -> None:
    require_tool("sipp")
    lab = lab_for(tmp_path)
    offer_srtp(lab, tmp_path)
    try:
        lab.start_gateway()
        sipp_answer(tmp_path, KEYED, 488, lab.sip_port)
        assert any("SDES keys over a clear transport" in line for line in lab.gateway.stderr_lines)
    finally:
        lab.close()


def test_recording_session_through_the_node_front_door(tmp_path: Path) -> None:
    """Kamailio admits the recording client (its own allowlist group) on the recording address
    and relays the session to a worker; the client's in-dialog BYE follows the record-route.
    Sessions on the call address, and calls on the recording address, are refused. A session
    holds one call leg, so the node's only worker takes four at once (two calls at most)."""
    lab = CallLab(tmp_path, workers=1)
    siprec_port = free_port()
    lab.gw.set("siprec", "enabled", True)
    lab.gw.set("siprec", "clients", ["127.0.0.1"])
    lab.gw.set("siprec", "window_s", 2)
    lab.gw.set("siprec", "listen", f"127.0.0.1:{siprec_port}")
    try:
        lab.start_gateway()
        assert "3 127.0.0.1 32 0" in (lab.gw.dir / "run" / "kamailio" / "address.list").read_text()
        assert client(lab, "--target", f"sip:srs@127.0.0.1:{lab.sip_port}")["code"] == 403
        caller = lab.peer("caller", "--target", f"sip:1177@127.0.0.1:{siprec_port}", "--timeout", "10")
        caller.wait_exit(20)
        assert (caller.event("disconnected") or {}).get("code") == 403
        gone = client(
            lab, "--target", f"sip:srs@127.0.0.1:{siprec_port}", "--tone", "440", "--tone2", "1000",
            "--hangup-after", "4", "--sessions", "4",
        )  # fmt: skip
        assert gone["code"] == 200
        assert "+sip.srs" in str(gone["contact"])  # RFC 7866: the front door marks the answer
        assert [w["calls"] for w in lab.node_status()["workers"]] == [0], "all four have ended"
        lab.stop_gateway()
        gw = lab.gw.open()
        recs = gw.index.list_recordings()
        assert len(recs) == 4, "one worker took four sessions"
        for rec in recs:
            left, right = lab.decrypt(rec)
            assert abs(dominant_frequency(left) - 440) < 5 and abs(dominant_frequency(right) - 1000) < 5
    finally:
        lab.close()


def test_withdrawal_in_the_fork_deletes_the_recording_and_a_client_without_bye_is_ended(
    tmp_path: Path,
) -> None:
    lab = lab_for(tmp_path)
    lab.gw.set("calls", "max_duration_s", 9)
    try:
        lab.start_gateway()
        # Granted at the window's end (3 s), withdrawn with *9 at 5 s; the client never hangs
        # up: the gateway ends the session at [calls] max_duration_s.
        gone = client(lab, "--digits", "*@5.0,9@5.3")
        assert gone["code"] == 200 and 8 <= float(gone["connected_s"]) <= 11  # type: ignore[arg-type]
        lab.stop_gateway()
        gw = lab.gw.open()
        [rec] = gw.index.list_recordings()
        assert rec.status == RecordingStatus.DISCARDED
        receipt = gw.index.get_consent_receipt(rec.call_id)
        assert receipt["state"] == "withdrawn" and receipt["ended_at"] is not None
        assert "consent.withdrawn" in [e.action for e in gw.index.audit_entries()]
    finally:
        lab.close()


def test_a_metadata_update_in_a_reinvite_reaches_the_index_and_the_recording_goes_on(
    tmp_path: Path,
) -> None:
    lab = lab_for(tmp_path)
    try:
        lab.start_gateway()
        gone = client(
            lab, "--display", "Anonymous", "--update-at", "4", "--update-display", "Anna B",
            "--hangup-after", "7",
        )  # fmt: skip
        assert gone["code"] == 200
        lab.stop_gateway()
        gw = lab.gw.open()
        [rec] = gw.index.list_recordings()
        call = gw.index.get_call(rec.call_id)
        assert call.parties_enc is not None
        parties = json.loads(pii.open_value(call.parties_enc, age.load_identity_file(lab.gw.key)) or "[]")
        assert "Anna B" in [p["name"] for p in parties]
        # The re-INVITE rebuilt the streams: the taps followed, nothing after it is lost.
        left, right = lab.decrypt(rec)
        after = slice(5 * 8000, 6 * 8000)
        assert abs(dominant_frequency(left[after]) - 440) < 5
        assert abs(dominant_frequency(right[after]) - 1000) < 5
        assert lab.gateway is not None
        assert any("metadata updated" in line for line in lab.gateway.stderr_lines)
    finally:
        lab.close()


def test_a_paused_session_records_silence_and_resumes_on_its_channels(tmp_path: Path) -> None:
    """RFC 7866 pause: the client re-INVITEs with a=inactive, then sendonly again. The gap is
    kept as silence, so the recording stays aligned with the call; the taps follow the streams."""
    lab = lab_for(tmp_path)
    try:
        lab.start_gateway()
        gone = client(lab, "--pause-at", "4", "--resume-at", "6", "--hangup-after", "9")
        assert gone["code"] == 200
        lab.stop_gateway()
        gw = lab.gw.open()
        [rec] = gw.index.list_recordings()
        left, right = lab.decrypt(rec)
        level = lambda x: float(np.abs(x.astype(float)).mean())  # noqa: E731
        paused, resumed = slice(int(4.6 * 8000), int(5.4 * 8000)), slice(7 * 8000, 8 * 8000)
        assert level(left[paused]) < 100 and level(right[paused]) < 100
        assert abs(dominant_frequency(left[resumed]) - 440) < 5
        assert abs(dominant_frequency(right[resumed]) - 1000) < 5
    finally:
        lab.close()


def test_a_recording_address_of_its_own_needs_the_front_door(tmp_path: Path) -> None:
    from gateway.config import load
    from gateway.errors import ConfigError

    lab = lab_for(tmp_path)
    lab.gw.set("siprec", "listen", "127.0.0.1:5099")
    with pytest.raises(ConfigError, match="needs \\[node\\] kamailio = true"):
        load(lab.gw.config)
