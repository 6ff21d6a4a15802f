"""`gateway run`: a worker listening on [sip] listen (the supervisor and pool come later)."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import resource
import signal

from ..errors import ConfigError
from ..telephony.prompts import PromptError
from . import open_gateway


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the gateway (one worker on [sip] listen)")
    p.set_defaults(func=run)


def harden_process() -> None:
    """No core dumps, not dumpable: a crash must not write call audio held in memory to disk,
    and processes of the same user cannot attach to read it (prctl PR_SET_DUMPABLE)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass


def run(args: argparse.Namespace) -> int:
    from ..telephony.worker import Worker

    harden_process()
    gw = open_gateway(args)
    try:
        worker = Worker(gw)
    except PromptError as e:
        raise ConfigError(f"prompts: {e}") from None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        ready = asyncio.Event()
        task = asyncio.create_task(worker.run(stop, ready))
        await ready.wait()
        host, port = gw.config.sip_listen
        print(f"gateway: listening for SIP on {host}:{port} (UDP, TCP); events on "
              f"{gw.config.calls.event_socket}", flush=True)
        await task

    asyncio.run(main())
    return 0
