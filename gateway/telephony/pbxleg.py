"""The call's side towards the helpline: what the INVITE to the PBX says (who calls, whether
the call is recorded, which call it is, in what language), keys relayed to the PBX, what the
gateway says into the legs (the whisper, the recording beep), and the media bridge between
the two legs with the recording taps. CallSession decides when; this says how."""

from __future__ import annotations

import logging

import pjsua2 as pj

from ..sip.message import Invite, quoted_display
from .media import PcmSource, Tap

log = logging.getLogger(__name__)


def invite_options(invite: Invite, call_id: str, consent: str, language: str, host: str) -> pj.CallOpParam:
    """The INVITE to the PBX: the caller's number and name (when it gave one) as From and
    P-Asserted-Identity from this gateway's address, and the gateway's own headers."""
    prm = pj.CallOpParam(True)
    caller = invite.caller
    if caller.number:
        prm.txOption.localUri = f'"{quoted_display(caller.display)}" <sip:{caller.number}@{host}>'
    for name, value in (
        ("X-Recording-Consent", consent),
        ("X-Gateway-Call", call_id),
        ("X-Caller-Language", language),
    ):
        h = pj.SipHeader()
        h.hName, h.hValue = name, value
        prm.txOption.headers.append(h)
    if caller.number:
        h = pj.SipHeader()
        h.hName, h.hValue = "P-Asserted-Identity", f"<sip:{caller.number}@{host}>"
        prm.txOption.headers.append(h)
    return prm


def relay_digit(pbx: pj.Call, digit: str, call_id: str) -> None:
    """A caller's key, passed on to the helpline as an RFC 4733 event."""
    prm = pj.CallSendDtmfParam()
    prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
    prm.digits = digit
    try:
        pbx.sendDtmf(prm)
    except pj.Error as e:
        log.warning("call %s: DTMF relay failed: %s", call_id, e.info())


def whisper_prompt(recording_allowed: bool, recording_enabled: bool) -> str:
    """What the helpline is told before the caller is put through."""
    if not recording_allowed:
        return "whisper-not-recorded"
    return "whisper-recorded" if recording_enabled else "whisper-unavailable"


def announce(aux: PcmSource, pcm: bytes, clip_id: str, *to: pj.AudioMedia) -> None:
    """Play `pcm` from the slot's second source into the given legs (and only those)."""
    aux.play(pcm, clip_id)
    for audio in to:
        aux.startTransmit(audio)


def silence(aux: PcmSource, *legs: pj.AudioMedia | None) -> None:
    aux.stop()
    for audio in legs:
        if audio is not None:
            try:
                aux.stopTransmit(audio)
            except pj.Error:
                pass


def bridge(caller: pj.AudioMedia, pbx: pj.AudioMedia, taps: tuple[Tap, Tap], recording: bool) -> None:
    """The two legs hear each other; each leg's audio also goes to its tap when a recording
    (or an in-band key listener) needs it."""
    caller.startTransmit(pbx)
    pbx.startTransmit(caller)
    for audio, tap in ((caller, taps[0]), (pbx, taps[1])):
        if recording or tap.inband is not None:
            audio.startTransmit(tap)
