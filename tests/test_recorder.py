"""The recorder with a fake clock, driven tick by tick, writing into a real spool."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from gateway import age
from gateway.recording import wav
from gateway.recording.recorder import Recorder, RecorderEngine
from gateway.storage.spool import LocalSpool
from gateway.storage.store import ObjectWriter, StoreError
from tests.audio import dominant_frequency, frames, split_channels, tone

RATE = 8000
FRAME_S = 0.02


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def run_call(
    rec: Recorder,
    engine: RecorderEngine,
    clock: FakeClock,
    ch0: list[bytes | None],
    ch1: list[bytes | None],
    ops: dict[int, str] | None = None,
) -> None:
    """Push one frame per channel every 20 ms (None: missing), ticking the engine every 100 ms."""
    ops = ops or {}
    for i in range(max(len(ch0), len(ch1))):
        if i in ops:
            getattr(rec, ops[i])()
        for c, seq in ((0, ch0), (1, ch1)):
            if i < len(seq) and seq[i] is not None:
                rec.push_frame(c, seq[i])
        clock.t += FRAME_S
        if i % 5 == 4:
            engine.tick()


def decrypt(
    spool: LocalSpool, name: str, ident: age.Identity, recover: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    with spool.open(name) as f:
        plain = age.AgeReader(f, [ident], recover=recover).read_all()
    info = wav.parse_header(plain)
    assert (info.channels, info.sample_rate, info.data_size) == (2, RATE, None)
    return split_channels(plain[info.data_offset :])


@pytest.fixture
def setup(tmp_path: Path, identity: age.Identity):
    clock = FakeClock()
    spool = LocalSpool(tmp_path / "spool")
    engine = RecorderEngine(clock=clock, start_thread=False)

    def make(**kw) -> Recorder:
        rec = Recorder(spool.create(), [identity.recipient()], clock=clock, **kw)
        engine.add(rec)
        return rec

    return clock, spool, engine, make


def test_two_tones_land_on_their_channels(setup, identity: age.Identity) -> None:
    clock, spool, engine, make = setup
    rec = make()
    caller, helpline = frames(tone(440, 10)), frames(tone(1000, 10))
    run_call(rec, engine, clock, caller, helpline)
    fut = rec.finish()
    engine.tick()
    result = fut.result(timeout=0)
    assert result.status == "complete" and result.error is None
    left, right = decrypt(spool, rec.object_name, identity)
    assert abs(dominant_frequency(left) - 440) < 5
    assert abs(dominant_frequency(right) - 1000) < 5
    assert len(left) == len(right) == 10 * RATE
    assert result.duration_s == pytest.approx(10.0)
    with spool.open(rec.object_name) as f:
        assert hashlib.sha256(f.read()).hexdigest() == result.sha256


def test_missing_frames_are_silence_at_the_right_time(setup, identity: age.Identity) -> None:
    clock, spool, engine, make = setup
    rec = make()
    caller = frames(tone(440, 4))
    helpline: list[bytes | None] = list(frames(tone(1000, 4)))
    for i in range(50, 100):  # the helpline leg sends nothing for one second (hold)
        helpline[i] = None
    run_call(rec, engine, clock, caller, helpline)
    fut = rec.finish()
    engine.tick()
    left, right = decrypt(spool, rec.object_name, identity)
    assert len(left) == len(right) == 4 * RATE
    assert not right[RATE + 100 : 2 * RATE - 100].any()
    assert abs(dominant_frequency(right[2 * RATE :]) - 1000) < 5
    assert abs(dominant_frequency(left[RATE : 2 * RATE]) - 440) < 5
    assert rec.stats.gap_samples >= RATE - 200
    # What the audit entry tells a reviewer: a second of it is silence the gateway put in.
    result = fut.result(timeout=0)
    assert result.silence_s == pytest.approx(1.0, abs=0.03) and result.dropped_s == 0


def test_frames_that_arrive_on_top_of_each_other_are_counted_as_dropped(setup) -> None:
    clock, _spool, engine, make = setup
    rec = make()
    caller = frames(tone(440, 2))
    for i, frame in enumerate(caller):
        rec.push_frame(0, frame)
        if i == 50:
            rec.push_frame(0, frame, at=clock.t - 0.1)  # a duplicate of audio already placed
        clock.t += FRAME_S
        if i % 5 == 4:
            engine.tick()
    fut = rec.finish()
    engine.tick()
    assert fut.result(timeout=0).dropped_s == pytest.approx(0.02, abs=0.001)


@pytest.mark.parametrize("mode,expected_s", [("silence", 6.0), ("skip", 4.0)])
def test_pause(setup, identity: age.Identity, mode: str, expected_s: float) -> None:
    clock, spool, engine, make = setup
    rec = make(pause_mode=mode)
    run_call(
        rec, engine, clock, frames(tone(440, 6)), frames(tone(1000, 6)), ops={100: "pause", 200: "resume"}
    )
    fut = rec.finish()
    engine.tick()
    result = fut.result(timeout=0)
    left, right = decrypt(spool, rec.object_name, identity)
    assert result.duration_s == pytest.approx(expected_s, abs=0.03)
    if mode == "silence":
        assert (
            not left[2 * RATE + 10 : 4 * RATE - 10].any() and not right[2 * RATE + 10 : 4 * RATE - 10].any()
        )
    else:
        assert abs(dominant_frequency(left[1 * RATE : 3 * RATE]) - 440) < 5  # no silence across the cut
    assert rec.stats.frames_paused == 200


def test_discard_leaves_no_bytes(setup) -> None:
    clock, spool, engine, make = setup
    rec = make()
    run_call(rec, engine, clock, frames(tone(440, 5)), frames(tone(1000, 5)))
    assert rec.stats.bytes_sealed > 0
    fut = rec.discard()
    engine.tick()
    result = fut.result(timeout=0)
    assert result.status == "discarded"
    rec.push_frame(0, b"\x01\x00" * 160)  # late frames after discard go nowhere
    assert rec.queued == 0 and rec.stats.frames_overflowed == 0


class FailingWriter(ObjectWriter):
    """Stands in for a disk that fills up after `ok` appends (a real ENOSPC is tested elsewhere)."""

    def __init__(self, inner: ObjectWriter, ok: int) -> None:
        self.inner, self.ok, self.name = inner, ok, inner.name

    def append(self, data: bytes) -> None:
        if self.ok == 0:
            raise StoreError(f"spool append failed: {os.strerror(errno.ENOSPC)}")
        self.ok -= 1
        self.inner.append(data)

    def close(self) -> None:
        self.inner.close()


def test_storage_failure_keeps_sealed_chunks_and_reports_incomplete(
    tmp_path: Path, identity: age.Identity
) -> None:
    clock = FakeClock()
    spool = LocalSpool(tmp_path / "spool")
    engine = RecorderEngine(clock=clock, start_thread=False)
    rec = Recorder(
        FailingWriter(spool.create(), ok=3), [identity.recipient()], clock=clock
    )  # header + 2 chunks
    engine.add(rec)
    run_call(rec, engine, clock, frames(tone(440, 10)), frames(tone(1000, 10)))
    result = rec.done.result(timeout=0)
    assert result.status == "incomplete" and "No space left" in result.error
    left, _ = decrypt(spool, rec.object_name, identity, recover=True)
    assert len(left) == (2 * age.CHUNK_SIZE - wav.HEADER_SIZE) // 4
    rec.push_frame(0, b"\x00\x00" * 160)  # the media thread keeps pushing: nothing happens


def test_overflow_is_counted_not_blocking(setup) -> None:
    clock, spool, engine, make = setup
    rec = make(queue_frames=10)  # 5 frames per channel
    for _ in range(25):
        rec.push_frame(0, bytes(320))
    rec.push_frame(1, bytes(320))
    assert rec.stats.frames_overflowed == 20 and rec.queued == 6
    engine.tick()
    assert rec.stats.frames_in == 6 and rec.queued == 0


def test_engine_thread_finishes_everything_on_close(tmp_path: Path, identity: age.Identity) -> None:
    spool = LocalSpool(tmp_path / "spool")
    engine = RecorderEngine(tick_s=0.01)
    recs = [Recorder(spool.create(), [identity.recipient()]) for _ in range(3)]
    for r in recs:
        engine.add(r)
        r.push_frame(0, tone(440, 0.1))
    engine.close()
    assert all(r.done.result(timeout=0).status == "complete" for r in recs)
    assert engine.active == 0
