"""One SIPREC recording session: a recording client (an SBC or PBX) forks a call's media to
the gateway, which stores it only with the caller's consent.

    deciding ─(client's signal, a key in the window, or the window's end)─▶ forked ─(BYE)─▶ ended

The client played the notice; the gateway cannot speak to anyone. It decides, in order, from
the consent the client signals (a header or the metadata extension), a decisive key seen in the
caller's forked stream within [siprec] window_s, or the route's mode when the window closes.
Until then the audio stays in memory (bounded); a grant writes it from the session's start, a
refusal drops it and nothing but a receipt is written. A later `*9` withdraws, as in a call.
"""

from __future__ import annotations

import ctypes
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

from ..callevents import CallState, EventType, RecordingState
from ..config import Route, SiprecConfig
from ..consent import receipt as rc
from ..consent.machine import ConsentMachine, Decide, Decision, Mode, Withdraw
from ..consent.machine import State as ConsentStep
from ..sip.dtmf import DtmfMethod, OnceOnly
from ..sip.siprec import Metadata, RecordingOffer, metadata_of
from ..sip.tones import ToneDetector
from ..storage import pii
from ..storage.rows import CallRow
from .media import MediaSlot
from .session import CallServices, InbandListener, Session, masked

log = logging.getLogger(__name__)


# pjsua reports a sendonly offer (every SIPREC stream) as the remote's hold.
FORKED_MEDIA = (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD)


class _PjStr(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_char_p), ("slen", ctypes.c_ssize_t)]


def support_siprec() -> None:
    """Add "siprec" to the endpoint's Supported capabilities, so that pjsip accepts INVITEs with
    `Require: siprec` (else it answers 420 Bad Extension before the gateway sees them). The
    wheel's pjsip (2.15) has no SIPREC module and pjsua2 no call for this: the exported C
    function is called directly, once, after libInit."""
    import pjsua2._pjsua2 as native  # the extension module pjsua2 itself loaded

    lib = ctypes.CDLL(native.__file__)
    lib.pjsua_get_pjsip_endpt.restype = ctypes.c_void_p
    lib.pjsip_endpt_add_capability.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_uint,
        ctypes.POINTER(_PjStr),
    ]
    tag = _PjStr(b"siprec", 6)  # pjsip copies it
    status = lib.pjsip_endpt_add_capability(
        lib.pjsua_get_pjsip_endpt(), None, pj.PJSIP_H_SUPPORTED, None, 1, ctypes.byref(tag)
    )
    if status != 0:
        raise RuntimeError(f"pjsip refused the siprec capability (status {status})")


class HeldAudio:
    """The taps' frames before the decision, in memory only and bounded; then, once `target`
    is set, passed straight on to the recorder. Called from the clock thread like a recorder."""

    def __init__(self, max_frames: int) -> None:
        self.frames: deque[tuple[int, float, bytes]] = deque(maxlen=max_frames)
        self.target: Any = None

    def push_frame(self, channel: int, pcm: bytes, at: float) -> None:
        target = self.target
        if target is not None:
            target.push_frame(channel, pcm, at)
            return
        self.frames.append((channel, at, pcm))

    def take(self) -> list[tuple[int, float, bytes]]:
        out = []
        while self.frames:
            out.append(self.frames.popleft())
        return out


