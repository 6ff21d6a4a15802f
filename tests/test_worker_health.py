"""A worker that misses heartbeats is killed only when it no longer runs: under CPU overload a
starved worker misses pings too, and killing it would drop its calls (seen at 200 calls on two
cores, where 13 workers were killed with their calls)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from gateway.supervisor.health import (
    HEARTBEAT_MISSES,
    HEARTBEAT_MISSES_RUNNING,
    Verdict,
    judge,
    main_thread_cpu_ns,
)


def test_missing_heartbeats_alone_never_kills_a_worker_that_runs() -> None:
    assert judge(HEARTBEAT_MISSES - 1, False) is Verdict.WAIT
    assert judge(HEARTBEAT_MISSES, True) is Verdict.SLOW
    assert judge(HEARTBEAT_MISSES_RUNNING - 1, True) is Verdict.SLOW
    assert judge(HEARTBEAT_MISSES, False) is Verdict.HUNG
    assert judge(HEARTBEAT_MISSES, None) is Verdict.HUNG, "unreadable: judged as not running"
    assert judge(HEARTBEAT_MISSES_RUNNING, True) is Verdict.HUNG, "a loop that never answers"


def test_a_stopped_process_shows_no_progress_and_a_busy_one_does() -> None:
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        a = main_thread_cpu_ns(child.pid)
        time.sleep(0.3)
        b = main_thread_cpu_ns(child.pid)
        assert a is not None and b is not None and b > a, "running"
        os.kill(child.pid, signal.SIGSTOP)
        time.sleep(0.1)
        a = main_thread_cpu_ns(child.pid)
        time.sleep(0.5)
        assert main_thread_cpu_ns(child.pid) == a, "stopped"
    finally:
        child.kill()
        child.wait()
    assert main_thread_cpu_ns(child.pid) is None, "gone"


def test_the_pool_does_not_grow_while_a_worker_is_starved(tmp_path) -> None:
    """A slow worker is out of the dispatcher, so spare capacity looks short; but it is slow
    because the machine is out of CPU, and another worker would take more of it."""
    import asyncio

    from gateway.supervisor.node import Node
    from tests.gw import make_gateway

    tgw = make_gateway(tmp_path)
    tgw.set("node", "kamailio", True)
    tgw.set("node", "workers", 1)
    tgw.set("node", "max_workers", 3)
    gw = tgw.open()
    try:
        node = Node(gw)
        started: list[int] = []

        async def start_worker(w) -> None:
            started.append(w.index)

        node.pool.start_worker = start_worker  # type: ignore[method-assign]
        [w] = node.pool.workers
        w.ready, w.slow = True, True
        asyncio.run(node.pool.size())
        assert started == [] and len(node.pool.workers) == 1, "no growth while starved"
        w.slow = False
        node.links.calls_on = lambda index: 2  # type: ignore[method-assign]  # both its calls taken
        asyncio.run(node.pool.size())
        assert started == [1], "it grows for capacity once the worker answers again"
    finally:
        gw.close()
