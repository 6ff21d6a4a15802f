"""Benchmark: frames in -> fsynced ciphertext, for many simultaneous recorders in one process.

A feeder thread stands in for pjmedia's clock thread: every 20 ms it hands one 20 ms frame per
channel to every recorder (push_frame, as the media callback will). One RecorderEngine thread
seals and fsyncs. The baseline phase runs the identical feeder loop with recording off, in the
same process and run, so the difference is what recording costs. Each size runs twice: into a
store that discards the ciphertext (alignment, WAV framing and encryption alone), then into
the real spool (plus write and fsync of every sealed chunk).

    .venv/bin/python bench/recorder_load.py --recorders 100 1000 --seconds 20 --tick 0.5

Reports, per recorder-second of audio: the hand-off cost (push_frame, paid on the media
thread) and the engine cost (alignment, WAV framing, encryption, write and fsync of every
sealed chunk, in user and kernel time); the share of one core 100 calls would cost; fsyncs
per second; and frames dropped (overflow) or padded with silence (gaps).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from gateway import age
from gateway.recording.recorder import Recorder, RecorderEngine
from gateway.storage.spool import LocalSpool
from gateway.storage.store import ObjectWriter, new_object_name

FRAME_S = 0.02
RATE = 8000


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def feed(
    targets: list[Recorder] | None, count: int, seconds: float, frames: list[bytes], start: float
) -> dict[str, float]:
    """Push frames at real-time pace from `start`; `targets=None` runs the loop without recorders."""
    ticks = int(seconds / FRAME_S)
    late = 0
    while time.monotonic() < start:
        time.sleep(0.001)
    t0 = time.thread_time()
    for i in range(ticks):
        a, b = frames[i % len(frames)], frames[(i + 7) % len(frames)]
        if targets is not None:
            for r in targets:
                r.push_frame(0, a)
                r.push_frame(1, b)
        else:
            for _ in range(count):
                pass
        delay = start + (i + 1) * FRAME_S - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            late += 1
    return {"thread_cpu_s": time.thread_time() - t0, "wall_s": time.monotonic() - start, "late_ticks": late}


class DiscardingStore:
    """Takes ciphertext and forgets it: the engine's cost without write and fsync."""

    class Writer(ObjectWriter):
        def __init__(self, name: str) -> None:
            self.name = name

        def append(self, data: bytes) -> None:
            pass

        def close(self) -> None:
            pass

    def create(self) -> ObjectWriter:
        return self.Writer(new_object_name())

    def delete(self, name: str) -> None:
        pass


def run(n: int, seconds: float, store: LocalSpool | DiscardingStore, tick_s: float) -> dict[str, object]:
    recipient = age.Identity.generate().recipient()
    frames = [os.urandom(320) for _ in range(50)]
    c0 = cpu()
    baseline = feed(None, n, seconds, frames, time.monotonic())
    baseline_cpu = cpu() - c0
    spool = store
    engine = RecorderEngine(tick_s=tick_s)
    start = time.monotonic() + 0.5 + n / 2000
    recs = [Recorder(spool.create(), [recipient], start=start) for _ in range(n)]
    for r in recs:
        engine.add(r)
    c0 = cpu()
    loaded = feed(recs, n, seconds, frames, start)
    for r in recs:
        r.finish(at=start + seconds)
    results = [r.done.result(timeout=120) for r in recs]
    total_cpu = cpu() - c0
    engine.close()
    handoff = loaded["thread_cpu_s"] - baseline["thread_cpu_s"]
    engine_cpu = total_cpu - loaded["thread_cpu_s"]
    rec_s = n * seconds
    appends = sum(x.stats["chunks_sealed"] + 2 for x in results)  # header + chunks + final chunk
    out = {
        "store": "spool (write + fsync per chunk)"
        if isinstance(store, LocalSpool)
        else "discarding (no I/O)",
        "recorders": n,
        "seconds": seconds,
        "engine_tick_s": tick_s,
        "baseline_cpu_s": round(baseline_cpu, 3),
        "recording_cpu_s": round(total_cpu, 3),
        "handoff_us_per_recorder_s": round(handoff / rec_s * 1e6, 1),
        "engine_us_per_recorder_s": round(engine_cpu / rec_s * 1e6, 1),
        "engine_percent_of_one_core_for_100_calls": round(engine_cpu / rec_s * 100 * 100, 3),
        "total_percent_of_one_core_for_100_calls": round((total_cpu - baseline_cpu) / rec_s * 100 * 100, 3),
        "fsyncs_per_s": round(appends / loaded["wall_s"], 1),
        "mb_sealed": round(sum(x.bytes for x in results) / 1e6, 1),
        "recorded_s_over_pushed_s": round(sum(x.duration_s for x in results) / rec_s, 4),
        "frames_overflowed": sum(x.stats["frames_overflowed"] for x in results),
        "gap_samples_per_recorder": round(sum(x.stats["gap_samples"] for x in results) / n, 1),
        "feeder_late_ticks": loaded["late_ticks"],
        "statuses": sorted({x.status for x in results}),
    }
    for x in results:
        spool.delete(x.object_name)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recorders", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--tick", type=float, default=0.5, help="engine tick in seconds")
    ap.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where the spool goes (default: the system temp directory; never the repository)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-") as d:
        print(
            json.dumps(
                {
                    "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
                    "spool_fs": os.popen(f"df -T {d} | tail -1 | awk '{{print $2}}'").read().strip(),
                }
            )
        )
        for n in args.recorders:
            for store in (DiscardingStore(), LocalSpool(Path(d) / f"spool-{n}")):
                print(json.dumps(run(n, args.seconds, store, args.tick)), flush=True)


if __name__ == "__main__":
    main()