class RecordingDialog(pj.Call):
    """The client's dialog with the gateway. Holds no logic of its own."""

    def __init__(self, account: pj.Account, session: RecordingSession, call_id: int) -> None:
        super().__init__(account, call_id)
        self.session = session
        self.connected = False
        self.disconnected = False

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        if self.session is None:
            return
        ci = self.getInfo()
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.connected = True
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True
            self.session.loop.call_soon(self.session._guard(self.session.client_gone))

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        if self.session is not None:
            self.session.on_media()

    def onCallTsxState(self, prm: pj.OnCallTsxStateParam) -> None:
        # A re-INVITE or UPDATE from the client may carry new metadata.
        if self.session is None or prm.e.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        tsx = prm.e.body.tsxState
        if tsx.type != pj.PJSIP_EVENT_RX_MSG or tsx.tsx.role != pj.PJSIP_ROLE_UAS:
            return
        if tsx.tsx.method in ("INVITE", "UPDATE") and tsx.tsx.state == pj.PJSIP_TSX_STATE_TRYING:
            text, session = tsx.src.rdata.wholeMsg, self.session
            session.loop.call_soon(session._guard(lambda: session.metadata_update(text)))

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        session = self.session
        if session is not None:
            via = DtmfMethod.INFO if prm.method == pj.PJSUA_DTMF_METHOD_SIP_INFO else DtmfMethod.RFC4733
            key, t = prm.digit, session.t()  # prm is gone once this callback returns
            session.loop.call_soon(session._guard(lambda: session.digit(key, via, t)))


