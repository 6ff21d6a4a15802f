"""What a call through the gateway (call.py) and a SIPREC recording session (recsession.py)
share: the services of the worker that runs them, the clock since answer, their events, guarded
timers, the in-band key listener, and their states as the dashboard sees them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pjsua2 as pj

from ..app.recordings import RecordingService
from ..callevents import CallState, ConsentState, EventType, RecordingState
from ..config import Config, Route
from ..consent.machine import ConsentMachine, Decide
from ..consent.machine import State as ConsentStep
from ..sip.tones import ToneDetector
from ..storage.index import Index
from ..storage.rows import RecordingStatus, utcnow
from .media import MediaSlot
from .prompts import PromptSet

log = logging.getLogger(__name__)


@dataclass
class CallServices:
    """What a call uses of the process that runs it (the worker builds one)."""

    config: Config
    index: Index
    recordings: RecordingService
    account: pj.Account  # the pjsua2 account of the caller's leg (its SRTP policy)
    # The account a helpline leg to this PBX URI is dialled from (its SRTP policy, its transport).
    pbx_account_for: Callable[[str], pj.Account]
    host: str  # the address the PBX sees calls come from
    clock_rate: int
    prompts_for: Callable[[Route], PromptSet]
    publish: Callable[[dict[str, Any]], None]  # one event onto the worker's event stream
    take_slot: Callable[[], MediaSlot]
    give_slot: Callable[[MediaSlot], None]


@dataclass
class InbandListener:
    """One leg's audio on its way to the tone detector: filled by the leg's tap on the clock
    thread, drained on the loop's thread."""

    queue: deque[bytes]
    detector: ToneDetector
    fed_s: float = 0.0  # seconds of audio the detector has had
    rate: int = field(default=8000)

    def drain(self, now: float) -> list[tuple[str, float]]:
        """The keys in the audio queued since the last turn, each with the time (seconds since
        answer; `now` is the time at the end of the queued audio) its tone began."""
        chunks = []
        while self.queue:
            chunks.append(self.queue.popleft())
        pcm = b"".join(chunks)
        found = self.detector.feed(pcm)
        self.fed_s += len(pcm) / 2 / self.rate
        return [(digit, now - (self.fed_s - onset)) for digit, onset in found]


def masked(number: str) -> str:
    """A caller's number as events and the dashboard show it: its last three digits."""
    return ("*" * max(0, len(number) - 3) + number[-3:]) if number else ""


