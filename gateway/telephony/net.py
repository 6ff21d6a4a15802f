"""Small network helpers: the start-up port check, and free ports for the demo and the tests."""

from __future__ import annotations

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


def _outside_ephemeral() -> tuple[int, int]:
    """The port range [low, high) to pick from: below the kernel's ephemeral range. A port the
    kernel hands out for outgoing connections (a SeaweedFS component dialling another, a worker's
    TCP connection to the PBX) can take a port picked from inside that range between the pick and
    the bind of the process it was picked for."""
    try:
        first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first = 32768
    low = 20000 if first > 25000 else 10000
    return low, max(first, low + 1000)


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


def free_port_run(n: int, host: str = "127.0.0.1") -> int:
    """The first of `n` consecutive ports free for UDP and TCP on `host` (a node's workers),
    outside the ephemeral range, none of them handed out lately by this process. Random, so
    two processes rarely pick the same one."""
    import random

    now = time.monotonic()
    for port in [p for p, t in _handed_out.items() if now - t > REMEMBER_S]:
        del _handed_out[port]
    low, high = _outside_ephemeral()
    for _ in range(200):
        base = random.randrange(low, high - n)
        if any(p in _handed_out for p in range(base, base + n)):
            continue
        held: list[socket.socket] = []
        try:
            for p in range(base, base + n):
                socks = _bindable(host, p)
                if socks is None:
                    break
                held += socks
            else:
                _handed_out.update(dict.fromkeys(range(base, base + n), now))
                return base
        finally:
            for s in held:
                s.close()
    raise OSError(f"no run of {n} free ports on {host}")
