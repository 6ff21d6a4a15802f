"""Microbenchmark: what one recorder's engine tick costs, part by part (CPU time, in isolation).

    .venv/bin/python bench/recorder_parts.py

A tick is 0.5 s of audio: 25 frames of 320 bytes per channel. Also times fsync of one sealed
chunk on the current filesystem. Complements recorder_load.py, which measures the whole engine
under load; the difference between the two is contention between threads.
"""

from __future__ import annotations

import hashlib
import os
import resource
import tempfile

from gateway import age
from gateway.age.stream import CHUNK_SIZE, ENCRYPTED_CHUNK_SIZE, StreamSealer
from gateway.age.writer import AgeWriter
from gateway.recording.aligner import ChannelAligner
from gateway.recording.recorder import Recorder
from gateway.storage.store import ObjectWriter

FRAMES = [os.urandom(320) for _ in range(50)]
TICK_BYTES = 2 * 25 * 320  # one tick of interleaved stereo


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def per_call(fn, n: int = 2000) -> float:
    t0 = cpu()
    for _ in range(n):
        fn()
    return (cpu() - t0) / n * 1e6


class NullWriter(ObjectWriter):
    name = "null"

    def append(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def main() -> None:
    ticks_per_s = 2
    chunks_per_s = 2 * 8000 * 2 / CHUNK_SIZE
    rows: list[tuple[str, float, float]] = []

    items = [(1000.0 + i * 0.02, FRAMES[i]) for i in range(25)]
    rows.append(
        (
            "join a tick's frames (one channel)",
            per_call(lambda: b"".join([p for _, p in items])),
            2 * ticks_per_s,
        )
    )

    aligner = ChannelAligner(2, 80)
    pos = [0]
    pcm = b"".join(FRAMES[:25])

    def place_and_drain() -> bytes:
        aligner.place(0, pos[0], pcm)
        aligner.place(1, pos[0], pcm)
        pos[0] += 4000
        return aligner.drain(pos[0])

    rows.append(("place both channels + interleave", per_call(place_and_drain), ticks_per_s))
    block = os.urandom(TICK_BYTES)
    writer = AgeWriter([age.Identity.generate().recipient()], lambda d: None)
    rows.append(
        (
            "age writer: a tick (incl. its share of sealing)",
            per_call(lambda: writer.write(block)),
            ticks_per_s,
        )
    )
    sealer = StreamSealer(os.urandom(32))
    chunk = os.urandom(CHUNK_SIZE)
    rows.append(
        (
            "ChaCha20-Poly1305 seal of one 64 KiB chunk",
            per_call(lambda: sealer.seal(chunk, False), 500),
            chunks_per_s,
        )
    )
    sealed = os.urandom(ENCRYPTED_CHUNK_SIZE)
    rows.append(("SHA-256 of one sealed chunk", per_call(lambda: hashlib.sha256(sealed), 500), chunks_per_s))

    clock = [1000.0]
    rec = Recorder(NullWriter(), [age.Identity.generate().recipient()], clock=lambda: clock[0], start=1000.0)
    rec._service(1000.0)

    def pushes() -> None:
        for i in range(25):
            rec.push_frame(0, FRAMES[i], at=clock[0])
            rec.push_frame(1, FRAMES[i], at=clock[0])
            clock[0] += 0.02

    def whole_tick() -> None:
        pushes()
        rec._service(clock[0])

    push_us = per_call(pushes, 500)
    rows.append(("whole tick incl. its 50 pushes (no I/O)", per_call(whole_tick, 500), ticks_per_s))
    rows.append(("50 push_frame calls", push_us, ticks_per_s))

    with tempfile.TemporaryDirectory(prefix="bench-") as d:  # the system temp dir, never the repository
        fd = os.open(os.path.join(d, "f"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

        def append_fsync() -> None:
            os.write(fd, sealed)
            os.fsync(fd)

        rows.append(("write + fsync of one sealed chunk", per_call(append_fsync, 300), chunks_per_s))
        os.close(fd)

    print(f"{'part':48} {'µs each':>9} {'per s':>6} {'µs per recorder-second':>24}")
    for name, us, rate in rows:
        print(f"{name:48} {us:9.1f} {rate:6.2f} {us * rate:24.1f}")


if __name__ == "__main__":
    main()
