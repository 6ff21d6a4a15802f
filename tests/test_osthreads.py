"""The gateway's threads carry their names in the kernel (what top -H, ps -L, py-spy and the
benchmarks' CPU per thread read), cut to the kernel's 15 bytes."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from gateway import osthreads
from gateway.app import runtime


def comm(native_id: int) -> str:
    return Path(f"/proc/self/task/{native_id}/comm").read_text().strip()


def test_a_thread_takes_its_name_in_the_kernel() -> None:
    seen: list[str] = []
    t = osthreads.Thread(target=lambda: seen.append(comm(threading.get_native_id())), name="recorder-engine")
    t.start()
    t.join()
    assert seen == ["recorder-engine"]
    t = osthreads.Thread(
        target=lambda: seen.append(comm(threading.get_native_id())), name="a-rather-long-thread-name"
    )
    t.start()
    t.join()
    assert seen[-1] == "a-rather-long-t"


def test_the_service_loops_executor_threads_are_named() -> None:
    seen: list[str] = []

    async def run(stop: asyncio.Event) -> None:
        seen.append(await asyncio.to_thread(lambda: comm(threading.get_native_id())))

    runtime.serve_until_signalled(run, sigint=False)
    assert seen and seen[0].startswith("gw-io"), seen
