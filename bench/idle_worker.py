"""Benchmark: what an idle worker costs, by thread: a node's workers with no call, read from
/proc/PID/task/TID/stat over a quiet interval. Every worker of a pool pays this whether it has
calls or not, so at two calls per worker half of it lands on each call-second.

    .venv/bin/python bench/idle_worker.py --workers 4 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.node_load import run_header  # noqa: E402
from tests.calls import CallLab  # noqa: E402


def thread_ticks(pid: int) -> dict[str, int]:
    """Clock ticks of CPU by thread name (threads of one name summed)."""
    out: dict[str, int] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except OSError:
            continue
        out[name] = out.get(name, 0) + int(fields[11]) + int(fields[12])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    with tempfile.TemporaryDirectory() as d:
        lab = CallLab(Path(d), workers=args.workers)
        try:
            lab.start_gateway()
            time.sleep(5)  # past the start's own work
            pids = [w["pid"] for w in lab.node_status()["workers"]]
            before = {p: thread_ticks(p) for p in pids}
            time.sleep(args.seconds)
            after = {p: thread_ticks(p) for p in pids}
        finally:
            lab.close()
    by_thread: dict[str, float] = {}
    for p in pids:
        for name, ticks in after[p].items():
            by_thread[name] = by_thread.get(name, 0) + (ticks - before[p].get(name, 0)) * tick_ms
    per_worker_s = {k: round(v / len(pids) / args.seconds, 2) for k, v in sorted(by_thread.items())}
    print(run_header())
    print(
        json.dumps(
            {
                "workers": len(pids),
                "seconds": args.seconds,
                "cpu_ms_per_second_per_idle_worker": round(sum(per_worker_s.values()), 2),
                "by_thread": per_worker_s,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
