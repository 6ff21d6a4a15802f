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

from .. import age
from ..callevents import CallState, ConsentState, EventType, RecordingState
from ..config import Config, Route
from ..consent.machine import ConsentMachine
from ..recording.service import RecordingService
from ..storage.index import Index
from .dtmf import ToneDetector
from .media import MediaSlot
from .prompts import PromptSet

log = logging.getLogger(__name__)


@dataclass
class CallServices:
    """What a call uses of the process that runs it (the worker builds one)."""

    config: Config
    index: Index
    recordings: RecordingService
    recipients: list[age.Recipient]
    account: pj.Account  # the pjsua2 account of the caller's leg (its SRTP policy)
    pbx_account: pj.Account  # the account the helpline leg is dialled from (its SRTP policy)
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


class Session:
    """The parts of a call's life that do not depend on its kind. A subclass sets the
    attributes below in its __init__ and defines hangup_all and _update_listening."""

    KIND = "call"  # in log lines
    id: str
    services: CallServices
    loop: asyncio.AbstractEventLoop
    machine: ConsentMachine
    state: CallState
    recording_state: RecordingState
    answered_mono: float
    ended: bool
    _timers: list[asyncio.TimerHandle]

    def hangup_all(self, code: int = 200, why: str = "") -> None:
        raise NotImplementedError

    def _update_listening(self) -> None:
        raise NotImplementedError

    def t(self) -> float:
        return time.monotonic() - self.answered_mono

    def emit(self, kind: EventType, **fields: Any) -> None:
        self.services.publish({"type": kind, "call": self.id, **fields})

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
        if self.machine.state.value == "withdrawn":
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
