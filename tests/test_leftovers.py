"""What a killed node left running is ended, and its ports free, by the time reap() returns
(supervisor/leftovers.py): the node binds those ports right after it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from gateway.storage.liveness import start_time
from gateway.supervisor import leftovers

# A process that holds a UDP port, ignores SIGTERM (as a worker draining its calls may for a
# while), has memory to unmap when it is killed, and forks `children` that do the same in its
# process group (as Kamailio's children hold its listening sockets).
HOLDER = textwrap.dedent(
    """
    import os, signal, socket, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    port, children = int(sys.argv[1]), int(sys.argv[2])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    for _ in range(children):
        if os.fork() == 0:
            break
    ballast = b"\\1" * (384 << 20)  # touched pages: exiting takes a moment
    print("ready", flush=True)
    while True:
        time.sleep(1)
    """
)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def holder(port: int, children: int = 0, group: bool = False) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(port), str(children)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=group,
    )
    assert p.stdout is not None
    for _ in range(children + 1):
        assert p.stdout.readline().strip() == "ready"
    return p


def bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def group_members(pgid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_bytes()
            except OSError:
                continue
            fields = stat[stat.rindex(b")") + 2 :].split()
            if fields[0] not in (b"Z", b"X") and int(fields[2]) == pgid:
                out.append(int(d.name))
    return out


def test_workers_that_refuse_sigterm_are_killed_and_gone_when_reap_returns(tmp_path: Path) -> None:
    ports = [free_udp_port() for _ in range(3)]
    procs = [holder(p) for p in ports]
    try:
        assert not any(bindable(p) for p in ports)
        leftovers.record(tmp_path, {f"worker-{i}": p.pid for i, p in enumerate(procs)})
        ended = leftovers.reap(tmp_path, grace_s=0.2)
        assert sorted(ended) == sorted(f"worker-{i} (pid {p.pid})" for i, p in enumerate(procs))
        # Right away, with no retry: the node's preflight checks these ports next.
        assert [bindable(p) for p in ports] == [True] * 3
        assert all(start_time(p.pid) is None for p in procs)
        assert not (tmp_path / leftovers.FILE).exists()
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_kamailio_children_are_ended_with_its_group_and_free_its_port(tmp_path: Path) -> None:
    port = free_udp_port()
    leader = holder(port, children=3, group=True)
    try:
        assert len(group_members(leader.pid)) == 4
        leftovers.record(tmp_path, {"kamailio": leader.pid})
        leftovers.reap(tmp_path, grace_s=0.2)
        assert group_members(leader.pid) == []
        assert bindable(port)
    finally:
        if group_members(leader.pid):
            os.killpg(leader.pid, signal.SIGKILL)
        leader.wait()


def test_a_pid_given_to_another_process_is_not_touched(tmp_path: Path) -> None:
    port = free_udp_port()
    p = holder(port)
    try:
        (tmp_path / leftovers.FILE).write_text(f'[{{"role": "worker-0", "pid": {p.pid}, "start": "1"}}]')
        assert leftovers.reap(tmp_path, grace_s=0.2) == []
        assert p.poll() is None and not bindable(port)
    finally:
        p.kill()
        p.wait()
