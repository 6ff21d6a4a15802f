"""Who is writing a recording, and whether that writer still lives.

A recording row names its writer as host/node:pid:start-time (the start time from /proc tells
a live process from a later one that reused the pid; the node name tells two nodes on one host
apart, each with its own spool). Crash recovery touches only rows whose writer was on this host
and this node and is provably gone, so it is safe to run while other workers, or other nodes
sharing the index, record.
"""

from __future__ import annotations

import os
import socket


def start_time(pid: int) -> str | None:
    """The start time /proc gives a live process (in clock ticks since boot), or None for
    a pid that runs no process (or a dead, unreaped one)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None  # dead, not yet reaped (its parent died too, and PID 1 may not reap)
    return fields[19].decode()


def _place(node: str) -> str:
    return f"{socket.gethostname()}/{node}" if node else socket.gethostname()


def process_token(pid: int | None = None, node: str = "") -> str:
    pid = os.getpid() if pid is None else pid
    return f"{_place(node)}:{pid}:{start_time(pid)}"


def writer_is_gone(token: str | None, node: str = "") -> bool:
    """True if `token` names a process of this host (and node) that no longer runs; writers on
    other hosts or nodes: False. A token without a node (written before nodes had names) is
    this host's."""
    if not token:
        return True
    rest = token.split(":")
    if len(rest) != 3 or rest[0] not in (_place(node), socket.gethostname()):
        return False
    try:
        pid = int(rest[1])
    except ValueError:
        return True
    return start_time(pid) != rest[2]
