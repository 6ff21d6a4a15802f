"""A simulated phone (pjsua2): a caller dialling the gateway, or the PBX agent answering it.
Used by the demo and by the tests, as a separate process like any real peer.

    python -m simphone.phone pbx --port 5070 --tone 1000 [--code 200|486] [--hangup-after S]
    python -m simphone.phone caller --target sip:1177@127.0.0.1:5060 --port 5080 --tone 440 \
        [--digits "9@2.0,*@12,9@12.3"] [--info] [--hangup-after S] [--number N] [--display D]

    python -m simphone.phone siprec --target sip:srs@127.0.0.1:5060 --port 5090 --tone 440 \
        --tone2 1000 [--labels 96,97] [--caller-second] [--metadata FILE] [--digits ...]

The siprec role is a SIPREC recording client (an SBC forking a call): one INVITE with
`Require: siprec`, a `+sip.src` Contact and a multipart body (SDP with two sendonly labelled
audio streams, RFC 7865 metadata), the caller's tone on one stream and the helpline's on the
other; digits go on the caller's stream.

Prints one JSON object per line: ready, incoming (with the INVITE's headers), confirmed,
digit, disconnected, exit. Sends a looped tone while a call is up. Exits after its call ends
or after --timeout seconds.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import wave

import numpy as np
import pjsua2 as pj

from gateway.sip.dtmf import COLS, KEYS, ROWS
from gateway.sip.message import headers
from gateway.telephony.media import PcmSource, audio_format, prefer_g711, tone
from gateway.telephony.net import free_port_run

RATE = 8000
T0 = time.monotonic()


QUIET = False
PROTOS = {pj.PJMEDIA_TP_PROTO_RTP_AVP: "RTP/AVP", pj.PJMEDIA_TP_PROTO_RTP_SAVP: "RTP/SAVP"}


def dtmf_tones(key: str, seconds: float, rate: int, amplitude: float = 0.25) -> bytes:
    """A keypad key as audio: its row and column tones at equal level."""
    row = next(i for i, keys in enumerate(KEYS) if key in keys)
    t = np.arange(int(seconds * rate)) / rate
    pair = np.sin(2 * np.pi * ROWS[row] * t) + np.sin(2 * np.pi * COLS[KEYS[row].index(key)] * t)
    return (amplitude * 32767 / 2 * pair).astype("<i2").tobytes()


def say(event: str, **fields: object) -> None:
    if QUIET:
        return
    print(
        json.dumps(
            {"event": event, "t": round(time.monotonic() - T0, 3), "wall": round(time.time(), 4), **fields}
        ),
        flush=True,
    )


class OnsetDetector(pj.AudioMediaPort):
    """Notes the wall time of the first received frame louder than a threshold (bench only)."""

    def __init__(self) -> None:
        super().__init__()
        self.onset: float | None = None

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        if self.onset is None and frame.size:
            samples = np.frombuffer(bytes(frame.buf), dtype="<i2")
            if samples.size and int(np.abs(samples).max()) > 3000:
                self.onset = time.time()


class Listener(pj.AudioMediaPort):
    """Keeps what this phone hears (tests: which prompt came first, how many beeps)."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[bytes] = []

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        if frame.size:
            self.chunks.append(bytes(frame.buf))

    def report(self, burst_hz: float) -> dict[str, object]:
        x = np.frombuffer(b"".join(self.chunks), dtype="<i2").astype(float)
        loud = np.flatnonzero(np.abs(x) > 2000)
        first_hz = 0.0
        if loud.size:
            seg = x[loud[0] : loud[0] + int(0.3 * RATE)]
            spectrum = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
            first_hz = float(np.fft.rfftfreq(len(seg), 1 / RATE)[int(np.argmax(spectrum))])
        bursts, on = 0, False
        win = int(0.05 * RATE)
        n = np.arange(win)
        ref = np.exp(-2j * np.pi * burst_hz * n / RATE)
        for i in range(0, len(x) - win, win):
            level = 2 * abs(np.dot(x[i : i + win], ref)) / win
            if level > 1500 and not on:
                bursts += 1
            on = level > 1500
        return {"first_hz": round(first_hz), "bursts": bursts, "seconds": round(len(x) / RATE, 2)}


