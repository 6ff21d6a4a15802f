"""Small network helpers shared by the demo and the tests."""

from __future__ import annotations

import socket


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
