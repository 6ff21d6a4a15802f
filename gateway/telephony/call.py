"""One call through the gateway: the caller's leg, the PBX leg, and everything between them.

    notice ─▶ deciding ─(decision)─▶ dialling ─(PBX answers)─▶ bridged ─(either hangs up)─▶ ended
       │          │                     └─(busy, failure, timeout)─▶ unavailable ─▶ ended
       └──────────┴─(caller hangs up or cancels)─▶ ended

pjsua2 callbacks (on the pjsua thread, which runs the asyncio loop) become session events.
The consent decision is the pure ConsentMachine's; this file carries out its actions. A call
knows nothing of the worker that runs it: what it needs comes in a CallServices, and it says it
is over through `on_ended`. Its state and its recording's state change through one setter each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

from ..callevents import CallState, EventType, RecordingState
from ..config import Route
from ..consent import receipt as rc
from ..consent.language import LanguageChoice, language_from_header
from ..consent.machine import Confirm, ConsentMachine, Decide, Decision, Mode, StopNotice, Withdraw
from ..consent.machine import State as ConsentStep
from ..sip.dtmf import DtmfMethod, OnceOnly
from ..sip.message import Invite
from ..storage import pii
from ..storage.rows import CallRow
from .keys import InbandKeys
from .media import PcmSource, Tap, ringback, tone
from .pbxleg import announce, bridge, invite_options, relay_digit, silence, whisper_prompt
from .player import PromptPlayer, played
from .prompts import MENU
from .session import CallServices, Session, masked

log = logging.getLogger(__name__)


class Leg(pj.Call):
    """A pjsua2 call that reports to its session. Holds no logic of its own."""

    def __init__(
        self, account: pj.Account, session: CallSession, role: str, call_id: int = pj.PJSUA_INVALID_ID
    ):
        super().__init__(account, call_id)
        self.session = session
        self.role = role  # "caller" or "pbx"
        self.audio: pj.AudioMedia | None = None
        self.connected = False
        self.disconnected = False
        self.remote_hold = False

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        if self.session is None:  # the session is over; a late callback has nothing to tell
            return
        ci = self.getInfo()
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.connected = True
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True
            self.audio = None  # invalid from now on
        self.session.on_leg_state(self, ci.state, ci.lastStatusCode, ci.lastReason)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        if self.session is None:
            return
        ci = self.getInfo()
        for i, mi in enumerate(ci.media):
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status in (
                pj.PJSUA_CALL_MEDIA_ACTIVE,
                pj.PJSUA_CALL_MEDIA_REMOTE_HOLD,
                pj.PJSUA_CALL_MEDIA_LOCAL_HOLD,
            ):
                # A re-INVITE rebuilds the stream: this AudioMedia replaces the old one.
                self.audio = self.getAudioMedia(i)
                held = mi.status == pj.PJSUA_CALL_MEDIA_REMOTE_HOLD
                changed, self.remote_hold = held != self.remote_hold, held
                self.session.on_leg_media(
                    self, hold_changed=changed and mi.status != pj.PJSUA_CALL_MEDIA_LOCAL_HOLD
                )
                return

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        if self.session is not None:
            via = DtmfMethod.INFO if prm.method == pj.PJSUA_DTMF_METHOD_SIP_INFO else DtmfMethod.RFC4733
            self.session.on_digit(self, prm.digit, via)


class SequenceMatcher:
    """Recognises short key sequences (like *1) in a stream of digits, with a timeout."""

    def __init__(self, sequences: dict[str, str], timeout_s: float = 3.0) -> None:
        self.sequences = sequences  # sequence -> name
        self.timeout_s = timeout_s
        self._buf = ""
        self._t = 0.0

    def feed(self, digit: str, t: float) -> str | None:
        if self._buf and t - self._t > self.timeout_s:
            self._buf = ""
        longest = max((len(s) for s in self.sequences), default=1)
        self._buf = (self._buf + digit)[-longest:]
        self._t = t
        for seq, name in self.sequences.items():
            if self._buf.endswith(seq):
                self._buf = ""
                return name
        return None


class CallSession(Session):
    def __init__(
        self,
        services: CallServices,
        call_id: str,
        invite: Invite,
        route: Route,
        caller_leg_id: int,
        on_ended: Callable[[CallSession], None],
    ) -> None:
        super().__init__(services, call_id, route, CallState.NOTICE, on_ended)
        self.invite = invite
        self.mode = Mode(route.mode)
        cfg = services.config
        self.prompts = services.prompts_for(route)
        # The notice's language: the trunk's header if it names one we can speak, else a menu
        # if the route has one (its default until a key or the timeout says), else the route's.
        self.language, self.chosen_by = route.language, LanguageChoice.FIXED
        offered = list(route.languages) or sorted(self.prompts.complete_languages())
        if route.language_header:
            named = language_from_header(invite.headers.get(route.language_header.lower(), ""), offered)
            if named is not None:
                self.language, self.chosen_by = named, LanguageChoice.HEADER
        self.menu_keys = (
            self.prompts.menu_keys(list(route.languages))
            if route.languages and self.chosen_by is LanguageChoice.FIXED
            else {}
        )
        if self.menu_keys:
            self.state, self.chosen_by = CallState.MENU, LanguageChoice.PENDING
        self.menu_key: str | None = None
        self._menu_next = 0
        self._menu_started = False
        self._machine_for(self.language, 0.0)
        self.once = OnceOnly()  # a key that arrives as an event and as tones counts once
        self.helpline_keys = SequenceMatcher(
            {cfg.calls.pause_sequence: "pause", cfg.calls.resume_sequence: "resume"}
        )
        self.caller = Leg(services.account, self, "caller", caller_leg_id)
        self.pbx: Leg | None = None
        self.slot = services.take_slot()
        self.source: PcmSource = self.slot.source
        self.taps: list[Tap] = []  # the slot's taps, once recording starts
        # What the caller hears (prompt player) and the keys heard as tones (key listener).
        self.player = PromptPlayer(self.source, self.prompts, lambda: self.caller.audio)
        self.keys = InbandKeys(self.slot.taps, services.clock_rate, self._leg_audio)
        if route.dtmf.listens_inband:
            for channel in (0, 1):
                self._listen(channel)
        self.notice_played_bytes = 0
        self._poll: asyncio.Task[None] | None = None
        self._dial_when_confirmed = False
        self._notice_started = False

    # -- helpers ----------------------------------------------------------------------------

    def _machine_for(self, language: str, at: float) -> None:
        """The consent machine for the notice in `language`, which starts `at` s after answer."""
        cfg = self.services.config
        self.notice = self.prompts.get(f"notice-{self.route.mode}", language)
        self.machine = ConsentMachine(
            self.mode,
            self.notice.duration_s,
            cfg.consent.grace_s,
            cfg.consent.decline_key,
            cfg.consent.accept_key,
            cfg.calls.withdraw_sequence,
            notice_at=round(at, 3),
        )

    def play(
        self,
        prompt_id: str | None,
        then: Callable[[], None] | None = None,
        *,
        pcm: bytes | None = None,
        loop: bool = False,
        language: str | None = None,
    ) -> None:
        """Play a prompt (or raw PCM) to the caller; call `then` when it has finished. A prompt
        is in the call's language unless `language` says otherwise."""
        self.player.play(prompt_id, then, language=language or self.language, pcm=pcm, loop=loop)

    def stop_playing(self) -> None:
        self.player.stop()

    async def _poll_clips(self) -> None:
        """Notice the end of a clip (set on the clock thread) from the loop: every 20 ms while a
        clip has something to do when it ends, not at all otherwise (a bridged call wakes this
        task once a second, not 50 times); and report recording progress once a second."""
        loop = self.loop
        next_progress = loop.time() + 1.0
        while not self.ended:
            await self.player.wait(next_progress - loop.time())
            if self.ended:
                break
            progress_due = loop.time() >= next_progress
            if progress_due:
                next_progress = loop.time() + 1.0
            if progress_due and self.recorder is not None and self.recording_state.live:
                self.emit(
                    EventType.CALL_PROGRESS,
                    bytes_sealed=self.recorder.stats.bytes_sealed,
                    duration_s=round(self.recorder.duration_s, 1),
                    frames_overflowed=self.recorder.stats.frames_overflowed,
                )
            then = self.player.finished()
            if then is not None:
                self._guard(then)()

    # -- start -------------------------------------------------------------------------------

    def start(self) -> None:
        sv = self.services
        number = self.invite.caller.number
        sv.index.add_call(
            CallRow(
                self.id,
                self.answered_at,
                route=self.route.number,
                tenant=self.tenant.stored,
                caller_enc=pii.seal_value(number, self.tenant.sealing) if number else None,
            )
        )
        prm = pj.CallOpParam()
        prm.statusCode = 200
        try:
            self.caller.answer(prm)
        except pj.Error as e:  # no common codec, or an SDP pjsua cannot answer
            log.warning("call %s: cannot answer (%s); 488", self.id, e.reason)
            self.hangup_all(488, "not acceptable here")
            return
        self._poll = self.loop.create_task(self._poll_clips())
        self.later(sv.config.calls.max_duration_s, lambda: self.hangup_all(200, "maximum call duration"))
        self.later(sv.config.calls.ack_timeout_s, self._ack_deadline)
        self.emit(
            EventType.CALL_STARTED,
            state=self.state,
            route=self.route.number,
            mode=self.route.mode,
            caller_display=self.invite.caller.display,
            language=self.language,  # with a menu: its default, until the caller chooses
            language_by=self.chosen_by.value,
            caller_masked=masked(number),
        )

    # -- pjsua events --------------------------------------------------------------------------

    def on_leg_media(self, leg: Leg, hold_changed: bool = False) -> None:
        if leg is self.caller and self.keys.listening(0) and leg.audio is not None:
            leg.audio.startTransmit(self.slot.taps[0])  # the caller's keys, from the notice on
        if leg is self.caller and self.state == CallState.MENU:
            if not self._menu_started:
                self._menu_started = True
                self._menu_option()
            else:
                self.player.connect()
        if (
            leg is self.caller
            and self.state in (CallState.NOTICE, CallState.DECIDING)
            and self.machine.state is ConsentStep.NOTICE
        ):
            if not self._notice_started:
                self._begin_notice()
            else:
                self.player.connect()
        if self.state == CallState.BRIDGED:
            self._connect_media()  # a re-INVITE rebuilt the stream: reconnect bridge and taps
            if hold_changed:
                self.loop.call_soon(self._guard(lambda: self._mirror_hold(leg)))

    def _mirror_hold(self, leg: Leg) -> None:
        """Pass a hold or unhold from one leg on to the other (as a re-INVITE)."""
        other = self.pbx if leg is self.caller else self.caller
        if other is None or other.disconnected or not other.connected:
            return
        prm = pj.CallOpParam(True)
        try:
            if leg.remote_hold:
                other.setHold(prm)
            else:
                prm.opt.flag = pj.PJSUA_CALL_UNHOLD
                other.reinvite(prm)
        except pj.Error as e:
            log.warning("call %s: hold pass-through failed: %s", self.id, e.reason)
        self.emit(EventType.CALL_HOLD, leg=leg.role, held=leg.remote_hold)

    def on_leg_state(self, leg: Leg, state: int, code: int, reason: str) -> None:
        if state != pj.PJSIP_INV_STATE_DISCONNECTED:
            if leg is self.pbx and state == pj.PJSIP_INV_STATE_CONFIRMED:
                self.loop.call_soon(self._guard(self._pbx_answered))
            if leg is self.caller and state == pj.PJSIP_INV_STATE_CONFIRMED and self._dial_when_confirmed:
                self._dial_when_confirmed = False
                self.loop.call_soon(self._guard(self._dial_pbx))
            return
        if leg is self.caller:
            self.loop.call_soon(self._guard(lambda: self._caller_gone(code)))
        elif leg is self.pbx:
            self.loop.call_soon(self._guard(lambda: self._pbx_gone(code, reason)))

    def on_digit(self, leg: Leg, digit: str, via: DtmfMethod) -> None:
        t = self.t()
        self.loop.call_soon(self._guard(lambda: self._digit_from(leg, digit, via, t)))

    # -- in-band keys ------------------------------------------------------------------------

    def _leg_audio(self, channel: int) -> pj.AudioMedia | None:
        leg = self.caller if channel == 0 else self.pbx
        return leg.audio if leg is not None else None

    def _listen(self, channel: int) -> None:
        self.keys.listen(channel, connect=channel == 0 or self.state == CallState.BRIDGED)

    def _stop_listening(self, channel: int) -> None:
        self.keys.stop(channel)

    def _update_listening(self) -> None:
        """Listen only while a key can still matter: the caller's until the decision (and,
        when granted, for the withdrawal sequence until withdrawn), the helpline's while a
        recording runs (its pause and resume keys)."""
        m = self.machine
        caller_matters = m.state is ConsentStep.NOTICE or (
            m.decision is Decision.GRANTED and m.state is ConsentStep.DECIDED
        )
        if not caller_matters:
            self._stop_listening(0)
        if self.state == CallState.ENDED or (
            self.state == CallState.BRIDGED and not self.recording_state.live
        ):
            self._stop_listening(1)

    @property
    def listening_inband(self) -> bool:
        return self.keys.listening() and not self.ended

    def poll_inband(self) -> None:
        """Run the tone detector over the audio the taps queued since the last turn (called
        by the worker's loop every INBAND_POLL_S, on its thread)."""
        if not self.keys.listening() or self.ended:
            return
        for channel, digit, t in self.keys.drain(self.t()):
            leg = self.caller if channel == 0 else self.pbx
            if leg is not None and not self.ended:
                try:
                    self._digit_from(leg, digit, DtmfMethod.INBAND, t)
                except Exception:
                    log.exception("call %s: in-band key handling failed", self.id)
                    self.hangup_all(500)

    def _digit_from(self, leg: Leg, digit: str, via: DtmfMethod, t: float) -> None:
        if not self.route.dtmf.accepts(via):
            log.debug("call %s: %s key ignored (route takes %s)", self.id, via, self.route.dtmf)
            return
        if not self.once.first(leg.role, digit, via, t):
            return  # the same press, seen a second way
        if via is not DtmfMethod.INBAND and self.route.dtmf is DtmfMethod.AUTO:
            self._stop_listening(0 if leg is self.caller else 1)  # this leg sends events: no tones needed
        self._digit(leg, digit, via, t)

    # -- flow --------------------------------------------------------------------------------

    def _begin_notice(self) -> None:
        self._notice_started = True
        self.play(self.notice.id, self._notice_done)
        self.later(
            self.machine.notice_at + self.machine.notice_s + self.machine.grace_s + 0.05 - self.t(),
            self._deadline,
        )

    def _menu_option(self) -> None:
        """The menu's next option, each in its own language; after the last, the timeout."""
        if self.state != CallState.MENU:
            return
        languages = self.route.languages
        if self._menu_next < len(languages):
            lang = languages[self._menu_next]
            self._menu_next += 1
            self.play(MENU, self._menu_option, language=lang)
        else:
            self.later(self.services.config.consent.menu_timeout_s, self._menu_timeout)

    def _menu_timeout(self) -> None:
        if self.state == CallState.MENU:
            self._choose_language(self.route.language, LanguageChoice.MENU_TIMEOUT)

    def _choose_language(self, language: str, how: LanguageChoice, key: str | None = None) -> None:
        self.stop_playing()
        self.language, self.chosen_by, self.menu_key = language, how, key
        self._machine_for(language, self.t())
        self.set_state(CallState.NOTICE, language=language)
        self._begin_notice()

    def _notice_done(self) -> None:
        self._note_notice_progress()
        if self.state == CallState.NOTICE and self.machine.decision is None:
            self.set_state(CallState.DECIDING)  # the grace period: silence will count as the answer

    def _note_notice_progress(self) -> None:
        """Remember how much of the notice went out, while the notice is still the clip playing."""
        progress = self.player.progress_of(self.notice.id)
        if progress is not None:
            self.notice_played_bytes = progress

    def _deadline(self) -> None:
        self._apply(self.machine.on_tick(self.t()))

    def _digit(self, leg: Leg, digit: str, via: DtmfMethod, t: float) -> None:
        self.emit(EventType.CALL_DIGIT, leg=leg.role, t=round(t, 3), via=via)
        if leg is self.caller and self.state == CallState.MENU:
            if digit in self.menu_keys:  # any other key in the menu means nothing
                self._choose_language(self.menu_keys[digit], LanguageChoice.MENU, digit)
            return
        if leg is self.caller:
            # Tones already reach the helpline in the bridged audio; events are relayed.
            if (
                via is not DtmfMethod.INBAND
                and self.state == CallState.BRIDGED
                and self.pbx is not None
                and self.pbx.audio is not None
            ):
                self._relay(digit)
            self._apply(self.machine.on_digit(digit, t, via.value))
            self._update_listening()
        elif self.state == CallState.BRIDGED:
            action = self.helpline_keys.feed(digit, t)
            if action and self.recorder is not None and self.recording_state.live:
                getattr(self.recorder, action)()
                self.services.recordings.controlled(self.recording_id, self.id, action, "helpline")
                self.set_recording(RecordingState.PAUSED if action == "pause" else RecordingState.RECORDING)

    def control(self, op: str, actor: str) -> str | None:
        """A supervisor's action on this call's recording (from the dashboard): pause, resume,
        or stop (what is recorded so far is kept and sealed; nothing more is recorded for this
        call). Audited with the actor's name. Returns None, or why it was refused."""
        if self.ended or self.state != CallState.BRIDGED:
            return f"the call is not bridged (it is {self.state})"
        if self.recorder is None or not self.recording_state.live:
            return f"nothing is being recorded (recording: {self.recording_state})"
        if op == "pause" and self.recording_state == RecordingState.PAUSED:
            return "the recording is already paused"
        if op == "resume" and self.recording_state == RecordingState.RECORDING:
            return "the recording is not paused"
        if op == "stop":
            self._stop_taps()
            self.recorder.finish()
            new = RecordingState.STOPPED  # a "saved" (or "incomplete") event follows
        else:
            getattr(self.recorder, op)()
            new = RecordingState.PAUSED if op == "pause" else RecordingState.RECORDING
        self.services.recordings.controlled(self.recording_id, self.id, op, actor)
        log.info(
            "call %s: recording %s by a supervisor",
            self.id,
            {"pause": "paused", "resume": "resumed"}.get(op, "stopped"),
        )
        self.set_recording(new, by=actor)
        return None

    def _relay(self, digit: str) -> None:
        assert self.pbx is not None
        relay_digit(self.pbx, digit, self.id)

    def _apply(self, actions: list[Any]) -> None:
        for a in actions:
            if isinstance(a, StopNotice):
                self._note_notice_progress()  # before the stop: a stopped source forgets its clip
                self.stop_playing()
            elif isinstance(a, Decide):
                self._decided(a)
            elif isinstance(a, Confirm):
                self.play(f"confirm-{a.decision}", self._after_confirmation)
            elif isinstance(a, Withdraw):
                self._withdraw()
        if actions:
            self._update_listening()

    def _decided(self, d: Decide) -> None:
        self._note_notice_progress()
        self._record_decision(d)
        if self.caller.connected:
            self._dial_pbx()
        else:  # the caller has not ACKed our 200 yet: nobody at the helpline should ring for them
            self._dial_when_confirmed = True

    def _after_confirmation(self) -> None:
        if self.state == CallState.DIALLING:
            self.play(None, pcm=ringback(self.services.clock_rate), loop=True)
        elif self.state == CallState.BRIDGED:
            self.stop_playing()

    def _dial_pbx(self) -> None:
        self.set_state(CallState.DIALLING)
        # Ringback while the PBX rings; a confirmation prompt, if any, replaces it and hands back.
        self.play(None, pcm=ringback(self.services.clock_rate), loop=True)
        consent = "granted" if self.machine.decision is Decision.GRANTED else "declined"
        prm = invite_options(self.invite, self.id, consent, self.language, self.services.host)
        self.pbx = Leg(self.services.pbx_account_for(self.route.pbx), self, "pbx")
        try:
            self.pbx.makeCall(self.route.pbx, prm)
        except pj.Error as e:
            log.error("call %s: cannot dial %s: %s", self.id, self.route.pbx, e.info())
            self.pbx = None  # never left for the collector after libDestroy (see NOTES)
            self._unavailable("PBX unreachable")
            return
        self.later(self.services.config.calls.pbx_timeout_s, self._pbx_timeout)

    def _pbx_timeout(self) -> None:
        if self.state == CallState.DIALLING:
            self._hangup_leg(self.pbx, 487)
            self._unavailable("PBX did not answer")

    def _pbx_answered(self) -> None:
        if self.state != CallState.DIALLING:
            return
        if self.route.whisper and self.pbx is not None and self.pbx.audio is not None:
            self._whisper()
        else:
            self._bridge()

    def _whisper(self) -> None:
        """Tell the helpline, in its language, whether this call is recorded; then bridge.
        The caller hears ringback meanwhile."""
        assert self.pbx is not None and self.pbx.audio is not None
        pid = whisper_prompt(self.machine.recording_allowed, self.services.recordings.enabled)
        prompt = self.prompts.get(pid, self.route.helpline_language)
        announce(self.slot.aux, prompt.pcm, prompt.id, self.pbx.audio)
        log.info("call %s: %s to the helpline (%s)", self.id, pid, prompt.language)
        self.emit(EventType.CALL_WHISPER, prompt=pid, helpline_language=prompt.language)

        def done() -> None:
            self._stop_aux()
            if self.state == CallState.DIALLING:
                self._bridge()

        self.later(prompt.duration_s + 0.1, done)

    def _stop_aux(self) -> None:
        silence(self.slot.aux, *(leg.audio for leg in (self.caller, self.pbx) if leg is not None))

    def _bridge(self) -> None:
        self.stop_playing()
        if self.machine.recording_allowed:
            self._start_recording()
        self.set_state(CallState.BRIDGED)
        self._connect_media()
        if self.route.beep_interval_s and self.recording_state == RecordingState.RECORDING:
            self.later(self.route.beep_interval_s, self._beep)

    BEEP_HZ, BEEP_S = 1400.0, 0.25

    def _beep(self) -> None:
        """A short beep into both legs while the call is recorded (paused: no beep), and the
        next one after the route's interval."""
        if self.state != CallState.BRIDGED or not self.recording_state.live:
            return
        if (
            self.recording_state == RecordingState.RECORDING
            and self.caller.audio
            and self.pbx
            and self.pbx.audio
        ):
            beep = tone(self.BEEP_HZ, self.BEEP_S, self.services.clock_rate, 0.25)
            announce(self.slot.aux, beep, "beep", self.caller.audio, self.pbx.audio)
            self.later(self.BEEP_S + 0.05, self._stop_aux)
        self.later(self.route.beep_interval_s, self._beep)

    def _connect_media(self) -> None:
        if self.caller.audio is None or self.pbx is None or self.pbx.audio is None:
            return
        bridge(self.caller.audio, self.pbx.audio, (self.slot.taps[0], self.slot.taps[1]), bool(self.taps))

    def _start_recording(self) -> None:
        started = self.services.recordings.start(
            self.id,
            route=self.route.number,
            retention_days=self.route.retention_days,
            tenant=self.tenant,
            receipt=self._receipt(),
        )
        if started is None:
            self.set_recording(RecordingState.INCOMPLETE, error="recording could not start")
            return
        self.taps = self.slot.taps
        self._recording_began(started, self.taps)

    def _stop_taps(self) -> None:
        for tap in self.taps:
            tap.recorder = None
        for leg, tap in zip((self.caller, self.pbx), self.taps, strict=False):
            if leg is not None and leg.audio is not None and tap.inband is None:
                try:
                    leg.audio.stopTransmit(tap)
                except pj.Error:
                    pass

    def _unavailable(self, why: str) -> None:
        self.set_state(CallState.UNAVAILABLE)
        self.emit(EventType.CALL_FAILED, reason=why)
        self.play("unavailable", lambda: self.hangup_all(200, why))

    def _pbx_gone(self, code: int, reason: str) -> None:
        if self.state == CallState.DIALLING:
            self._unavailable(f"PBX answered {code} {reason}")
        elif self.state == CallState.BRIDGED:
            self.hangup_all(200, "helpline hung up")

    def _caller_gone(self, code: int) -> None:
        self._apply(self.machine.on_hangup(self.t()))
        self.hangup_all(200, "caller hung up")

    # -- end ---------------------------------------------------------------------------------

    def _ack_deadline(self) -> None:
        """Our 200 OK has gone unconfirmed for [calls] ack_timeout_s: a real caller ACKs within a
        second. Without this the call would hold a worker slot until pjsip gives up (Timer H,
        32 s), and a burst of such INVITEs would push real calls into fail-open."""
        if not self.ended and not self.caller.connected:
            log.warning("call %s: the caller never confirmed the answer (no ACK); ended", self.id)
            self.hangup_all(408, "no ACK from the caller")

    def hangup_all(self, code: int = 200, why: str = "") -> None:
        if not self._ending():
            return
        self._note_notice_progress()
        self.stop_playing()
        for channel in (0, 1):
            self._stop_listening(channel)
        self._stop_taps()
        self._hangup_leg(self.pbx, 487 if self.pbx is not None and not self.pbx.connected else code)
        self._hangup_leg(self.caller, code)
        self._ended(why)

    def _receipt(self, ended_at: str | None = None) -> dict[str, Any]:
        prompt = played(self.notice, self.notice_played_bytes)
        return rc.build(
            self.machine,
            call_id=self.id,
            route=self.route.number,
            prompt=prompt,
            answered_at=self.answered_at,
            decided_at=self.decided_at,
            ended_at=ended_at,
            language=rc.LanguageUsed(
                self.language,
                self.chosen_by.value,
                list(self.route.languages),
                self.menu_key,
            ),
            heard=self.player.heard_so_far(),
        )

    def destroy(self) -> None:
        """Drop the call's pjsua2 objects and give its media slot back; called on the pjsua
        thread once both legs are disconnected."""
        if self._poll is not None:
            self._poll.cancel()
        self.taps = []
        self.services.give_slot(self.slot)
        # A pjsua2 Call keeps its Python object alive while pjsua holds the call: cut every path
        # from the legs to the slot's ports, or the ports outlive the bridge and abort at exit.
        for leg in (self.caller, self.pbx):
            if leg is not None:
                leg.session = None  # type: ignore[assignment]
        self.slot = None  # type: ignore[assignment]
        self.source = None  # type: ignore[assignment]
        self.player.release()
        self.keys.release()
        self.caller = None  # type: ignore[assignment]
        self.pbx = None
