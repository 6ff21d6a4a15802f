"""What every process of the gateway that holds audio or keys does to itself, and how the
service's processes log and wait for their signal. Used by the command line and by a node's
forked workers alike."""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import resource
import signal
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .. import osthreads


def harden_process() -> None:
    """No core dumps, not dumpable: a crash must not write call audio held in memory to disk,
    and processes of the same user cannot attach to read it (prctl PR_SET_DUMPABLE). For every
    command that holds plaintext audio or an identity in memory: run, worker, demo, recordings
    export, subject requests, import-legacy. Forked children inherit both; exec'd ones (ffmpeg)
    inherit the core limit."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass


class JsonLogFormatter(logging.Formatter):
    """One JSON object a line, for journald and log shippers. Messages never carry caller
    numbers or audio: the code logs call ids, never numbers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(*, service: bool, verbose: bool = False) -> None:
    """The service's processes (run, its workers, the fork server) log JSON lines at INFO; a
    command logs plain lines, warnings only unless `verbose`."""
    handler = logging.StreamHandler()
    if service:
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if verbose or service else logging.WARNING, handlers=[handler])


def serve_until_signalled(
    run: Callable[[asyncio.Event], Coroutine[Any, Any, None]], *, sigint: bool = True
) -> None:
    """Run `run(stop)` until it returns; SIGTERM (and SIGINT, unless `sigint` is off: a node's
    worker leaves Ctrl-C in a terminal to its supervisor, which drains it) sets `stop`."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # asyncio.to_thread's threads, named in the kernel too (osthreads.py); the loop itself
        # is the main thread and keeps the process's name (pgrep, systemd and ps find it so).
        loop.set_default_executor(
            ThreadPoolExecutor(thread_name_prefix="gw-io", initializer=osthreads.executor_initializer)
        )
        for sig in (signal.SIGTERM, signal.SIGINT) if sigint else (signal.SIGTERM,):
            loop.add_signal_handler(sig, stop.set)
        await run(stop)

    asyncio.run(main())
