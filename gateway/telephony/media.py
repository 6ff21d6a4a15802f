"""pjsua2 media ports: a PCM source playing from memory, and the recording tap.

Both callbacks run on pjmedia's clock thread, which mixes the whole conference bridge: they
copy bytes and return. No I/O, no locks, no logging. The first callback on a clock thread keeps
that thread's Python thread state (osthreads.keep_thread_state): without it, every callback
created and deleted one.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import math
import time
from array import array
from collections import deque
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

from ..osthreads import keep_thread_state
from ..recording.frameclock import FrameClock

log = logging.getLogger(__name__)


def audio_format(rate: int, ptime_ms: int = 20) -> pj.MediaFormatAudio:
    fmt = pj.MediaFormatAudio()
    fmt.init(pj.PJMEDIA_FORMAT_PCM, rate, 1, ptime_ms * 1000, 16)
    return fmt


TELEPHONY_CODECS = ("PCMA/8000/1", "PCMU/8000/1", "G722/16000/1")


def prefer_g711(ep: pj.Endpoint) -> None:
    """Offer G.711 (and G.722) only, in that order: what trunks and PBXs speak."""
    for info in ep.codecEnum2():
        ep.codecSetPriority(info.codecId, 0)
    for prio, codec in zip((255, 254, 253), TELEPHONY_CODECS, strict=True):
        ep.codecSetPriority(codec, prio)


def _vector_bytes_fast(vec: Any) -> bytes:
    # A libstdc++ std::vector<unsigned char> starts with its begin and end pointers.
    addr = int(vec.this)
    begin = ctypes.c_void_p.from_address(addr).value or 0
    end = ctypes.c_void_p.from_address(addr + ctypes.sizeof(ctypes.c_void_p)).value or 0
    return ctypes.string_at(begin, end - begin) if end > begin else b""


def _vector_bytes_slow(vec: Any) -> bytes:
    return bytes(vec)


def _choose_reader() -> Any:
    """The fast reader if it agrees with the slow one on this build, else the slow one."""
    probe = bytes(range(256)) * 3
    try:
        if (
            _vector_bytes_fast(pj.ByteVector(probe)) == probe
            and _vector_bytes_fast(pj.ByteVector(b"")) == b""
        ):
            return _vector_bytes_fast
    except Exception:  # an unexpected layout must cost speed, never correctness
        pass
    log.warning("ByteVector fast path unavailable on this build; using the slow copy")
    return _vector_bytes_slow


vector_bytes = _choose_reader()


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.3) -> bytes:
    n = int(seconds * rate)
    return array(
        "h", (int(amplitude * 32767 * math.sin(2 * math.pi * freq * i / rate)) for i in range(n))
    ).tobytes()


def ringback(rate: int) -> bytes:
    """Europe-style ringback: 425 Hz, one second on, four off."""
    return tone(425, 1.0, rate, 0.2) + bytes(int(4 * rate) * 2)


class PcmSource(pj.AudioMediaPort):
    """Plays PCM held in memory; `played_bytes` says how much of the current clip went out."""

    def __init__(self, rate: int, ptime_ms: int = 20) -> None:
        super().__init__()
        self.frame_bytes = rate * ptime_ms // 1000 * 2
        self._silence = bytes(self.frame_bytes)
        self._pcm = b""
        self._pos = 0
        self._loop = False
        self.clip_id = ""
        self.finished = True
        self.played_bytes = 0

    def play(self, pcm: bytes, clip_id: str = "", loop: bool = False) -> None:
        # Attribute stores are atomic under the GIL; the clock thread sees the new clip whole.
        self.finished = False
        self._loop = loop
        self._pos = 0
        self.played_bytes = 0
        self.clip_id = clip_id
        self._pcm = pcm

    def stop(self) -> None:
        self.clip_id = ""  # what played before the stop is the caller's business now, not this clip's
        self._pcm = b""
        self.finished = True

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        """Nothing is ever sent to a source, but the bridge still hands every port that has no
        transmitter an empty frame each tick (its "heartbeat"). Without this the call went
        through pjsua2's Python wrapper back down to the C++ default, nearly twice the cost."""

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        keep_thread_state()
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        pcm, pos, n = self._pcm, self._pos, self.frame_bytes
        chunk = pcm[pos : pos + n]
        if len(chunk) < n:
            if self._loop and pcm:
                chunk += pcm[: n - len(chunk)]
                self._pos = n - (len(pcm) - pos)
            else:
                chunk += self._silence[len(chunk) :]
                self._pos = len(pcm)
                if not self.finished and pcm:
                    self.finished = True
        else:
            self._pos = pos + n
        self.played_bytes = min(self._pos, len(pcm)) if not self._loop else self.played_bytes + n
        frame.buf = pj.ByteVector(chunk)
        frame.size = n