class RecordingSession(Session):
    """A SIPREC session on a worker; the worker treats it like a call (sessions, poll_inband,
    hangup_all, control, destroy)."""

    KIND = "recording session"
    LEGS = 1  # one dialog with the recording client, however many streams it forks

    def __init__(
        self,
        services: CallServices,
        session_id: str,
        offer: RecordingOffer,
        route: Route,
        dialog_id: int,
        settings: SiprecConfig,
        on_ended: Callable[[Any], None],
    ) -> None:
        super().__init__(services, session_id, route, CallState.DECIDING, on_ended)
        self.offer = offer
        self.settings = settings
        self.decided_by = ""  # "client-header", "client-metadata", "key" or "window"
        cfg = services.config
        self.machine = ConsentMachine(
            Mode(route.mode),
            0.0,
            settings.window_s,
            cfg.consent.decline_key,
            cfg.consent.accept_key,
            cfg.calls.withdraw_sequence,
        )
        self.once = OnceOnly()
        self.slot: MediaSlot = services.take_slot()
        rate = services.clock_rate
        frames = int((settings.window_s + 2) * 1000 / cfg.recording.tap_ptime_ms) * 2
        self.held = HeldAudio(frames)
        self._listener: InbandListener | None = None
        if route.dtmf.listens_inband:
            self._listener = InbandListener(deque(maxlen=100), ToneDetector(rate), rate=rate)
            self.slot.taps[0].inband = self._listener.queue
        for tap in self.slot.taps:
            tap.recorder = self.held
        self.dialog = RecordingDialog(services.account, self, dialog_id)
        self._connected: set[int] = set()

    # -- helpers ----------------------------------------------------------------------------

    def _parties(self, metadata: Metadata) -> bytes | None:
        """Every participant's number, name and the labels they send, sealed to the operators."""
        # Roles follow the recorded channels' labels, which stay put when an update renames or
        # renumbers the participants.
        role_of = {m.label: ("caller", "helpline")[self.offer.channels[m.index]] for m in self.offer.audio
                   if m.index in self.offer.channels}  # fmt: skip
        parties: list[dict[str, object]] = []
        for p in metadata.participants:
            labels = [s.label for s in metadata.streams if s.id in p.sends]
            roles = sorted({role_of[label] for label in labels if label in role_of})
            parties.append(
                {
                    "id": p.id,
                    "number": p.number,
                    "aor": p.aor,
                    "name": p.name,
                    "role": "/".join(roles),
                    "labels": labels,
                }
            )
        return pii.seal_parties(parties, self.tenant.sealing)

    def _summary(self, metadata: Metadata) -> str:
        offer = self.offer
        return json.dumps(
            {
                **metadata.summary(),
                "channels": {
                    m.label: offer.channels[m.index] for m in offer.audio if m.index in offer.channels
                },
                "roles_by": offer.roles_by.value,
            },
            sort_keys=True,
        )

    # -- start ------------------------------------------------------------------------------

    def start(self) -> None:
        sv, offer = self.services, self.offer
        number = offer.caller.number if offer.caller is not None else ""
        sv.index.add_call(
            CallRow(
                self.id,
                self.answered_at,
                route=self.route.number,
                tenant=self.tenant.stored,
                caller_enc=pii.seal_value(number, self.tenant.sealing) if number else None,
                kind="siprec",
                parties_enc=self._parties(offer.metadata),
                siprec=self._summary(offer.metadata),
            )
        )
        prm = pj.CallOpParam()
        prm.statusCode = 200
        # One audio stream per m= line offered; pjsua answers each sendonly one recvonly.
        prm.opt.audioCount = max(m.index for m in offer.audio) + 1
        try:
            self.dialog.answer(prm)
        except pj.Error as e:
            log.warning("recording session %s: cannot answer (%s); 488", self.id, e.reason)
            self.hangup_all(488)
            return
        self.emit(
            EventType.CALL_STARTED,
            state=self.state,
            call_kind="siprec",
            route=self.route.number,
            mode=self.route.mode,
            caller_display=(offer.caller.name if offer.caller is not None else "")[:64],
            caller_masked=masked(number),
            streams=len(offer.audio),
            roles_by=offer.roles_by.value,
        )
        log.info(
            "recording session %s: %d streams, roles by %s, consent %s",
            self.id,
            len(offer.audio),
            offer.roles_by,
            f"signalled ({offer.consent_from}: {offer.consent})" if offer.consent else "by window",
        )
        self.later(sv.config.calls.max_duration_s, lambda: self.hangup_all(200, "maximum duration"))
        if offer.consent is not None:
            self.decided_by = f"client-{offer.consent_from}"
            self._apply(self.machine.on_signalled(Decision(offer.consent), 0.0, offer.consent_from))
        else:
            self.later(self.settings.window_s + 0.05, self._window_over)

    # -- pjsua events ---------------------------------------------------------------------------

    def on_media(self) -> None:
        """Connect each recorded stream to its channel's tap (again after a re-INVITE)."""
        if self.ended:
            return
        ci = self.dialog.getInfo()
        for i, mi in enumerate(ci.media):
            channel = self.offer.channels.get(i)
            if channel is None or mi.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            if mi.status in FORKED_MEDIA and self._taps_wanted(channel):
                self.dialog.getAudioMedia(i).startTransmit(self.slot.taps[channel])
                self._connected.add(i)

    def _taps_wanted(self, channel: int) -> bool:
        tap = self.slot.taps[channel]
        return tap.recorder is not None or tap.inband is not None

    def _disconnect_taps(self) -> None:
        for tap in self.slot.taps:
            if tap.recorder is None and tap.inband is None:
                for i in list(self._connected):
                    if self.offer.channels.get(i) == tap.channel:
                        try:
                            self.dialog.getAudioMedia(i).stopTransmit(tap)
                        except pj.Error:
                            pass
                        self._connected.discard(i)

    def metadata_update(self, message: str) -> None:
        """New metadata in a re-INVITE or UPDATE: the index follows it."""
        try:
            metadata = metadata_of(message)
        except ValueError as e:
            log.warning("recording session %s: metadata update ignored: %s", self.id, e)
            return
        if metadata is None:
            return
        self.services.index.update_session(self.id, self._parties(metadata), self._summary(metadata))
        log.info("recording session %s: metadata updated (%s)", self.id, metadata.datamode)

    def digit(self, digit: str, via: DtmfMethod, t: float) -> None:
        """A key in the forked media. pjsua reports RFC 4733 events without saying which stream
        carried them: they count as the caller's (the helpline has nothing to press here)."""
        if not self.route.dtmf.accepts(via) or not self.once.first("caller", digit, via, t):
            return
        self.emit(EventType.CALL_DIGIT, leg="caller", t=round(t, 3), via=via)
        self._apply(self.machine.on_digit(digit, t, via.value))

    @property
    def listening_inband(self) -> bool:
        return self._listener is not None and not self.ended

    def poll_inband(self) -> None:
        listener = self._listener
        if listener is None or self.ended or not listener.queue:
            return
        for key, t in listener.drain(self.t()):
            self.digit(key, DtmfMethod.INBAND, t)

    # -- decision --------------------------------------------------------------------------

    def _window_over(self) -> None:
        if self.machine.decision is None:
            self._apply(self.machine.on_tick(self.t()))

    def _apply(self, actions: list[Any]) -> None:
        for a in actions:
            if isinstance(a, Decide):
                self._decided(a)
            elif isinstance(a, Withdraw):
                self._withdraw()
        # Confirm and StopNotice have nothing to act on: the client plays the prompts.
        self._update_listening()

    def _update_listening(self) -> None:
        """Tones matter until the decision, and after a grant for the withdrawal sequence."""
        m = self.machine
        if self._listener is not None and not (
            m.state is ConsentStep.NOTICE
            or (m.decision is Decision.GRANTED and m.state is ConsentStep.DECIDED)
        ):
            self._listener = None
            self.slot.taps[0].inband = None
            self._disconnect_taps()

    def _decided(self, d: Decide) -> None:
        if not self.decided_by:  # the client's signal names itself in start()
            self.decided_by = "key" if d.reason.endswith(" key") else "window"
        self._record_decision(d)
        if d.decision is Decision.GRANTED:
            self._start_recording()
        else:
            self._drop_audio()  # the caller said no: not one held frame goes anywhere
        self.set_state(CallState.FORKED)
        if d.decision is Decision.DECLINED and self.settings.on_refusal == "end":
            self.hangup_all(200, "declined: session ended")

    def _start_recording(self) -> None:
        backlog = self.held.take()
        started = self.services.recordings.start(
            self.id,
            route=self.route.number,
            retention_days=self.route.retention_days,
            tenant=self.tenant,
            since=self.answered_mono,
            backlog=backlog,
            receipt=self._receipt(),
        )
        if started is None:
            self._drop_audio()
            self.set_recording(RecordingState.INCOMPLETE, error="recording could not start")
            return
        recorder = started[1]
        self.held.target = recorder  # from now on the taps' frames go straight through
        for channel, at, pcm in self.held.take():  # pushed while the recorder was being made
            recorder.push_frame(channel, pcm, at)
        self._recording_began(started, self.slot.taps)

    def _drop_audio(self) -> None:
        """Nothing held, nothing more recorded: the held frames forgotten, the taps stopped."""
        self.held.frames.clear()
        self._stop_taps()

    def _stop_taps(self) -> None:
        for tap in self.slot.taps if self.slot is not None else []:
            tap.recorder = None
        if self.dialog is not None:
            self._disconnect_taps()

    def control(self, op: str, actor: str) -> str | None:
        return "a recording session forked by a SIPREC client is controlled by its client"

    # -- end ---------------------------------------------------------------------------------

    def client_gone(self) -> None:
        self._apply(self.machine.on_hangup(self.t()))
        self.hangup_all(200, "the recording client ended the session")

    def hangup_all(self, code: int = 200, why: str = "") -> None:
        if not self._ending():
            return
        self._listener = None
        self.slot.taps[0].inband = None
        self._drop_audio()
        self._hangup_leg(self.dialog, code)
        self._ended(why)

    def _receipt(self, ended_at: str | None = None) -> dict[str, Any]:
        offer = self.offer
        return rc.build(
            self.machine,
            call_id=self.id,
            route=self.route.number,
            prompt=None,
            answered_at=self.answered_at,
            decided_at=self.decided_at,
            ended_at=ended_at,
            siprec={
                "notice": "played by the recording client",
                "decided_by": self.decided_by or None,
                "client_signal": (
                    {"from": offer.consent_from, "value": offer.consent} if offer.consent else None
                ),
                "window_s": self.settings.window_s,
                "sessions": offer.metadata.sessions,
                "roles_by": offer.roles_by.value,
            },
        )

    @property
    def caller(self) -> Any:
        return self.dialog  # the worker reaps a session once its legs are disconnected

    pbx = None

    def destroy(self) -> None:
        self.services.give_slot(self.slot)
        self.dialog.session = None  # type: ignore[assignment]
        self.slot = None  # type: ignore[assignment]
        self.dialog = None  # type: ignore[assignment]
