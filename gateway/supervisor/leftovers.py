"""What a node killed outright leaves running, found and ended when it starts again.

A supervisor that ends normally stops Kamailio, the fork server and the workers itself. Killed
with SIGKILL (an OOM kill, a hard stop outside systemd), it cannot: they go on serving the calls
in progress (nothing drops because the supervisor died), but they hold the node's ports, and
the next `gateway run` could not start. So the supervisor keeps a list of its children with
their start times (`run/children.json`), and at its next start it ends those that still run
(SIGTERM, then SIGKILL after a grace period): only processes with the recorded pid *and* start
time, so a pid the kernel has since given to another program is never touched. Under systemd
the unit's control group ends them anyway.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path

from ..storage.liveness import start_time

log = logging.getLogger(__name__)
FILE = "children.json"
GROUP_ROLES = ("kamailio",)  # a process group of its own: Kamailio forks its own workers


def record(run_dir: Path, children: dict[str, int | None]) -> None:
    """Keep the node's children (role -> pid) with their start times, replacing the list."""
    entries = [
        {"role": role, "pid": pid, "start": start_time(pid)}
        for role, pid in children.items()
        if pid is not None and start_time(pid) is not None
    ]
    tmp = run_dir / (FILE + ".new")
    tmp.write_text(json.dumps(entries))
    tmp.replace(run_dir / FILE)


def reap(run_dir: Path, grace_s: float = 5.0) -> list[str]:
    """End what the last run of this node left running; what was ended, for the log."""
    try:
        entries = json.loads((run_dir / FILE).read_text())
    except (OSError, ValueError):
        return []
    alive = [
        e
        for e in entries
        if isinstance(e, dict)
        and isinstance(e.get("pid"), int)
        and e["pid"] != os.getpid()
        and e.get("start") is not None
        and start_time(e["pid"]) == e["start"]
    ]
    for e in alive:
        _signal(e, signal.SIGTERM)
    _wait_gone(alive, grace_s)
    for e in alive:
        if _running(e):
            _signal(e, signal.SIGKILL)
    # SIGKILL is not an exit: a process lets go of its sockets only as it ends, which takes a
    # moment for a worker with threads and memory to unmap. The caller binds those ports next.
    _wait_gone(alive, KILL_WAIT_S)
    (run_dir / FILE).unlink(missing_ok=True)
    return [f"{e['role']} (pid {e['pid']})" for e in alive]


KILL_WAIT_S = 10.0  # for processes SIGKILLed to end (they cannot refuse; only exiting takes time)


def _running(entry: dict[str, object]) -> bool:
    pid = int(entry["pid"])  # type: ignore[call-overload]
    if start_time(pid) == entry["start"]:
        return True
    # Kamailio's children hold its listening sockets too; a group's id is not given to another
    # process while a member lives, so members of this group are still the old run's.
    return entry.get("role") in GROUP_ROLES and _group_alive(pid)


def _group_alive(pgid: int) -> bool:
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()  # state, ppid, pgrp, ...
        if fields[0] not in (b"Z", b"X") and int(fields[2]) == pgid:
            return True
    return False


def _wait_gone(entries: list[dict[str, object]], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(_running(e) for e in entries):
        time.sleep(0.05)


def _signal(entry: dict[str, object], sig: int) -> None:
    pid = int(entry["pid"])  # type: ignore[call-overload]
    try:
        if entry.get("role") in GROUP_ROLES:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
