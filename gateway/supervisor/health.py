"""Whether a worker that misses heartbeats is hung or only slow (pure, apart from reading
/proc).

A worker answers the supervisor's pings from its event loop. Under CPU overload that loop lags
by seconds, and a worker that is merely starved misses pings like a hung one; killing it would
drop its calls, which is the one thing the gateway must not do. So missing pings alone only
takes a worker out of the dispatcher (no new calls); it is killed only when its main thread has
stopped running (stopped, deadlocked, blocked in the kernel), or when it has run without
answering for so long that it is hung in a loop of its own."""

from __future__ import annotations

import enum
from pathlib import Path

HEARTBEAT_TIMEOUT_S = 2.0  # a worker must answer a ping on its control socket within this
HEARTBEAT_MISSES = 3  # missed in a row: the worker is hung or overloaded
# Missed in a row while its main thread still runs: at one round every 2-3 s, more than a
# minute of no answer, which no overload of a live node explains.
HEARTBEAT_MISSES_RUNNING = 30


class Verdict(enum.Enum):
    WAIT = "wait"  # too few misses to judge
    SLOW = "slow"  # running, not answering: no new calls until it answers; its calls go on
    HUNG = "hung"  # kill and replace it


def judge(misses: int, ran: bool | None) -> Verdict:
    """`misses`: heartbeats missed in a row; `ran`: whether its main thread used any CPU since
    the previous judgement (None: unknown, e.g. /proc unreadable, judged as not running)."""
    if misses < HEARTBEAT_MISSES:
        return Verdict.WAIT
    if ran and misses < HEARTBEAT_MISSES_RUNNING:
        return Verdict.SLOW
    return Verdict.HUNG


def main_thread_cpu_ns(pid: int) -> int | None:
    """CPU time the process's main thread (the worker's event loop) has used, in nanoseconds,
    from /proc/PID/task/PID/schedstat; None if the process is gone or that file is missing."""
    try:
        return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
