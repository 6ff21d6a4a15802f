"""Benchmark: what TLS and SRTP cost a node, against plain SIP and RTP in the same run.

    .venv/bin/python bench/srtp_cost.py --calls 16 --workers 8 --hold 30 --rounds 2

The same node (Kamailio + workers) takes `calls` concurrent recorded calls twice per round:
once plain (SIP over UDP, RTP), once encrypted (SIP over TLS to the front door and on to the
workers, SDES SRTP on the caller leg and the helpline leg, a sips: PBX). Callers and PBXs are
pjsua2 processes (simphone), the same in both phases, each PBX process answering four calls.
Reported per phase: node CPU (supervisor, Kamailio, workers, from /proc) per recorded
call-second, measured over the stretch when every call is bridged and recorded; the ratio
encrypted/plain per round. Phases alternate so that the machine's drift hits both. Working
files go under the system temp directory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.node_load import cpu_s, run_header, tree_pids  # noqa: E402
from tests.calls import CallLab, Proc, free_port  # noqa: E402
from tests.tlscerts import TestCA  # noqa: E402

PER_PBX = 4  # calls one pjsua2 PBX process answers at once (four legs per process)


def run_phase(tmp: Path, secure: bool, calls: int, workers: int, hold: float) -> dict[str, object]:
    tmp.mkdir(parents=True)
    lab = CallLab(tmp, workers=workers)
    text = lab.gw.config.read_text().replace(
        "rtp_port_range = 100", f"rtp_port_range = {max(800, 16 * workers)}"
    )
    lab.gw.config.write_text(text)
    ca = TestCA(tmp / "pki")
    pbxs = (calls + PER_PBX - 1) // PER_PBX
    ports = [free_port() for _ in range(pbxs)]
    scheme = "sips" if secure else "sip"
    routes = "".join(
        f'\n[[routes]]\nnumber = "{1000 + i}"\npbx = "{scheme}:helpline@127.0.0.1:{port}"\n'
        for i, port in enumerate(ports)
    )
    lab.gw.config.write_text(lab.gw.config.read_text() + routes)
    tls_port = free_port()
    if secure:
        cert, key = ca.issue("frontdoor")
        for section, k, v in [
            ("sip", "tls_listen", f"127.0.0.1:{tls_port}"),
            ("sip", "tls_cert", str(cert)),
            ("sip", "tls_key", str(key)),
            ("sip", "srtp", "mandatory"),
            ("pbx", "uri", f"sips:helpline@127.0.0.1:{ports[0]}"),
            ("pbx", "srtp", "mandatory"),
            ("pbx", "tls_ca", str(ca.path)),
        ]:
            lab.gw.set(section, k, v)
    pbx_cert, pbx_key = ca.issue("pbx")
    procs: list[Proc] = []
    try:
        lab.start_gateway()
        assert lab.gateway is not None
        for port in ports:
            tls = ["--tls-port", str(port), "--tls-cert", str(pbx_cert), "--tls-key", str(pbx_key), "--sips"]
            p = Proc(
                [
                    sys.executable, "-m", "simphone.phone", "pbx", "--port", str(free_port() if secure else port),
                    "--tone", "1000", "--calls", str(PER_PBX), "--timeout", str(hold + 60), "--quiet",
                    *(tls + ["--srtp", "mandatory"] if secure else []),
                ]
            )  # fmt: skip
            procs.append(p)
        time.sleep(1.5)
        callers = []
        for i in range(calls):
            number = 1000 + i // PER_PBX
            target = (
                f"sip:{number}@127.0.0.1:{tls_port};transport=tls"
                if secure
                else f"sip:{number}@127.0.0.1:{lab.sip_port}"
            )
            c = Proc(
                [
                    sys.executable, "-m", "simphone.phone", "caller", "--port", str(free_port()),
                    "--target", target, "--tone", "440", "--hangup-after", str(hold),
                    "--timeout", str(hold + 60), "--srtp", "mandatory" if secure else "off",
                    *(["--tls"] if secure else []),
                ]
            )  # fmt: skip
            callers.append(c)
            procs.append(c)
            time.sleep(0.1)
        for c in callers:
            c.wait_for(lambda c=c: c.event("confirmed"), 30)
        time.sleep(3.5)  # notice (1.5 s), grace (1 s), the PBX's answer: every call is recorded now
        node = tree_pids(lab.gateway.proc.pid)
        window = max(5.0, hold - 3.5 - 2 - 0.1 * calls)
        cpu0, t0 = cpu_s(node), time.monotonic()
        time.sleep(window)
        cpu1, t1 = cpu_s(tree_pids(lab.gateway.proc.pid)), time.monotonic()
        for c in callers:
            c.wait_exit(hold + 60)
        ok = sum(1 for c in callers if ((c.event("disconnected") or {}).get("connected_s") or 0) > hold - 1)
        protos = sorted({e["proto"] for c in callers for e in c.events() if e["event"] == "stream"})
        lab.gateway.stop()
        recs = lab.gw.open().index.list_recordings()
        return {
            "secure": secure,
            "calls": calls,
            "calls_completed": ok,
            "recordings": len(recs),
            "caller_media": protos,
            "window_s": round(t1 - t0, 2),
            "node_cpu_ms_per_recorded_call_second": round((cpu1 - cpu0) * 1000 / (calls * (t1 - t0)), 2),
        }
    finally:
        lab.close()
        for p in procs:
            if p.proc.poll() is None:
                p.proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=16)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--hold", type=float, default=30.0)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    print(run_header(), file=sys.stderr)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="srtp-bench-") as d:
        for r in range(args.rounds):
            order = (False, True) if r % 2 == 0 else (True, False)
            phases = {}
            for secure in order:
                phases["encrypted" if secure else "plain"] = run_phase(
                    Path(d) / f"r{r}-{'tls' if secure else 'plain'}",
                    secure,
                    args.calls,
                    args.workers,
                    args.hold,
                )
            ratio = (
                phases["encrypted"]["node_cpu_ms_per_recorded_call_second"]  # type: ignore[operator]
                / phases["plain"]["node_cpu_ms_per_recorded_call_second"]
            )
            rounds.append({**phases, "encrypted_over_plain": round(ratio, 3)})
    print(
        json.dumps(
            {
                "rounds": rounds,
                "mean_ratio": round(statistics.mean(r["encrypted_over_plain"] for r in rounds), 3),  # type: ignore[misc]
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