def siprec_metadata(args: argparse.Namespace, labels: list[str]) -> str:
    """RFC 7865 metadata for a two-party call: the caller sends labels[0] (labels[1] with
    --caller-second), the helpline the other."""
    caller, helpline = (labels[1], labels[0]) if args.caller_second else (labels[0], labels[1])
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <session session_id="c2Vzc2lvbi0xMjM0NTY3OA==">
    <sipSessionID>{args.cs_call_id}</sipSessionID>
  </session>
  <participant participant_id="cGFydHktY2FsbGVyMDAx">
    <nameID aor="sip:{args.number}@caller.example"><name>{args.display}</name></nameID>
  </participant>
  <participant participant_id="cGFydHktaGVscGxpbmUx">
    <nameID aor="sip:{args.helpline_number}@helpline.example"><name>Helpline</name></nameID>
  </participant>
  <stream stream_id="c3RyZWFtLWNhbGxlcjAx" session_id="c2Vzc2lvbi0xMjM0NTY3OA=="><label>{caller}</label></stream>
  <stream stream_id="c3RyZWFtLWhlbHBsaW5l" session_id="c2Vzc2lvbi0xMjM0NTY3OA=="><label>{helpline}</label></stream>
  <participantstreamassoc participant_id="cGFydHktY2FsbGVyMDAx">
    <send>c3RyZWFtLWNhbGxlcjAx</send><recv>c3RyZWFtLWhlbHBsaW5l</recv>
  </participantstreamassoc>
  <participantstreamassoc participant_id="cGFydHktaGVscGxpbmUx">
    <send>c3RyZWFtLWhlbHBsaW5l</send><recv>c3RyZWFtLWNhbGxlcjAx</recv>
  </participantstreamassoc>