class Tap(pj.AudioMediaPort):
    """Hands every frame a leg transmits to one channel of a recorder, and to the in-band
    DTMF listener while one is set (its detector runs on the loop's thread, not here).

    A frame is stamped with the time it was due on the bridge's schedule, not the time its
    callback ran (frameclock.py says why): the bridge calls the tap once per frame, even with
    nothing connected, so the tap counts every call."""

    def __init__(self, channel: int, ptime_ms: int, now: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.channel = channel
        self.recorder: Any = None  # set when recording starts, cleared when it stops
        self.inband: deque[bytes] | None = None  # set while the leg's keys are listened for
        self.frame_s = ptime_ms / 1000
        self.clock = FrameClock(self.frame_s)
        self._now = now

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        keep_thread_state()
        due = self.clock.due(self._now())
        rec, inband = self.recorder, self.inband
        if (
            (rec is not None or inband is not None)
            and frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO
            and frame.size
        ):
            pcm = vector_bytes(frame.buf)
            if rec is not None:
                rec.push_frame(self.channel, pcm, due - self.frame_s)
            if inband is not None:
                inband.append(pcm)  # bounded (maxlen): a stalled loop drops the oldest audio


TAP_PTIME_MS = 40  # default of [recording] tap_ptime_ms


class MediaSlot:
    """The ports one call uses: the source that plays to the caller, the helper source (whisper
    and beeps) and the two taps.

    Ports are created once per worker and reused, never destroyed while the conference bridge
    runs: a pjsua2 port whose Python object dies while pjmedia's clock thread is inside its
    callback crashes the process. The worker drops them with `release_slots`, which stops the
    bridge's clock first.

    Each port costs the clock thread a Python callback per tick even when nothing is connected
    to it (the bridge's "heartbeat" to a port without transmitters), so ports are made when
    first needed: the sources on a call's first use of them (a recording session never plays,
    a call with no whisper and no beeps never uses the helper), and the worker makes a slot only
    when all its slots are busy.
    """

    def __init__(
        self, name: str, rate: int, fmt: pj.MediaFormatAudio, tap_ptime_ms: int = TAP_PTIME_MS
    ) -> None:
        self.name, self.rate, self.fmt = name, rate, fmt
        self._source: PcmSource | None = None
        self._aux: PcmSource | None = None
        self.taps = [Tap(0, tap_ptime_ms), Tap(1, tap_ptime_ms)]
        # The taps may take longer frames than the bridge's tick (the bridge buffers for them),
        # so Python runs less often per recorded leg: the taps are most of what recording a
        # call costs. The price is up to one tap frame of audio at the very end of a recording.
        tap_fmt = audio_format(rate, tap_ptime_ms)
        for tap in self.taps:
            tap.createPort(f"tap{tap.channel}-{name}", tap_fmt)
        self.busy = False

    def _made(self, kind: str) -> PcmSource:
        source = PcmSource(self.rate, self.fmt.frameTimeUsec // 1000)  # one bridge frame a request
        source.createPort(f"{kind}-{self.name}", self.fmt)
        return source

    @property
    def source(self) -> PcmSource:
        """Plays to the caller: the notice, ringback, hold music."""
        if self._source is None:
            self._source = self._made("src")
        return self._source

    @property
    def aux(self) -> PcmSource:
        """Plays to the helpline before bridging (the whisper), then beeps into both legs; it
        is connected only while it plays."""
        if self._aux is None:
            self._aux = self._made("aux")
        return self._aux

    def reset(self) -> None:
        for source in (self._source, self._aux):
            if source is not None:
                source.stop()
        for tap in self.taps:
            tap.recorder = None
            tap.inband = None


def release_slots(ep: pj.Endpoint, slots: list[MediaSlot]) -> None:
    """Drop a worker's ports safely: stop the conference bridge's clock, then destroy them.

    The bridge calls a port's callbacks from its clock thread until its removal has gone through,
    and that removal is queued; destroying a port's Python object meanwhile lets the callback run
    on a half-dismantled object, which crashes the process at shutdown. With the null sound device
    detached the clock thread has been joined, nothing calls into the ports any more, and the
    bridge flushes the queued removals when `libDestroy` destroys it.
    """
    ep.audDevManager().setNoDev()
    slots.clear()
    gc.collect()