class Session:
    """The parts of a call's life that do not depend on its kind. A subclass makes its consent
    `machine` in its __init__ and defines hangup_all, _update_listening, _stop_taps and
    _receipt."""

    KIND = "call"  # in log lines
    LEGS = 2  # pjsua call legs it holds: the caller's and the helpline's
    machine: ConsentMachine  # the subclass makes it

    def __init__(
        self,
        services: CallServices,
        session_id: str,
        route: Route,
        state: CallState,
        on_ended: Callable[[Any], None],
    ) -> None:
        """Answered now (on the loop's thread, in pjsua's incoming-call callback)."""
        self.services = services
        self.id = session_id
        self.route = route
        # Whose keys its recording and its caller's number are sealed to (config/tenants.py).
        self.tenant = services.config.tenant_of(route)
        self.on_ended = on_ended
        self.loop = asyncio.get_running_loop()
        self.state = state
        self.recording_state = RecordingState.NONE
        self.answered_mono = time.monotonic()
        self.answered_at = utcnow()
        self.decided_at: str | None = None
        self.ended = False
        self._timers: list[asyncio.TimerHandle] = []
        self.recording_id: str | None = None
        self.recorder: Any = None

    def hangup_all(self, code: int = 200, why: str = "") -> None:
        raise NotImplementedError

    @property
    def listening_inband(self) -> bool:
        """Whether a leg's audio is queued for the tone detector: the worker then polls it
        every INBAND_POLL_S."""
        raise NotImplementedError

    def poll_inband(self) -> None:
        raise NotImplementedError

    def _update_listening(self) -> None:
        raise NotImplementedError

    @staticmethod
    def _hangup_leg(leg: Any, code: int) -> None:
        """Hang up one pjsua2 call (a caller or helpline leg, a recording dialog) unless it is
        already gone; an error from pjsua means it is on its way out anyway."""
        if leg is None or leg.disconnected:
            return
        prm = pj.CallOpParam()
        prm.statusCode = code
        try:
            leg.hangup(prm)
        except pj.Error:
            pass

    def _stop_taps(self) -> None:
        """No more audio to the recorder (the in-band listener may still hear the leg)."""
        raise NotImplementedError

    def _receipt(self, ended_at: str | None = None) -> dict[str, Any]:
        raise NotImplementedError

    # -- consent and recording, the same for every kind -----------------------------------------

    def _record_decision(self, d: Decide) -> None:
        """The decision, provable: the receipt stored, its digest in the audit log, and the
        event on the stream."""
        self.decided_at = utcnow()
        receipt = self._receipt()
        self.services.recordings.consent_decided(self.id, receipt, d.decision.value, d.reason)
        self.emit(EventType.CALL_CONSENT, consent=d.decision.value, reason=d.reason)

    def _recording_began(self, started: tuple[str, Any], taps: list[Any]) -> None:
        """A recorder the recording service started: `taps` feed it from now on, and its end
        (finished, discarded or failed) comes back to the loop."""
        self.recording_id, self.recorder = started
        for tap in taps:
            tap.recorder = self.recorder
        self.recorder.done.add_done_callback(
            lambda fut: self.loop.call_soon_threadsafe(self._recording_over, fut.result())
        )
        self.set_recording(RecordingState.RECORDING, recording_id=self.recording_id)

    def _recording_over(self, result: Any) -> None:
        """The recorder has finished, been discarded, or failed (storage) while the call goes on."""
        if result.status == RecordingStatus.INCOMPLETE:
            self._stop_taps()
            self.set_recording(RecordingState.INCOMPLETE, error=result.error, bytes_sealed=result.bytes)
        elif result.status == RecordingStatus.COMPLETE:
            self.set_recording(
                RecordingState.SAVED, bytes_sealed=result.bytes, duration_s=round(result.duration_s, 2)
            )

    def _ending(self) -> bool:
        """The first step of hangup_all: False if the call has already ended, else it is marked
        ended and its timers cancelled."""
        if self.ended:
            return False
        self.ended = True
        for timer in self._timers:
            timer.cancel()
        return True

    def _ended(self, why: str) -> None:
        """The last steps of hangup_all, once the taps are stopped and the legs hung up: the
        recording finalised (a "saved" or "incomplete" event follows, after "ended"), the end
        and the final receipt in the index, the state published, the worker told."""
        if self.recorder is not None and self.recording_state.live:
            self.recorder.finish()
            self.recording_state = RecordingState.SAVING
        if self.recording_id:
            self.services.recordings.call_over(self.recording_id)
        ended_at = utcnow()
        self.services.index.end_call(self.id, ended_at)
        self.services.index.put_consent_receipt(self.id, self._receipt(ended_at))
        self.set_state(CallState.ENDED, reason=why)
        self.on_ended(self)

    def _withdraw(self) -> None:
        """`*9` after a grant: the recording stops and is deleted, the receipt and the audit log
        say so; the call goes on."""
        self._stop_taps()
        if self.recorder is not None and self.recording_id:
            # Deleted whether it still runs or had already ended (a supervisor's stop).
            self.services.recordings.withdraw(self.recording_id, self.recorder)
        self.services.recordings.consent_withdrawn(self.id, self._receipt(), self.recording_id)
        self.emit(EventType.CALL_CONSENT, consent=ConsentState.WITHDRAWN)
        self.set_recording(RecordingState.DISCARDED if self.recorder is not None else RecordingState.NONE)

    def t(self) -> float:
        return time.monotonic() - self.answered_mono

    def emit(self, kind: EventType, **fields: Any) -> None:
        # Every event names the call's tenant (when there are tenants): whoever shows or relays
        # it scopes by it, whatever event of the call it sees first.
        tenant = {"tenant": self.tenant.name} if self.tenant.name else {}
        self.services.publish({"type": kind, "call": self.id, **tenant, **fields})

    def set_state(self, new: CallState, **fields: Any) -> None:
        """The one place a call changes state: logged, and published as call.state."""
        if new != self.state:
            log.info("%s %s: %s -> %s", self.KIND, self.id, self.state, new)
            self.state = new
            self.emit(
                EventType.CALL_STATE,
                state=new,
                consent=self.consent_state,
                recording=self.recording_state,
                **fields,
            )
            self._update_listening()

    def set_recording(self, new: RecordingState, **fields: Any) -> None:
        """The one place the recording's state changes: published as call.recording (with
        `fields`: who did it, bytes sealed, an error)."""
        self.recording_state = new
        self.emit(EventType.CALL_RECORDING, recording=new, **fields)
        self._update_listening()

    @property
    def consent_state(self) -> ConsentState:
        if self.machine.state is ConsentStep.WITHDRAWN:
            return ConsentState.WITHDRAWN
        return ConsentState(self.machine.decision.value) if self.machine.decision else ConsentState.PENDING

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        self._timers.append(self.loop.call_later(delay, self._guard(fn)))

    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        """`fn`, run only while the call lasts; a failure in it ends the call (500), never the
        worker."""

        def run() -> None:
            if not self.ended:
                try:
                    fn()
                except Exception:
                    log.exception("%s %s: handler failed", self.KIND, self.id)
                    self.hangup_all(500)

        return run
