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


_STATE = threading.local()  # lives in the calling thread's Python thread state


def keep_thread_state() -> None:
    """For a callback into Python on a thread Python did not start (pjmedia's clock thread):
    keep that thread's Python thread state from now on. Cheap to call on every callback.

    pjsua2's callbacks take the GIL with PyGILState_Ensure and let it go with PyGILState_Release.
    On a thread unknown to Python, each such pair creates a thread state and deletes it again:
    in CPython 3.11 that is an mmap and a munmap of the state's 16 KiB frame stack, its page
    faults, and the interpreter's bookkeeping, for every frame of every port (measured: about
    40 % of the clock thread's time under load; BENCHMARKS.md, cost per call, third pass).
    One Ensure of our own that is never released keeps the state: later pairs find it and only
    take and drop the GIL. A thread-local mark says whether this thread's state is kept: it
    lives in that state, so a state made afresh (a new thread, even one given a dead thread's
    id) has none. The state lives until the process ends; a thread that ends leaves it behind
    (a few KiB), so this is for threads that live about as long as the process (the worker
    keeps its sound device, and with it the clock thread, open)."""
    if getattr(_STATE, "kept", False):
        return
    _STATE.kept = True
    ctypes.pythonapi.PyGILState_Ensure()
