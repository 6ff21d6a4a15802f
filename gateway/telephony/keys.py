"""A call's keys heard as tones: each leg's audio goes from its tap to a tone detector for as
long as a key on that leg can still matter (the caller's until the decision, the helpline's
while a recording runs), and not a moment longer."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import pjsua2 as pj

from ..sip.tones import ToneDetector
from .media import Tap
from .session import InbandListener

LegAudio = Callable[[int], "pj.AudioMedia | None"]  # channel (0 caller, 1 helpline) -> its audio


class InbandKeys:
    def __init__(self, taps: list[Tap], clock_rate: int, leg_audio: LegAudio) -> None:
        self.taps = taps
        self.rate = clock_rate
        self._leg_audio = leg_audio
        self._listeners: dict[int, InbandListener] = {}  # by tap channel: 0 caller, 1 helpline

    def listen(self, channel: int, connect: bool) -> None:
        """Start detecting keys on `channel`; `connect`: its leg's audio flows to the tap now."""
        tap = self.taps[channel]
        listener = InbandListener(deque(maxlen=100), ToneDetector(self.rate), rate=self.rate)
        self._listeners[channel] = listener
        tap.inband = listener.queue
        audio = self._leg_audio(channel)
        if connect and audio is not None:
            audio.startTransmit(tap)

    def stop(self, channel: int) -> None:
        if self._listeners.pop(channel, None) is None:
            return
        tap = self.taps[channel]
        tap.inband = None
        audio = self._leg_audio(channel)
        if tap.recorder is None and audio is not None:  # a recording still needs the tap
            try:
                audio.stopTransmit(tap)
            except pj.Error:
                pass

    def listening(self, channel: int | None = None) -> bool:
        return bool(self._listeners) if channel is None else channel in self._listeners

    def drain(self, now: float) -> list[tuple[int, str, float]]:
        """The keys in the audio queued since the last turn: (channel, key, time it began)."""
        found = []
        for channel, listener in list(self._listeners.items()):
            if listener.queue:
                found += [(channel, digit, t) for digit, t in listener.drain(now)]
        return found

    def release(self) -> None:
        """The call is gone: no path from here to the slot's ports or to the call remains
        (ports that outlive pjsua's conference bridge abort the process at exit)."""
        self._listeners.clear()
        self.taps = []
        self._leg_audio = _no_audio


def _no_audio(channel: int) -> None:
    return None
