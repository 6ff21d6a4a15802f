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
    monkeypatch.setattr(net, "_next", None)
    monkeypatch.setattr(random, "randrange", lambda low, high: t - 3)  # a run across the taken port
    try:
        assert free_port_run(8) == t + 1
    finally:
        taken.close()


def test_a_port_handed_out_is_not_handed_out_again_before_it_is_bound(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Two test nodes pick their ports, then start: the second's picks must not repeat the
    first's, which are still unbound when the second picks."""
    import random

    first = free_port_run(4)
    monkeypatch.setattr(net, "_next", None)
    monkeypatch.setattr(random, "randrange", lambda low, high: first + 2)  # inside the earlier run
    second = free_port_run(4)
    assert second >= first + 4, (first, second)


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


def test_a_run_is_found_wherever_it_is_in_a_crowded_range(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A parallel runner's slice of the range, crowded with ports handed out lately: the one
    run left is found from any starting point, and a slice with none left says so."""
    monkeypatch.setenv(net.PORTS_ENV, net.port_slices(4)[1])
    low, high = net._outside_ephemeral()
    gap = low + (high - low) // 3
    now = time.monotonic()
    crowd = {p: now for p in range(low, high) if not gap <= p < gap + 120}
    for start in (low, gap + 50, high - 110):
        import random

        monkeypatch.setattr(net, "_handed_out", dict(crowd))
        monkeypatch.setattr(net, "_next", None)
        monkeypatch.setattr(random, "randrange", lambda a, b, s=start: s)
        base = free_port_run(100)
        assert gap <= base and base + 100 <= gap + 120, (start, base)
    monkeypatch.setattr(net, "_handed_out", {p: now for p in range(low, high, 50)})
    with pytest.raises(OSError, match="no run of 100"):
        free_port_run(100)


def test_the_slices_are_disjoint_and_a_bad_one_is_a_clear_error(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    slices = [tuple(int(x) for x in s.split("-")) for s in net.port_slices(4)]
    assert all(a < b <= c < d for (a, b), (c, d) in zip(slices, slices[1:], strict=False))
    from gateway.errors import ConfigError

    monkeypatch.setenv(net.PORTS_ENV, "80-90")
    with pytest.raises(ConfigError, match="must lie within"):
        free_port()
    monkeypatch.setenv(net.PORTS_ENV, "lots")
    with pytest.raises(ConfigError, match="LOW-HIGH"):
        free_port()


def test_runs_follow_each_other_so_a_slice_holds_as_many_as_fit(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A parallel runner's slice (3192 ports with four runners) takes 28 nodes' RTP runs within
    REMEMBER_S: placed at random they would leave only gaps too short after a dozen."""
    monkeypatch.setenv(net.PORTS_ENV, net.port_slices(4)[2])
    monkeypatch.setattr(net, "_handed_out", {})
    monkeypatch.setattr(net, "_next", None)
    low, high = net._outside_ephemeral()
    runs = [free_port_run(100) for _ in range((high - low) // (100 + net.SPACING) - 1)]
    assert len(set(runs)) == len(runs)
    assert all(low <= r and r + 100 <= high for r in runs)