</recording>
"""


def rtp_ports(bind: str, sessions: int) -> int:
    """An even port P with the ports from P free for the siprec client's sessions: two streams
    each, RTP and RTCP."""
    base = free_port_run(4 * sessions + 1, bind)
    return base + base % 2


class PeerCall(pj.Call):
    def __init__(self, peer: Peer, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(peer.account, call_id)
        self.peer = peer
        self.audio: pj.AudioMedia | None = None
        self.rtp_base = 0  # siprec: the first RTP port its offer named
        self.confirmed_at: float | None = None
        self.gone = False
        self.hangup_after = peer.args.hangup_after
        self.digits = list(peer.digit_plan)

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        ci = self.getInfo()
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.confirmed_at = time.monotonic()
            say("confirmed")
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.audio = None
            self.gone = True
            if self.peer.listener is not None:
                say("heard", **self.peer.listener.report(self.peer.args.burst_hz))
            say(
                "disconnected",
                code=ci.lastStatusCode,
                reason=ci.lastReason,
                connected_s=round(time.monotonic() - self.confirmed_at, 3) if self.confirmed_at else None,
            )

    def onCallTsxState(self, prm: pj.OnCallTsxStateParam) -> None:
        """Report the Contact header of the answer to our INVITE, as sent (with its parameters)."""
        if prm.e.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        tsx = prm.e.body.tsxState
        if (
            tsx.type == pj.PJSIP_EVENT_RX_MSG
            and tsx.tsx.role == pj.PJSIP_ROLE_UAC
            and tsx.tsx.method == "INVITE"
            and 200 <= tsx.tsx.statusCode < 300
        ):
            say("answered", contact=headers(tsx.src.rdata.wholeMsg).get("contact", ""))

    def onCallSdpCreated(self, prm: pj.OnCallSdpCreatedParam) -> None:
        """A recording client's offer: one sendonly G.711 stream per party, each labelled. The
        wheel's pjsua2 hands the SDP over empty, so the whole offer is written here, on the
        media transports pjsua made for the call."""
        if self.peer.args.role != "siprec":
            return
        bind = self.peer.args.bind
        lines = ["v=0", f"o=- 3724394400 3724394400 IN IP4 {bind}", "s=siprec", f"c=IN IP4 {bind}", "t=0 0"]
        if not self.rtp_base:  # a re-offer keeps the call's transports
            self.rtp_base = self.peer.next_rtp_port
            self.peer.next_rtp_port += 2 * len(self.peer.labels)
        first = self.rtp_base
        for i, label in enumerate(self.peer.labels):
            # pjsua gives the calls' media transports the account's RTP ports in turn (their
            # transport info is not readable yet while the offer is made): see rtp_ports().
            port = first + 2 * i
            lines += [
                f"m=audio {port} RTP/AVP 8 0 101",
                "a=rtpmap:8 PCMA/8000",
                "a=rtpmap:0 PCMU/8000",
                "a=rtpmap:101 telephone-event/8000",
                "a=fmtp:101 0-16",
                "a=inactive" if self.peer.paused else "a=sendonly",  # --pause-at: RFC 7866 pause
                f"a=label:{label}",
            ]
        prm.sdp.wholeSdp = "\r\n".join(lines) + "\r\n"

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        ci = self.getInfo()
        if self.peer.args.role == "siprec":
            sources = [self.peer.source, self.peer.source2]
            if self.peer.args.caller_second:
                sources.reverse()
            for i, mi in enumerate(ci.media[:2]):
                if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                    rtp = self.getMedTransportInfo(i).localRtpName
                    if not rtp.endswith(f":{self.rtp_base + 2 * i}"):
                        say("rtp_port_mismatch", index=i, rtp=rtp)  # the offer named another port
                    say("media", index=i, status=int(mi.status))
                    sources[i].startTransmit(self.getAudioMedia(i))
            return
        for mi in ci.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO:
                say("media", status=int(mi.status))
        for i, mi in enumerate(ci.media):
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                say("stream", proto=PROTOS.get(self.getStreamInfo(i).proto, "other"))
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status in (
                pj.PJSUA_CALL_MEDIA_ACTIVE,
                pj.PJSUA_CALL_MEDIA_LOCAL_HOLD,
            ):
                audio = self.audio = self.getAudioMedia(i)
                self.peer.source.startTransmit(audio)
                if self.peer.listener is not None:
                    audio.startTransmit(self.peer.listener)
                if self.peer.detector is not None:
                    audio.startTransmit(self.peer.detector)

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        say("digit", digit=prm.digit)


class Account(pj.Account):
    def __init__(self, peer: Peer) -> None:
        super().__init__()
        self.peer = peer

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        h = headers(prm.rdata.wholeMsg)
        say(
            "incoming",
            headers={
                k: v
                for k, v in h.items()
                if k
                in (
                    "from",
                    "to",
                    "x-recording-consent",
                    "p-asserted-identity",
                    "x-gateway-call",
                    "x-caller-language",
                )
            },
            # Where the INVITE came from, and where its offer says to send the audio.
            source=prm.rdata.srcAddress,
            media=next(
                (line.split()[-1] for line in prm.rdata.wholeMsg.splitlines() if line.startswith("c=IN IP")),
                "",
            ),
        )
        call = PeerCall(self.peer, prm.callId)
        self.peer.calls.append(call)
        op = pj.CallOpParam()
        op.statusCode = self.peer.args.code
        if op.statusCode >= 300:
            call.hangup(op)
        else:
            call.answer(op)


class Peer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        # (seconds after the call is up, digit), for every call of this peer
        self.digit_plan = sorted(
            (float(at), d)
            for d, _, at in (item.partition("@") for item in filter(None, args.digits.split(",")))
        )
        self.calls: list[PeerCall] = []
        ep = self.ep = pj.Endpoint()
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.logConfig.level = 0
        cfg.logConfig.consoleLevel = 0
        cfg.medConfig.clockRate = RATE
        cfg.medConfig.sndClockRate = RATE
        cfg.medConfig.noVad = True
        ep.libInit(cfg)
        tc = pj.TransportConfig()
        tc.port = args.port
        tc.boundAddress = args.bind
        ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
        if args.tls or args.tls_port:
            tls = pj.TransportConfig()
            tls.boundAddress = args.bind
            tls.port = args.tls_port
            tls.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD
            if args.tls_cert:  # a TLS server (the PBX) needs a certificate
                tls.tlsConfig.certFile = args.tls_cert
                tls.tlsConfig.privKeyFile = args.tls_key
            ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, tls)
        ep.audDevManager().setNullDev()
        ep.libStart()
        prefer_g711(ep)
        self.source = PcmSource(RATE)
        self.source.createPort("tone", audio_format(RATE))
        if args.wav:
            with wave.open(args.wav) as w:
                self.background = w.readframes(w.getnframes())
            self.source.play(self.background, "wav", loop=True)
        elif args.noise_seed is not None:
            noise = np.random.default_rng(args.noise_seed).integers(-20000, 20000, RATE, dtype=np.int16)
            self.background = noise.astype("<i2").tobytes()
            self.source.play(self.background, "noise", loop=True)
        else:
            self.background = tone(args.tone, 1.0, RATE)
            self.source.play(self.background, "tone", loop=True)
        self.labels = args.labels.split(",")
        self.source2 = PcmSource(RATE)  # the helpline's stream (siprec role)
        self.source2.createPort("tone2", audio_format(RATE))
        self.source2.play(tone(args.tone2, 1.0, RATE), "tone2", loop=True)
        self.detector: OnsetDetector | None = None
        self.listener: Listener | None = None
        if args.listen:
            self.listener = Listener()
            self.listener.createPort("listener", audio_format(RATE))
        if args.detect_onset:
            self.detector = OnsetDetector()
            self.detector.createPort("onset", audio_format(RATE))
        self.tone_started: float | None = None
        self.restore_at: float | None = None
        if args.tone_at is not None:
            self.source.stop()
        acfg = pj.AccountConfig()
        scheme = "sips" if args.sips else "sip"
        acfg.idUri = f'"{args.display}" <{scheme}:{args.number}@{args.bind}:{args.port}>'
        if args.role == "siprec" and not args.rtp_port:
            args.rtp_port = rtp_ports(args.bind, args.sessions)
        self.next_rtp_port = args.rtp_port  # the next siprec session's first RTP port
        self.paused = False
        acfg.mediaConfig.transportConfig.port = args.rtp_port
        acfg.mediaConfig.transportConfig.boundAddress = args.bind
        acfg.mediaConfig.srtpUse = {
            "off": pj.PJMEDIA_SRTP_DISABLED,
            "optional": pj.PJMEDIA_SRTP_OPTIONAL,
            "mandatory": pj.PJMEDIA_SRTP_MANDATORY,
        }[args.srtp]
        # --keys-in-clear: send SDES keys over UDP too (a careless trunk), else TLS only.
        acfg.mediaConfig.srtpSecureSignaling = 0 if args.keys_in_clear else 1
        if args.role == "siprec":
            acfg.sipConfig.contactParams = ";+sip.src"  # RFC 7866: a recording client's Contact
        self.account = Account(self)
        self.account.create(acfg)

    def run(self) -> None:
        args = self.args
        say("ready")
        if args.role in ("caller", "siprec"):
            # siprec: --sessions recording sessions at once (the wheel takes up to four calls)
            for _ in range(args.sessions if args.role == "siprec" else 1):
                placed = PeerCall(self)
                self.calls.append(placed)
                prm = pj.CallOpParam(True)
                for item in args.header:
                    h = pj.SipHeader()
                    h.hName, _, value = item.partition(":")
                    h.hValue = value.strip()
                    prm.txOption.headers.append(h)
                if args.role == "siprec":
                    self._recording_request(prm)
                placed.makeCall(args.target, prm)
            del placed
        deadline = time.monotonic() + args.timeout
        call: PeerCall | None = None
        while time.monotonic() < deadline:
            self.ep.libHandleEvents(10)
            if len(self.calls) >= args.calls and all(c.gone for c in self.calls):
                break
            if self.restore_at is not None and time.monotonic() >= self.restore_at:
                self.restore_at = None
                self.source.play(self.background, "background", loop=True)
            for call in self.calls:
                if call.gone or call.confirmed_at is None:
                    continue
                up = time.monotonic() - call.confirmed_at
                if args.tone_at is not None and self.tone_started is None and up >= args.tone_at:
                    self.tone_started = time.time()
                    self.source.play(tone(args.tone, 1.0, RATE), "tone", loop=True)
                    say("tone_started", at=self.tone_started)
                if self.detector is not None and self.detector.onset is not None:
                    say("onset", at=self.detector.onset)
                    self.detector.onset = float("inf")
                if args.update_at is not None and up >= args.update_at:
                    # siprec: a re-INVITE with new metadata (the caller's name, as an SBC
                    # learns it), the same streams
                    args.update_at = None
                    prm = pj.CallOpParam(True)
                    args.display = args.update_display
                    self._recording_request(prm)
                    call.reinvite(prm)
                    say("updated")
                pause = args.pause_at is not None and up >= args.pause_at
                resume = args.pause_at is None and args.resume_at is not None and up >= args.resume_at
                if pause or resume:
                    # siprec: the client pauses the recording (a=inactive), later resumes it
                    if pause:
                        args.pause_at = None
                    else:
                        args.resume_at = None
                    self.paused = pause
                    prm = pj.CallOpParam(True)
                    prm.opt.audioCount = 2
                    call.reinvite(prm)
                    say("paused" if pause else "resumed")
                if args.hold_at is not None and up >= args.hold_at:
                    args.hold_at = None
                    call.setHold(pj.CallOpParam(True))
                    say("hold")
                if args.unhold_at is not None and up >= args.unhold_at and args.hold_at is None:
                    args.unhold_at = None
                    prm = pj.CallOpParam(True)
                    prm.opt.flag = pj.PJSUA_CALL_UNHOLD
                    call.reinvite(prm)
                    say("unhold")
                while call.digits and up >= call.digits[0][0]:
                    self._send(call, call.digits.pop(0)[1])
                if call.hangup_after is not None and up >= call.hangup_after:
                    op = pj.CallOpParam()
                    op.statusCode = 200
                    call.hangup(op)
                    call.hangup_after = None
        call = None  # the loop's reference too: a Call must die before libDestroy
        for _ in range(50):
            self.ep.libHandleEvents(10)
        say("exit")
        self.calls.clear()
        self.account.shutdown()
        # Media ports go before libDestroy, while the conference bridge still exists (else
        # pjmedia_conf_remove_port asserts when the interpreter collects them at exit).
        del self.source
        del self.source2
        self.detector = None
        self.listener = None
        gc.collect()
        self.ep.libDestroy()

    def _recording_request(self, prm: pj.CallOpParam) -> None:
        """What makes an INVITE a recording session's (RFC 7866): Require: siprec, two audio
        streams, and the metadata beside the SDP in a multipart/mixed body."""
        args = self.args
        prm.opt.audioCount = 2
        if not args.no_require:
            h = pj.SipHeader()
            h.hName, h.hValue = "Require", "siprec"
            prm.txOption.headers.append(h)
        if args.no_metadata:
            return
        if args.metadata:
            with open(args.metadata, encoding="utf-8") as f:
                body = f.read()
        else:
            body = siprec_metadata(args, self.labels)
        prm.txOption.multipartContentType.type = "multipart"
        prm.txOption.multipartContentType.subType = "mixed"
        part = pj.SipMultipartPart()
        part.contentType.type = "application"
        part.contentType.subType = "rs-metadata+xml"
        part.body = body
        disposition = pj.SipHeader()
        disposition.hName, disposition.hValue = "Content-Disposition", "recording-session"
        part.headers.append(disposition)
        prm.txOption.multipartParts.append(part)

    def _send(self, call: PeerCall, digit: str) -> None:
        if self.args.inband or self.args.both:
            # The key as audio: its two tones for 100 ms, then 60 ms of silence, then back to
            # what this phone was sending.
            self.source.play(dtmf_tones(digit, 0.1, RATE) + bytes(int(0.06 * RATE) * 2), "dtmf")
            self.restore_at = time.monotonic() + 0.16
            say("sent_tones", digit=digit)
            if not self.args.both:
                return
        prm = pj.CallSendDtmfParam()
        prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO if self.args.info else pj.PJSUA_DTMF_METHOD_RFC2833
        prm.digits = digit
        try:
            call.sendDtmf(prm)
        except pj.Error as e:  # pjsua's RFC 2833 queue is full, or the call is gone
            say("dtmf_refused", digit=digit, reason=e.reason)
            return
        say("sent", digit=digit)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["caller", "pbx", "siprec"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--bind", default="127.0.0.1", help="local address (any of 127.0.0.0/8)")
    ap.add_argument("--rtp-port", type=int, default=0)
    ap.add_argument("--target", default="")
    ap.add_argument("--tone", type=float, default=440)
    ap.add_argument("--tone2", type=float, default=1000, help="siprec: the helpline stream's tone")
    ap.add_argument("--labels", default="96,97", help="siprec: the two streams' SDP labels")
    ap.add_argument("--caller-second", action="store_true", help="siprec: the caller sends the 2nd stream")
    ap.add_argument("--helpline-number", default="116117", help="siprec: the helpline participant")
    ap.add_argument("--cs-call-id", default="cs-call-1@sbc.example", help="siprec: the forked call's id")
    ap.add_argument("--metadata", default="", help="siprec: send this metadata document instead")
    ap.add_argument("--no-metadata", action="store_true", help="siprec: send the SDP alone")
    ap.add_argument("--no-require", action="store_true", help="siprec: leave out Require: siprec")
    ap.add_argument("--update-at", type=float, default=None, help="siprec: re-INVITE with new metadata")
    ap.add_argument("--sessions", type=int, default=1, help="siprec: this many sessions at once (1-4)")
    ap.add_argument("--pause-at", type=float, default=None, help="siprec: a=inactive S seconds in")
    ap.add_argument("--resume-at", type=float, default=None, help="siprec: sendonly again S seconds in")
    ap.add_argument("--update-display", default="Updated", help="siprec: the caller's name in it")
    ap.add_argument("--code", type=int, default=200)
    ap.add_argument("--noise-seed", type=int, default=None, help="send seeded noise (one second, looped)")
    ap.add_argument("--digits", default="")
    ap.add_argument("--info", action="store_true", help="send digits as SIP INFO, not RFC 2833")
    ap.add_argument("--inband", action="store_true", help="send digits as audio tones only")
    ap.add_argument("--both", action="store_true", help="send digits as tones and as RFC 2833 events")
    ap.add_argument("--wav", default="", help="send this 8 kHz mono WAV (looped) instead of a tone")
    ap.add_argument("--hangup-after", type=float, default=None)
    ap.add_argument("--number", default="peer")
    ap.add_argument("--display", default="Peer")
    ap.add_argument("--quiet", action="store_true", help="print nothing")
    ap.add_argument("--tone-at", type=float, default=None, help="silent until S seconds into the call")
    ap.add_argument("--tls", action="store_true", help="have a TLS transport (dial with ;transport=tls)")
    ap.add_argument("--tls-port", type=int, default=0, help="listen for TLS on this port")
    ap.add_argument("--tls-cert", default="", help="PEM certificate of a TLS server (the PBX)")
    ap.add_argument("--tls-key", default="")
    ap.add_argument("--sips", action="store_true", help="a sips: identity (answers sips: calls)")
    ap.add_argument("--srtp", choices=["off", "optional", "mandatory"], default="off")
    ap.add_argument("--keys-in-clear", action="store_true", help="offer SDES keys over UDP as well")
    ap.add_argument("--hold-at", type=float, default=None, help="put the call on hold S seconds in")
    ap.add_argument("--unhold-at", type=float, default=None, help="take it off hold S seconds in")
    ap.add_argument("--header", action="append", default=[], help="NAME: VALUE on the INVITE")
    ap.add_argument("--listen", action="store_true", help="report what was heard when the call ends")
    ap.add_argument("--burst-hz", type=float, default=1400.0, help="with --listen: count bursts of this tone")
    ap.add_argument("--detect-onset", action="store_true", help="report when loud audio first arrives")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--calls", type=int, default=1, help="exit once this many calls have ended")
    args = ap.parse_args()
    global QUIET
    QUIET = args.quiet
    Peer(args).run()
    sys.exit(0)


if __name__ == "__main__":
    main()
