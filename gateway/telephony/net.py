"""Small network helpers: the start-up port check, and free ports for the demo and the tests."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError

UDP, TCP = socket.SOCK_DGRAM, socket.SOCK_STREAM


def check_ports_free(wanted: Sequence[tuple[str, int, socket.SocketKind, str]]) -> None:
    """Refuse to start, naming the setting to change, when a port the gateway needs is taken
    (another gateway, a PBX, a stale Kamailio, Debian's own kamailio.service): otherwise a
    listener fails to bind after the start, deep inside pjsua or Kamailio.
    `wanted`: (host, port, UDP or TCP, the setting that chose it)."""
    for host, port, kind, setting in wanted:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind) as s:
            if kind == TCP:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError as e:
                proto = "UDP" if kind == UDP else "TCP"
                raise ConfigError(
                    f"{setting} ({proto}): cannot use {host}:{port}: {e.strerror} (is another "
                    "gateway, Kamailio or PBX running there?)"
                ) from None


# Parallel test runners (pytest-xdist) each set this to their own slice of the range below,
# "LOW-HIGH" (tests/conftest.py), so two runners never pick the same port between one's pick
# and its server's bind; simphone and other children inherit it.
PORTS_ENV = "GATEWAY_FREE_PORTS"


def _outside_ephemeral() -> tuple[int, int]:
    """The port range [low, high) to pick from: below the kernel's ephemeral range. A port the
    kernel hands out for outgoing connections (a SeaweedFS component dialling another, a worker's
    TCP connection to the PBX) can take a port picked from inside that range between the pick and
    the bind of the process it was picked for. $GATEWAY_FREE_PORTS narrows it."""
    try:
        first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first = 32768
    low = 20000 if first > 25000 else 10000
    high = max(first, low + 1000)
    narrowed = os.environ.get(PORTS_ENV, "")
    if narrowed:
        try:
            a, b = (int(x) for x in narrowed.split("-"))
        except ValueError:
            raise ConfigError(f"{PORTS_ENV}={narrowed!r}: expected LOW-HIGH") from None
        if not low <= a < b <= high:
            raise ConfigError(f"{PORTS_ENV}={narrowed!r}: must lie within {low}-{high}")
        return a, b
    return low, high


def port_slices(n: int) -> list[str]:
    """The picking range cut into `n` disjoint $GATEWAY_FREE_PORTS values."""
    low, high = _outside_ephemeral()
    step = (high - low) // n
    return [f"{low + i * step}-{low + (i + 1) * step}" for i in range(n)]


def _bindable(host: str, port: int) -> list[socket.socket] | None:
    """Sockets bound to `port` for both UDP and TCP on `host`, or None when either is taken."""
    socks: list[socket.socket] = []
    try:
        for kind in (UDP, TCP):
            s = socket.socket(socket.AF_INET, kind)
            socks.append(s)
            s.bind((host, port))
        return socks
    except OSError:
        for s in socks:
            s.close()
        return None


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host` (SIP listens on both), outside the ephemeral
    range."""
    return free_port_run(1, host)


# Ports this process handed out lately (port -> when): a port picked for one server is free
# until that server binds it, so a second pick before then (two test nodes set up, then started)
# must not take it. Remembered for REMEMBER_S: by then it is bound, or it was never used; a
# longer memory (a whole test run's) leaves no room for a long run of ports.
REMEMBER_S = 120.0
_handed_out: dict[int, float] = {}
# Where the next search starts: just past the last run handed out, as the kernel hands out
# ephemeral ports. Runs placed at random would cut a narrow range (a parallel test runner's
# slice) into gaps too short for the next run long before the range is used up.
_next: int | None = None
# Left unused after each run: a port handed out is often the first of several its user takes
# (sipp's -mp and the ports after it, RTCP beside RTP, a worker pool grown past its first size).
SPACING = 8


def free_port_run(n: int, host: str = "127.0.0.1") -> int:
    """The first of `n` consecutive ports free for UDP and TCP on `host` (a node's workers),
    outside the ephemeral range, none of them handed out lately by this process. A process's first
    search starts at a random port, so two processes rarely pick the same one; each later one
    a few ports past the last run. Each goes on through the whole range (past each port found taken),
    so it finds a run whenever there is one."""
    import random

    global _next
    now = time.monotonic()
    for port in [p for p, t in _handed_out.items() if now - t > REMEMBER_S]:
        del _handed_out[port]
    low, high = _outside_ephemeral()
    last = high - n  # the highest first port of a run
    if last < low:
        raise OSError(f"no run of {n} free ports on {host}: the range {low}-{high} is smaller")
    base = _next if _next is not None and low <= _next <= last else random.randrange(low, last + 1)
    looked = 0
    while looked < last - low + 1 + n:  # every first port once, and past a wrap
        taken = next((p for p in range(base, base + n) if p in _handed_out), None)
        if taken is None:
            held: list[socket.socket] = []
            try:
                for p in range(base, base + n):
                    socks = _bindable(host, p)
                    if socks is None:
                        taken = p
                        break
                    held += socks
                else:
                    _handed_out.update(dict.fromkeys(range(base, base + n), now))
                    _next = base + n + SPACING
                    return base
            finally:
                for s in held:
                    s.close()
        step = taken - base + 1  # no run starting at or before the taken port can hold it
        looked += step
        base += step
        if base > last:
            base = low
    raise OSError(f"no run of {n} free ports on {host}")
