"""Kernel names for the gateway's own threads. Python names a thread for itself only; the
kernel (top -H, ps -L, /proc/PID/task/TID/comm, py-spy, the benchmarks' CPU per thread) sees
every thread a process starts under the process's own name, so the asyncio loop, the recorder
engine and the executor's threads could not be told apart."""

from __future__ import annotations

import ctypes
import threading
from typing import Any

_PR_SET_NAME = 15
_COMM_MAX = 15  # bytes, without the terminating NUL


def name_current(name: str | None = None) -> None:
    """Give the calling thread `name` (default: its Python name) in the kernel, cut to 15
    bytes. Best effort: where prctl is missing, nothing happens."""
    raw = (name or threading.current_thread().name).encode("utf-8", "replace")[:_COMM_MAX]
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_NAME, ctypes.c_char_p(raw), 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Thread(threading.Thread):
    """A thread that takes its Python name in the kernel too, as it starts."""

    def run(self) -> None:
        name_current(self.name)
        super().run()


def executor_initializer(*_: Any) -> None:
    """For ThreadPoolExecutor(initializer=...): each worker thread names itself."""
    name_current()
