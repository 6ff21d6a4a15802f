"""Benchmark: concurrent SIPREC recording sessions against B2BUA calls, the same node, one run.

    .venv/bin/python bench/siprec_load.py --workers 4 --sessions 8 --hold 30

Two phases through Kamailio and the same worker pool:
1. B2BUA: `--sessions` sipp callers consent by silence and are recorded (bench/node_load.py's
   consented phase: G.711 speech both ways, a sipp PBX);
2. SIPREC: pjsua2 recording clients (simphone's siprec role, up to four sessions per process)
   fork `--sessions` two-party calls to the node at once, G.711 on both streams; every session
   is granted when its key window closes and recorded from its start.
Reported per phase: sessions completed, CPU of the node's processes (supervisor, Kamailio,
workers) per recorded call- or session-second, and the recordings' frames present (each
recording decrypted with the benchmark's identity, its samples against its expected length).
The clients' own CPU is not counted: they stand for an SBC.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.node_load import (  # noqa: E402
    completeness,
    configure,
    cpu_s,
    phase,
    run_header,
    thread_cpu,
    thread_cpu_ms,
    tree_pids,
)
from gateway import age  # noqa: E402
from gateway.recording import wav  # noqa: E402
from tests.calls import CallLab  # noqa: E402

WINDOW_S = 2.0


def _seconds(a: str, b: str) -> float:
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(b) - parse(a)).total_seconds()


def siprec_phase(lab: CallLab, sessions: int, hold_s: float) -> dict[str, object]:
    root = lab.gateway.proc.pid  # type: ignore[union-attr]
    per_client = 4
    counts = [min(per_client, sessions - i) for i in range(0, sessions, per_client)]
    pids = tree_pids(root)
    c0, by0 = cpu_s(pids), thread_cpu(pids)
    t0 = time.monotonic()
    clients = [
        lab.peer(
            "siprec",
            "--target",
            f"sip:srs@127.0.0.1:{lab.sip_port}",
            "--sessions",
            str(n),
            "--hangup-after",
            str(hold_s),
            "--timeout",
            str(hold_s + 60),
        )
        for n in counts
    ]
    for c in clients:
        c.wait_exit(hold_s + 90)
    wall = time.monotonic() - t0
    pids = tree_pids(root)
    used = cpu_s(pids) - c0
    by1 = thread_cpu(pids)
    gone = [e for c in clients for e in c.events() if e.get("event") == "disconnected"]
    ok = [e for e in gone if e.get("code") == 200 and e.get("connected_s")]
    session_s = sum(float(e["connected_s"]) for e in ok)
    return {
        "sessions_ok": len(ok),
        "sessions_failed": sessions - len(ok),
        "client_processes": len(clients),
        "wall_s": round(wall, 1),
        "node_cpu_s": round(used, 2),
        "node_cpu_ms_per_session_second": round(used / session_s * 1000, 2) if session_s else None,
        "cpu_ms_per_session_second_by_thread": thread_cpu_ms(by0, by1, session_s) if session_s else {},
    }


def siprec_completeness(lab: CallLab) -> dict[str, object]:
    """Each SIPREC recording's samples against its session's length (it is written from the
    session's start, the key window included)."""
    gw = lab.gw.open()
    identities = age.load_identity_file(lab.gw.key)
    missing = []
    for rec in gw.index.list_recordings():
        call = gw.index.get_call(rec.call_id or "")
        if call.kind != "siprec" or call.ended_at is None:
            continue
        with gw.store.open(rec.object_name) as f:
            plain = age.AgeReader(f, identities).read_all()
        samples = (len(plain) - wav.HEADER_SIZE) // 4
        span = _seconds(call.started_at, call.ended_at)
        missing.append(max(0.0, 1 - samples / 8000 / span) * 100 if span > 0 else 0.0)
    return {
        "recordings": len(missing),
        "frames_missing_percent_mean": round(statistics.mean(missing), 3) if missing else None,
        "frames_missing_percent_max": round(max(missing), 3) if missing else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--sessions", type=int, default=8, help="concurrent calls, then sessions")
    ap.add_argument("--hold", type=float, default=30, help="seconds each call or session lasts")
    args = ap.parse_args()
    if args.sessions > 2 * args.workers:
        ap.error(f"{args.workers} workers hold {2 * args.workers} calls or sessions at most")
    out: dict[str, object] = {"workers": args.workers, "sessions": args.sessions, "hold_s": args.hold}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        lab = CallLab(tmp, workers=args.workers)
        configure(lab, 40)
        lab.gw.set("siprec", "enabled", True)
        lab.gw.set("siprec", "clients", ["127.0.0.1"])
        lab.gw.set("siprec", "window_s", WINDOW_S)
        try:
            lab.start_gateway()
            b2bua = phase(lab, "5", args.sessions, args.hold, tmp)
            b2bua["completeness"] = completeness(lab)
            out["b2bua"] = b2bua
            time.sleep(2)
            siprec = siprec_phase(lab, args.sessions, args.hold)
            siprec["completeness"] = siprec_completeness(lab)
            out["siprec"] = siprec
            base = b2bua.get("node_cpu_ms_per_call_second")
            mine = siprec.get("node_cpu_ms_per_session_second")
            out["cpu_ratio_siprec_over_b2bua"] = (
                round(float(mine) / float(base), 3)  # type: ignore[arg-type]
                if base and mine and not math.isnan(float(base))  # type: ignore[arg-type]
                else None
            )
        finally:
            lab.close()
    print(run_header())
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
