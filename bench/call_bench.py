"""Benchmark: what the gateway adds to a call, and what a worker costs in memory.

    .venv/bin/python bench/call_bench.py --sequential 500

Runs a real `gateway run` and pjsua2 peers (simphone/phone.py) on loopback:
- decision -> PBX INVITE: the gateway's consent event to the PBX receiving the INVITE;
- one-way audio latency: the caller starts a tone, the PBX notes its onset. The same two peers
  calling each other directly, in the same run, are the baseline; the difference is the
  gateway's bridge (its jitter buffer, conference bridge and the second RTP hop);
- RSS of the worker idle, with two bridged calls, and after N sequential short calls.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.calls import CallLab, Proc, free_port  # noqa: E402


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def gateway_pid(lab: CallLab) -> int:
    assert lab.gateway is not None
    return lab.gateway.proc.pid


def latency(lab: CallLab, via_gateway: bool) -> float:
    pbx = lab.peer("pbx", "--detect-onset", "--timeout", "30")
    # The tone starts well after the gateway has bridged (notice 1.5 s + grace 0.3 s + dialling),
    # so that the measurement is of audio through the bridge, not of the consent step.
    args = ["--tone-at", "4.0", "--tone", "440", "--hangup-after", "5.5", "--timeout", "30"]
    if via_gateway:
        caller = lab.peer("caller", *args)
    else:
        caller = Proc(
            [
                sys.executable,
                "-m",
                "simphone.phone",
                "caller",
                "--port",
                str(free_port()),
                "--target",
                f"sip:agent@127.0.0.1:{lab.pbx_port}",
                *args,
            ]
        )
        lab.procs.append(caller)
    caller.wait_exit()
    pbx.wait_exit()
    start = caller.event("tone_started")
    onset = pbx.event("onset")
    assert start and onset, (caller.lines[-3:], pbx.lines[-3:])
    return onset["at"] - start["at"]


def rss_growth(lab: CallLab, pid: int, n: int, out: dict[str, object]) -> None:
    """RSS over `n` sequential short calls (declined at once, so they are short)."""
    rss_before = rss_kb(pid)
    t0 = time.monotonic()
    pbx = lab.peer("pbx", "--calls", str(n), "--timeout", str(n * 10))
    rss_50 = rss_before
    for i in range(n):
        c = lab.peer("caller", "--digits", "9@0.2", "--hangup-after", "0.6", "--timeout", "20")
        c.wait_exit()
        lab.procs.remove(c)
        if i == 49:
            rss_50 = rss_kb(pid)
    pbx.wait_exit()
    out["sequential_calls"] = n
    out["sequential_seconds"] = round(time.monotonic() - t0, 1)
    out["rss_before_sequential_mb"] = round(rss_before / 1024, 1)
    out["rss_after_sequential_mb"] = round(rss_kb(pid) / 1024, 1)
    out["rss_growth_kb_per_call_after_warmup"] = round((rss_kb(pid) - rss_50) / (n - 50), 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sequential", type=int, default=500, help="short calls for the RSS growth figure")
    ap.add_argument("--latency-runs", type=int, default=5)
    args = ap.parse_args()
    out: dict[str, object] = {"machine": f"{platform.machine()}, {platform.python_version()}"}
    with tempfile.TemporaryDirectory() as d:
        lab = CallLab(Path(d))
        lab.gw.config.write_text(lab.gw.config.read_text().replace("grace_s = 1.0", "grace_s = 0.3"))
        try:
            lab.start_gateway()
            pid = gateway_pid(lab)
            time.sleep(1)
            out["rss_idle_mb"] = round(rss_kb(pid) / 1024, 1)
            # Decision -> INVITE, and RSS with two bridged calls.
            from tests.test_calls_bad_input import subscribe

            events = subscribe(lab)
            pbx = lab.peer("pbx", "--calls", "2", "--timeout", "40")
            callers = [lab.peer("caller", "--hangup-after", "5", "--timeout", "30") for _ in range(2)]
            time.sleep(4.5)
            out["rss_two_calls_mb"] = round(rss_kb(pid) / 1024, 1)
            for c in callers:
                c.wait_exit()
            pbx.wait_exit()
            consent_ts = sorted(e["ts"] for e in events() if e["type"] == "call.consent")
            invites = sorted(e["wall"] for e in pbx.events() if e["event"] == "incoming")
            delays = [(i - c) * 1000 for c, i in zip(consent_ts, invites, strict=False)]
            out["decision_to_pbx_invite_ms"] = [round(x, 1) for x in delays]
            via = [latency(lab, True) * 1000 for _ in range(args.latency_runs)]
            direct = [latency(lab, False) * 1000 for _ in range(args.latency_runs)]
            out["one_way_latency_ms_via_gateway_median"] = round(statistics.median(via), 1)
            out["one_way_latency_ms_direct_median"] = round(statistics.median(direct), 1)
            out["latency_added_by_gateway_ms"] = round(statistics.median(via) - statistics.median(direct), 1)
            if args.sequential >= 60:  # the growth figure needs a warm-up of 50 calls
                rss_growth(lab, pid, args.sequential, out)
        finally:
            lab.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
