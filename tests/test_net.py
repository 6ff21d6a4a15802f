"""The free-port helpers the demo, the tests and simphone use pick ports the kernel will not hand
out for outgoing connections meanwhile (CI stop 19: SeaweedFS's own dialling took the S3 port)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from gateway.telephony import net
from gateway.telephony.net import free_port, free_port_run


def _ephemeral_first() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_free_ports_are_below_the_ephemeral_range_and_bindable() -> None:
    first = _ephemeral_first()
    for _ in range(50):
        port = free_port()
        assert 1024 <= port < first
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind(("127.0.0.1", port))


def test_a_run_of_ports_skips_a_taken_one(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import random

    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", free_port()))
    t = taken.getsockname()[1]
    # Forget that t was handed out: the run must be refused because t is bound.
    monkeypatch.setattr(net, "_handed_out", {})
    picks = iter([t - 3, t - 3, t + 1])  # the first two runs would include the taken port
    monkeypatch.setattr(random, "randrange", lambda low, high: next(picks))
    try:
        assert free_port_run(8) == t + 1
    finally:
        taken.close()


def test_a_port_handed_out_is_not_handed_out_again_before_it_is_bound(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Two test nodes pick their ports, then start: the second's picks must not repeat the
    first's, which are still unbound when the second picks."""
    import random

    first = free_port_run(4)
    picks = iter([first + 2, first + 2, first + 10])  # the first two overlap the earlier run
    monkeypatch.setattr(random, "randrange", lambda low, high: next(picks))
    assert free_port_run(4) == first + 10


def test_ports_handed_out_long_ago_do_not_crowd_out_a_long_run(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A whole test run hands out thousands of ports; a node's 1000 RTP ports late in the run
    must still find room: only what was handed out within REMEMBER_S is kept back."""
    low, high = net._outside_ephemeral()
    stale = time.monotonic() - net.REMEMBER_S - 1
    monkeypatch.setattr(net, "_handed_out", {p: stale for p in range(low, high, 7)})
    free_port_run(1000)
    monkeypatch.setattr(net, "_handed_out", {p: time.monotonic() for p in range(low, high, 7)})
    with pytest.raises(OSError, match="no run of 1000"):
        free_port_run(1000)
