"""Who is writing a recording, and whether that writer still lives.

A recording row names its writer as host:pid:start-time (the start time from /proc tells a
live process from a later one that reused the pid). Crash recovery touches only rows whose
writer is on this host and provably gone, so it is safe to run while other workers record.
"""

from __future__ import annotations

import os
import socket


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    return stat[stat.rindex(b")") + 2 :].split()[19].decode()


def process_token(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def writer_is_gone(token: str | None) -> bool:
    """True if `token` names a process on this host that no longer runs; unknown hosts: False."""
    if not token:
        return True
    rest = token.split(":")
    if len(rest) != 3 or rest[0] != socket.gethostname():
        return False
    try:
        pid = int(rest[1])
    except ValueError:
        return True
    return _start_time(pid) != rest[2]
