"""Small network helpers: the start-up port check, and free ports for the demo and the tests."""

from __future__ import annotations

import socket
from collections.abc import Sequence

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


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host` (SIP listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((host, 0))
            port = u.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                    t.bind((host, port))
                return port
            except OSError:
                continue
    raise OSError(f"no port free for both UDP and TCP on {host}")


def free_port_run(n: int, host: str = "127.0.0.1") -> int:
    """The first of `n` consecutive ports free for UDP and TCP on `host` (a node's workers)."""
    import random

    for _ in range(200):
        base = random.randint(30000, 39000)
        socks: list[socket.socket] = []
        try:
            for p in range(base, base + n):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    s = socket.socket(socket.AF_INET, kind)
                    socks.append(s)
                    s.bind((host, p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise OSError(f"no run of {n} free ports on {host}")
