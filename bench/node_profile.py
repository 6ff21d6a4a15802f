"""Where a loaded worker's time goes: py-spy (native frames on) samples one worker of a node
under sipp load, and its stacks are summed by thread and by function.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/node_profile.py --workers 20 --calls 40 --hold 30 --seconds 20

The node and the load are bench/node_load.py's consented phase (every call recorded). Once the
calls are up, the worker carrying the most calls is sampled for `--seconds` (py-spy as root, 50
samples a second, each pausing the worker to unwind its native stacks).
Printed: the share of samples each thread was busy (not idle), and per thread the functions
with the most samples on the stack (inclusive) and at its top (self), Python and native.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.node_load import configure, phase, run_header  # noqa: E402
from tests.calls import CallLab  # noqa: E402

# A sample whose innermost frame is one of these waits, or an unnamed address in the C library
# (Debian's libc is stripped: its futex and syscall wrappers show so), is a thread waiting, not
# working; py-spy's own idle test does not see through native waits. True CPU per thread is the
# /proc reading printed beside the profile.
WAITS = ("select", "poll", "epoll_wait", "nanosleep", "futex", "sem_wait", "sem_timedwait", "recv", "accept")


def waiting(frame: str) -> bool:
    name = frame.split(" (")[0]
    return any(w in name for w in WAITS) or (name.startswith("0x") and "libc.so" in frame)


def summarise(raw: Path, samples_per_thread: float, comm: dict[str, str], top: int) -> dict[str, object]:
    """py-spy's raw (collapsed) stacks, `thread (TID)[: name];frame;frame ... count` per line,
    outermost first, idle samples left out by py-spy: a thread's busy share is its samples over
    the samples a thread busy all the time would have."""
    busy: Counter[str] = Counter()
    inclusive: dict[str, Counter[str]] = {}
    leaf: dict[str, Counter[str]] = {}
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = stack.split(";")
        head, frames = frames[0], frames[1:]
        tid = head.split("(")[1].split(")")[0] if "(" in head else head
        thread = f"{comm.get(tid, '?')} ({head.split(':', 1)[1].strip() if ':' in head else 'native'})"
        if not frames or waiting(frames[-1]):
            continue
        busy[thread] += count
        leaf.setdefault(thread, Counter())[frames[-1] if frames else "?"] += count
        for f in set(frames):
            inclusive.setdefault(thread, Counter())[f] += count
    return {
        "threads": {
            t: {
                "busy_share": round(busy[t] / samples_per_thread, 3),
                "top_inclusive": [(f, c) for f, c in inclusive[t].most_common(top)],
                "top_self": [(f, c) for f, c in leaf[t].most_common(top)],
            }
            for t in sorted(busy, key=lambda t: -busy[t])
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=20)
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--hold", type=float, default=30)
    ap.add_argument("--seconds", type=float, default=20, help="how long py-spy samples")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    spy = shutil.which("py-spy") or str(ROOT / ".venv" / "bin" / "py-spy")
    if not Path(spy).exists():
        sys.exit("py-spy is not installed: .venv/bin/pip install -e '.[bench]'")
    print(run_header(), flush=True)
    with tempfile.TemporaryDirectory(prefix="profile-") as d:
        tmp = Path(d)
        lab = CallLab(tmp, workers=args.workers)
        configure(lab, 40)
        result: dict[str, object] = {}
        try:
            lab.start_gateway()
            load = threading.Thread(
                target=lambda: result.update(phase(lab, "5", args.calls, args.hold, tmp)), daemon=True
            )
            load.start()
            # The calls ramp up at 4 a second; sample once they are all up.
            time.sleep(min(args.hold / 2, args.calls / 4 + 5))
            workers = lab.node_status()["workers"]
            busiest = max(workers, key=lambda w: w.get("calls", 0))
            raw = tmp / "worker.txt"
            spy_run = subprocess.run(
                [
                    spy,
                    "record",
                    "--pid",
                    str(busiest["pid"]),
                    "--native",
                    "--threads",
                    "--rate",
                    "50",
                    "--duration",
                    str(int(args.seconds)),
                    "--format",
                    "raw",
                    "--output",
                    str(raw),
                ],
                capture_output=True,
                text=True,
            )
            # The kernel's names of the sampled worker's threads (osthreads.py; pjsua's own).
            comm = {}
            for task in Path(f"/proc/{busiest['pid']}/task").glob("*"):
                try:
                    comm[task.name] = (task / "comm").read_text().strip()
                except OSError:
                    pass
            load.join()
            out = {
                "workers": args.workers,
                "calls": args.calls,
                "sampled_worker_calls": busiest.get("calls"),
                "py_spy_exit": spy_run.returncode,
                "py_spy_said": spy_run.stderr.strip().splitlines()[-3:],
                "node_cpu_ms_per_call_second": result.get("node_cpu_ms_per_call_second"),
                "cpu_ms_per_call_second_by_thread": result.get("cpu_ms_per_call_second_by_thread"),
                "profile": summarise(raw, 50 * args.seconds, comm, args.top) if raw.exists() else None,
            }
        finally:
            lab.close()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
