"""Benchmark: what an idle worker costs, by thread: a node's workers with no call, read from
/proc/PID/task/TID/stat over a quiet interval. Every worker of a pool pays this whether it has
calls or not, so at two calls per worker half of it lands on each call-second.

    .venv/bin/python bench/idle_worker.py --workers 4 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.node_load import run_header, thread_cpu, thread_cpu_ms  # noqa: E402
from tests.calls import CallLab  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        lab = CallLab(Path(d), workers=args.workers)
        try:
            lab.start_gateway()
            time.sleep(5)  # past the start's own work
            pids = [w["pid"] for w in lab.node_status()["workers"]]
            before = thread_cpu(pids)
            time.sleep(args.seconds)
            after = thread_cpu(pids)
        finally:
            lab.close()
    # CPU ms per second of all the workers, by thread name, then per worker.
    per_worker_s = {k: round(v / len(pids), 2) for k, v in thread_cpu_ms(before, after, args.seconds).items()}
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
