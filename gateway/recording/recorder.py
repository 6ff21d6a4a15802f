"""Frames in, ciphertext out.

`Recorder.push_frame` is called from pjmedia's clock thread, where blocking would stall the
audio of every call in the process. It only appends to a bounded deque (no lock, no I/O) and
counts what it has to refuse. One `RecorderEngine` thread services every recorder of the
process: it places frames on the timeline, frames them as a streaming WAV, feeds the age
writer, and appends every sealed chunk to the store, which fsyncs it before returning.

Plaintext exists only in the deques, the aligner and the age writer's one-chunk buffer.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import age, osthreads
from ..storage.rows import RecordingStatus
from ..storage.store import ObjectWriter, StoreError
from . import wav
from .aligner import ChannelAligner

log = logging.getLogger(__name__)

Clock = Callable[[], float]
CALLER, HELPLINE = 0, 1
PAUSE_MODES = ("silence", "skip")


@dataclass
class RecorderStats:
    frames_in: int = 0  # taken from the hand-off queues
    frames_overflowed: int = 0  # refused because the hand-off queue was full
    frames_paused: int = 0  # dropped while recording was paused
    plaintext_bytes: int = 0
    bytes_sealed: int = 0  # ciphertext durably appended
    chunks_sealed: int = 0
    gap_samples: int = 0
    late_samples: int = 0
    overlap_samples: int = 0


@dataclass
class RecordingResult:
    status: RecordingStatus  # COMPLETE, INCOMPLETE or DISCARDED
    object_name: str
    bytes: int
    sha256: str
    duration_s: float
    stats: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    # Seconds of the recording the recorder filled with silence because no audio came for
    # that time (a leg on hold, packets lost before the gateway, a clock that skipped), and
    # seconds of audio it dropped because their time was already written (audio that came
    # too late, or twice).
    silence_s: float = 0.0
    dropped_s: float = 0.0


class Recorder:
    """One call's two-channel recording. All public methods are safe from any thread."""

    def __init__(
        self,
        writer: ObjectWriter,
        recipients: Sequence[age.AnyRecipient],
        *,
        sample_rate: int = 8000,
        pause_mode: str = "silence",
        queue_frames: int = 500,
        window_s: float = 1.0,
        clock: Clock = time.monotonic,
        start: float | None = None,
    ) -> None:
        if pause_mode not in PAUSE_MODES:
            raise ValueError(f"pause_mode must be one of {PAUSE_MODES}")
        if not recipients:
            raise ValueError("a recorder needs at least one recipient")
        self.object_name = writer.name
        self.sample_rate = sample_rate
        self.pause_mode = pause_mode
        self.stats = RecorderStats()
        self.done: Future[RecordingResult] = Future()
        self._writer = writer
        self._recipients = list(recipients)
        self._clock = clock
        self._t0 = clock() if start is None else start
        # Audio is written this far behind real time, so that a frame can wait a whole engine
        # tick in the inbox (and arrive with jitter) without finding its time already written.
        self._window = int(window_s * sample_rate)
        self._max_per_channel = max(1, queue_frames // 2)
        # The hand-off: one list per channel that push_frame appends to (atomic under the GIL).
        # The engine swaps the lists out whole instead of popping frame by frame; a frame that a
        # push appended to a list just after the swap is picked up first on the next tick.
        self._inbox: dict[int, list[tuple[float, bytes]]] = {CALLER: [], HELPLINE: []}
        self._swapped: dict[int, tuple[list[tuple[float, bytes]], int]] = {}
        self._controls: deque[tuple[float, str]] = deque()
        # Timing jitter below 10 ms is absorbed; anything longer is a gap (less than half of a
        # 20 ms frame, so one missing frame is always noticed).
        self._aligner = ChannelAligner(2, tolerance=sample_rate // 100)
        self._age: age.AgeWriter | None = None
        self._sha = hashlib.sha256()
        self._paused_at: float | None = None
        self._skipped = 0.0  # seconds removed from the timeline by pauses in skip mode
        self._accepting = True
        self._discard_requested = False
        self._wake: Callable[[], None] = lambda: None  # set by the engine
        # Called on the engine thread after each durable append with (bytes sealed so far,
        # SHA-256 of those bytes): the writer's own record of what it committed (app/recordings.py).
        self.on_sealed: Callable[[int, str], None] | None = None
        self.error: str | None = None
        self.state = "recording"

    # -- any thread --------------------------------------------------------------------------

    def push_frame(self, channel: int, pcm: bytes, at: float | None = None) -> None:
        """Hand over one frame of 16-bit little-endian mono PCM for `channel` (0 caller,
        1 helpline), captured at `at` (default: now). Never blocks, never does I/O."""
        if not self._accepting:
            return
        inbox = self._inbox[channel]
        if len(inbox) >= self._max_per_channel:
            self.stats.frames_overflowed += 1
            return
        inbox.append((self._clock() if at is None else at, pcm))

    def pause(self, at: float | None = None) -> None:
        self._controls.append((self._clock() if at is None else at, "pause"))

    def resume(self, at: float | None = None) -> None:
        self._controls.append((self._clock() if at is None else at, "resume"))

    def finish(self, at: float | None = None) -> Future[RecordingResult]:
        """Write the final chunk; the future resolves once it is durable."""
        self._controls.append((self._clock() if at is None else at, "finish"))
        self._wake()
        return self.done

    def discard(self) -> Future[RecordingResult]:
        """Stop and forget everything (consent withdrawn); the service deletes the object."""
        self._accepting = False
        self._discard_requested = True
        self._wake()
        return self.done

    @property
    def queued(self) -> int:
        """Frames handed over and not yet taken by the engine."""
        return sum(len(q) for q in self._inbox.values())

    @property
    def duration_s(self) -> float:
        return self._aligner.emitted / self.sample_rate

    def snapshot(self) -> dict[str, Any]:
        self._copy_aligner_stats()
        return {
            "state": self.state,
            "duration_s": round(self.duration_s, 3),
            "error": self.error,
            **asdict(self.stats),
        }

    def _copy_aligner_stats(self) -> None:
        g = self._aligner.stats
        self.stats.gap_samples, self.stats.late_samples, self.stats.overlap_samples = (
            g.gap_samples,
            g.late_samples,
            g.overlap_samples,
        )

    # -- engine thread only --------------------------------------------------------------------

    def _position(self, at: float) -> int:
        return round((at - self._t0 - self._skipped) * self.sample_rate)

    def _sink(self, data: bytes) -> None:
        self._writer.append(data)
        self._sha.update(data)
        self.stats.bytes_sealed += len(data)
        if self.on_sealed is not None:
            try:
                self.on_sealed(self.stats.bytes_sealed, self._sha.copy().hexdigest())
            except Exception:  # a lost checkpoint costs only what recovery can sign later
                log.exception("checkpoint of %s failed", self.object_name)

    def _place_batch(self, channel: int, items: list[tuple[float, bytes]]) -> None:
        """Place a tick's frames of one channel: in one piece when their times show they are
        contiguous (the normal case), frame by frame when something is missing or late."""
        if not items:
            return
        self.stats.frames_in += len(items)
        if self._paused_at is not None:
            self.stats.frames_paused += len(items)
            return
        first = self._position(items[0][0])
        if len(items) == 1:
            self._aligner.place(channel, first, items[0][1])
            return
        pcm = b"".join([p for _, p in items])
        expected_last = first + (len(pcm) - len(items[-1][1])) // 2
        if abs(self._position(items[-1][0]) - expected_last) <= self._aligner.tolerance:
            self._aligner.place(channel, first, pcm)
        else:
            for at, p in items:
                self._aligner.place(channel, self._position(at), p)

    def _write(self, data: bytes) -> None:
        assert self._age is not None
        if data:
            self._age.write(data)
            self.stats.plaintext_bytes += len(data)
            self.stats.chunks_sealed = self._age.chunks_sealed

    def _control(self, at: float, op: str) -> bool:
        """Apply a control; True when the recording is over."""
        if op == "pause" and self._paused_at is None:
            self._paused_at = at
            self.state = "paused"
        elif op == "resume" and self._paused_at is not None:
            if self.pause_mode == "skip":
                self._write(self._aligner.drain(self._position(self._paused_at)))
                self._skipped += at - self._paused_at
            self._paused_at = None
            self.state = "recording"
        elif op == "finish":
            self._accepting = False
            self._write(self._aligner.drain(self._aligner.end))
            assert self._age is not None
            self._age.close()
            self._complete(RecordingStatus.COMPLETE)
            return True
        elif op == "discard":
            self._aligner.clear()
            if self._age is not None:
                self._age.wipe()
            self._drop_queued()
            self._complete(RecordingStatus.DISCARDED)
            return True
        return False

    def _service(self, now: float) -> bool:
        """Do what is due; True when this recorder is finished and can be dropped."""
        if self.done.done():
            return True
        try:
            if self._discard_requested:
                return self._control(now, "discard")
            if self._age is None:
                self._age = age.AgeWriter(self._recipients, self._sink)
                self._write(wav.header(self.sample_rate, channels=2))
            batches = self._take()
            if self._controls:
                controls = sorted(self._controls.popleft() for _ in range(len(self._controls)))
                for at, op in controls:
                    for ch, items in batches.items():
                        cut = bisect.bisect_left(items, at, key=lambda f: f[0])
                        self._place_batch(ch, items[:cut])
                        batches[ch] = items[cut:]
                    if self._control(at, op):
                        return True
            for ch, items in batches.items():
                self._place_batch(ch, items)
            upto = self._position(now) - self._window
            if self._paused_at is not None and self.pause_mode == "skip":
                upto = min(upto, self._position(self._paused_at))
            self._write(self._aligner.drain(upto))
        except StoreError as e:
            self._fail(str(e))
            return True
        except Exception as e:  # a bug must cost this recording, never the engine or the call
            log.exception("recorder %s failed", self.object_name)
            self._fail(f"internal error: {e.__class__.__name__}")
            return True
        return False

    def _take(self) -> dict[int, list[tuple[float, bytes]]]:
        """This tick's frames per channel: stragglers of the last swap first, then the inbox."""
        inbox = self._inbox
        self._inbox = {CALLER: [], HELPLINE: []}
        batches = {}
        for ch, items in inbox.items():
            old = self._swapped.get(ch)
            if old is not None and len(old[0]) > old[1]:
                items = old[0][old[1] :] + items
            batches[ch] = items
            self._swapped[ch] = (inbox[ch], len(inbox[ch]))
        return batches

    def _drop_queued(self) -> None:
        self._inbox = {CALLER: [], HELPLINE: []}
        self._swapped.clear()

    def _fail(self, error: str) -> None:
        """Storage failed: keep what is sealed, drop the rest, never fall back to plaintext."""
        self._accepting = False
        self.error = error
        self._aligner.clear()
        if self._age is not None:
            self._age.wipe()
        self._drop_queued()
        self._complete(RecordingStatus.INCOMPLETE)

    def _complete(self, status: RecordingStatus) -> None:
        self.state = status
        self._copy_aligner_stats()
        try:
            self._writer.close()
        except Exception:  # closing a failed object must not hide the result
            log.exception("closing %s", self.object_name)
        self.done.set_result(
            RecordingResult(
                status,
                self.object_name,
                self.stats.bytes_sealed,
                self._sha.hexdigest(),
                self.duration_s,
                asdict(self.stats),
                self.error,
                silence_s=round(self.stats.gap_samples / self.sample_rate, 3),
                dropped_s=round((self.stats.overlap_samples + self.stats.late_samples) / self.sample_rate, 3),
            )
        )


class RecorderEngine:
    """Services every recorder of a process from one thread, every `tick_s` seconds."""

    def __init__(
        self, tick_s: float = 0.5, clock: Clock = time.monotonic, *, start_thread: bool = True
    ) -> None:
        self.tick_s = tick_s
        self._clock = clock
        self._recorders: list[Recorder] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        if start_thread:
            self._thread = osthreads.Thread(target=self._run, name="recorder-engine", daemon=True)
            self._thread.start()

    def add(self, recorder: Recorder) -> None:
        recorder._wake = self._wake.set
        with self._lock:
            self._recorders.append(recorder)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    @property
    def active(self) -> int:
        return len(self._recorders)

    def tick(self, now: float | None = None) -> None:
        """Service every recorder once (the thread's loop body; tests call it directly)."""
        now = self._clock() if now is None else now
        with self._lock:
            recorders = list(self._recorders)
        finished = [r for r in recorders if r._service(now)]
        if finished:
            with self._lock:
                self._recorders = [r for r in self._recorders if r not in finished]

    def _run(self) -> None:
        while not self._stop:
            self.tick()
            self._wake.wait(self.tick_s)
            self._wake.clear()

    def close(self, timeout: float = 10.0) -> None:
        """Finish every active recording, then stop the thread."""
        with self._lock:
            recorders = list(self._recorders)
        for r in recorders:
            r.finish()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for r in recorders:
            if self._thread is None:
                self.tick()
            try:
                r.done.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:
                log.error("recording %s did not finish before shutdown", r.object_name)
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=max(0.1, deadline - time.monotonic()))
