"""Chaos: two nodes on one PostgreSQL and one S3 store under churned recorded calls, one fault
at a time.

    .venv/bin/python bench/chaos.py --calls 40 --hold 20 --workers 14 --fault-s 60

Node A (127.0.0.2) and node B (127.0.0.3), each Kamailio and a worker pool, share a PostgreSQL
index (fsync on) and a SeaweedFS S3 bucket reached through a relay the run can cut. sipp
callers of the soak's four kinds (bench/soak.py: consent, decline by key, *9 withdrawal,
hang-up in the notice) keep `--calls` calls up across both nodes, a new call as each ends; a
sipp PBX answers behind each node. While they run, one fault at a time:

    pg_restart       PostgreSQL stopped (fast) and started again at once
    pg_stop          PostgreSQL stopped for --fault-s
    s3_stop          the S3 store unreachable for --fault-s (connections refused, open ones cut)
    worker_kill      node A's busiest worker SIGKILLed mid-call
    kamailio_kill    node A's Kamailio SIGKILLed
    supervisor_kill  node B's supervisor SIGKILLed, the node started again 10 s later
    spool_full       node B's spool (a tmpfs made for the run) filled for --fault-s

After each fault the run waits for the system to recover by itself (journals replayed, uploads
drained, every worker ready) and reports how long that took, then lets the calls that saw the
fault end before the next one. At the end every call in the index is attributed to the fault it
overlapped (or to none: the baseline) and every recording is fetched from the store and
decrypted: a consented call whose recording is missing or does not decrypt is lost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.node_load import configure, run_header, speech_loop  # noqa: E402
from bench.soak import GROUPS, start_caller, start_pbx  # noqa: E402
from gateway import age  # noqa: E402
from gateway.app.gateway import Gateway  # noqa: E402
from gateway.consent import receipt as receipts  # noqa: E402
from gateway.storage import journal  # noqa: E402
from tests import pg, s3  # noqa: E402
from tests.calls import CallLab  # noqa: E402
from tests.pcapgen import write_rtp_pcap  # noqa: E402

FAULTS = ("pg_restart", "pg_stop", "s3_stop", "worker_kill", "kamailio_kill", "supervisor_kill", "spool_full")
SPOOL_MB = 512  # node B's spool file system (enough for a store outage's backlog)


def iso(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


@dataclass
class Node:
    name: str
    lab: CallLab
    tmp: Path
    callers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    pbx: subprocess.Popen[bytes] | None = None
    spool_mount: Path | None = None

    def status(self) -> dict[str, Any]:
        try:
            return self.lab.node_status()
        except (OSError, ValueError):
            return {}

    def journal_backlog(self) -> int:
        d = self.lab.gw.dir / "journal"
        try:
            return journal.backlog(d) if d.is_dir() else 0
        except (OSError, ValueError):
            return -1

    def spool_files(self) -> int:
        return sum(1 for _ in (self.lab.gw.dir / "spool").glob("*.age"))


@dataclass
class Site:
    pg: pg.PgServer
    s3: s3.S3Server
    relay: s3.Outage
    db_url: str
    nodes: dict[str, Node]
    samples: list[dict[str, Any]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> dict[str, Any]:
        out: dict[str, Any] = {"wall": time.time()}
        for n in self.nodes.values():
            st = n.status()
            up = st.get("upload") or {}
            workers = st.get("workers") or []
            out[n.name] = {
                "journal": n.journal_backlog(),
                "upload_pending": up.get("pending"),
                "upload_failing": up.get("failing"),
                "upload_error": up.get("error"),
                "spool_files": n.spool_files(),
                "workers_ready": sum(1 for w in workers if w.get("ready")),
                "workers": len(workers),
                "worker_restarts": sum(w.get("restarts", 0) for w in workers),
                "kamailio_restarts": (st.get("kamailio") or {}).get("restarts"),
                "failopen": st.get("failopen"),
                "live_calls": st.get("live_calls"),
                "status_age_s": round(time.time() - st.get("ts", 0), 1) if st else None,
            }
        return out

    def run_sampler(self, every_s: float = 2.0) -> None:
        while not self.stop.wait(every_s):
            self.samples.append(self.sample())

    def settled(self) -> bool:
        s = self.sample()
        return all(
            s[n]["journal"] == 0
            and not s[n]["upload_pending"]
            and not s[n]["upload_failing"]
            and s[n]["workers"] > 0
            and s[n]["workers_ready"] == s[n]["workers"]
            and (s[n]["status_age_s"] or 99) < 5
            for n in self.nodes
        )


# -- faults -----------------------------------------------------------------------------------


def busiest_worker(node: Node) -> int:
    workers = node.status().get("workers") or []
    best = max(workers, key=lambda w: w.get("calls", 0))
    return int(best["pid"])


def fault(site: Site, name: str, hold_s: float, notes: dict[str, Any]) -> dict[str, Any]:
    """Apply fault `name`; returns when it is over (the faulty part, not the recovery)."""
    a, b = site.nodes["node-a"], site.nodes["node-b"]
    if name == "pg_restart":
        site.pg.halt()
        site.pg.resume()
    elif name == "pg_stop":
        site.pg.halt()
        notes["status_during"] = gateway_status(a, delay_s=hold_s / 2)
        time.sleep(hold_s / 2)
        site.pg.resume()
    elif name == "s3_stop":
        site.relay.halt()
        notes["status_during"] = gateway_status(a, delay_s=hold_s / 2)
        time.sleep(hold_s / 2)
        site.relay.resume()
    elif name == "worker_kill":
        pid = busiest_worker(a)
        notes["calls_on_it"] = next(
            (w.get("calls") for w in a.status().get("workers", []) if w.get("pid") == pid), None
        )
        os.kill(pid, signal.SIGKILL)
    elif name == "kamailio_kill":
        os.kill(int(a.status()["kamailio"]["pid"]), signal.SIGKILL)
    elif name == "supervisor_kill":
        assert b.lab.gateway is not None
        os.kill(b.lab.gateway.target_pid(), signal.SIGKILL)
        b.lab.gateway.wait_exit(10)
        time.sleep(10)
        t0 = time.monotonic()
        try:
            b.lab.start_gateway()
        except AssertionError as e:  # what holds the node's ports, for the finding
            held = subprocess.run(["ss", "-uantp"], capture_output=True, text=True).stdout
            notes["restart_failed"] = str(e)[-600:]
            ports = set(re.findall(r"127\.0\.0\.1:(\d+)", str(e)))
            notes["sockets"] = [ln for ln in held.splitlines() if any(f":{p} " in ln for p in ports)]
            raise
        notes["restart_to_ready_s"] = round(time.monotonic() - t0, 1)
    elif name == "spool_full":
        if b.spool_mount is None:
            notes["skipped"] = "no tmpfs for the spool (mount refused): not run"
            return notes
        filler = b.spool_mount / ".filler"
        chunk = b"\0" * (1 << 20)
        with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):
            while True:  # until ENOSPC (unbuffered: nothing left to fail at close)
                f.write(chunk)
        notes["status_during"] = gateway_status(b, delay_s=hold_s / 2)
        time.sleep(hold_s / 2)
        filler.unlink()
    else:
        raise ValueError(name)
    return notes


def gateway_status(node: Node, delay_s: float) -> dict[str, Any]:
    """`gateway status --json` as an operator would run it, `delay_s` into the fault."""
    time.sleep(delay_s)
    res = subprocess.run(
        [str(ROOT / ".venv/bin/gateway"), "--config", str(node.lab.gw.config), "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        body = json.loads(res.stdout)
        up = body.get("upload") or {}
        shown: Any = {
            "index": body.get("index"),
            "object_store": {k: up.get(k) for k in ("failing", "error", "pending")},
            "workers_ready": sum(1 for w in body.get("workers", []) if w.get("ready")),
            "nodes_up": {n.get("name"): n.get("up") for n in body.get("nodes", [])},
        }
    except ValueError:
        shown = (res.stdout + res.stderr).strip()[-300:]
    return {"exit": res.returncode, "shown": shown}


# -- accounting -------------------------------------------------------------------------------


def sipp_rows(stat: Path) -> list[dict[str, str]]:
    lines = stat.read_text().splitlines() if stat.exists() else []
    if len(lines) < 2:
        return []
    head = lines[0].split(";")
    return [dict(zip(head, line.split(";"), strict=False)) for line in lines[1:]]


def sipp_at(rows: list[dict[str, str]], t: float, key: str) -> int:
    """Cumulative counter `key` as of wall time `t` (the last dump at or before it)."""
    value = 0
    for r in rows:
        when = float(r.get("CurrentTime", "0").split("\t")[-1] or 0)
        if when > t:
            break
        value = int(r.get(key, 0) or 0)
    return value


FAIL_KEYS = (
    "FailedMaxUDPRetrans(C)",
    "FailedUnexpectedMessage(C)",
    "FailedCallRejected(C)",
    "FailedCannotSendMessage(C)",
)


def sipp_window(site: Site, a: float, b: float) -> dict[str, Any]:
    ok = failed = 0
    reasons: dict[str, int] = {}
    for n in site.nodes.values():
        for g in GROUPS:
            rows = sipp_rows(n.tmp / f"stat-{g.name}.csv")
            ok += sipp_at(rows, b, "SuccessfulCall(C)") - sipp_at(rows, a, "SuccessfulCall(C)")
            failed += sipp_at(rows, b, "FailedCall(C)") - sipp_at(rows, a, "FailedCall(C)")
            for k in FAIL_KEYS:
                d = sipp_at(rows, b, k) - sipp_at(rows, a, k)
                if d:
                    reasons[k.removeprefix("Failed").removesuffix("(C)")] = (
                        reasons.get(k.removeprefix("Failed").removesuffix("(C)"), 0) + d
                    )
    return {"completed": ok, "failed": failed, "failure_kinds": reasons}


def failopen_in(site: Site, a: float, b: float) -> int:
    """Calls the nodes sent to the PBX unrecorded for lack of a worker, between a and b (the
    counter restarts with a restarted supervisor: only increases count)."""
    total = 0
    for n in site.nodes:
        prev = None
        for s in site.samples:
            v = s[n]["failopen"]
            if v is None:
                continue
            if prev is not None and a <= s["wall"] <= b and v > prev:
                total += v - prev
            prev = v
    return total


def calls_in_index(site: Site) -> list[dict[str, Any]]:
    import psycopg

    with psycopg.connect(site.db_url) as con:
        rows = con.execute(
            "SELECT c.id, c.started_at, c.ended_at, r.receipt FROM calls c "
            "LEFT JOIN consent_receipts r ON r.call_id = c.id WHERE c.kind = 'call'"
        ).fetchall()
    out = []
    for call_id, started, ended, receipt in rows:
        rec = json.loads(receipt) if receipt else {}
        out.append(
            {
                "id": call_id,
                "start": iso(started),
                "end": iso(ended) if ended else None,
                "outcome": str(receipts.outcome(rec) or rec.get("state") or "no receipt"),
            }
        )
    return out


def verify_recordings(gw: Gateway, identity: Path) -> dict[str, dict[str, Any]]:
    """Every recording by call: its status and whether its ciphertext (fetched from where it
    lives now: the spool or the S3 store) decrypts; a truncated one up to its last chunk."""
    identities = age.load_identity_file(identity)
    out: dict[str, dict[str, Any]] = {}
    for rec in gw.index.list_recordings():
        entry: dict[str, Any] = {"status": rec.status, "consent": rec.consent, "error": rec.error}
        if rec.status in ("complete", "truncated"):
            try:
                with gw.store.open(rec.object_name) as f:
                    plain = age.AgeReader(f, identities, recover=rec.status == "truncated").read_all()
                entry["decrypts"] = len(plain) > 44
            except Exception as e:  # what does not decrypt is the finding
                entry["decrypts"] = False
                entry["error"] = f"{type(e).__name__}: {e}"[:200]
        out.setdefault(rec.call_id or rec.id, entry)
    return out


def table_row(
    site: Site,
    name: str,
    window: tuple[float, float],
    calls: list[dict[str, Any]],
    recs: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    a, b = window
    mine = [c for c in calls if c.get("window") == name]
    consented = [c for c in mine if c["outcome"] in ("silence", "key")]
    complete = truncated = failed_told = lost = 0
    lost_ids: list[str] = []
    marked: dict[str, int] = {}  # recordings that failed and say why, by status and reason
    for c in consented:
        r = recs.get(c["id"])
        if r is None or (r["status"] in ("complete", "truncated") and not r.get("decrypts")):
            lost += 1
            lost_ids.append(c["id"])
        elif r["status"] == "complete":
            complete += 1
        elif r["status"] == "truncated":
            truncated += 1
        else:
            failed_told += 1
            why = f"{r['status']}: {str(r.get('error'))[:120]}"
            marked[why] = marked.get(why, 0) + 1
    # A withdrawal or a refusal leaves no audio, whatever the fault.
    audio_kept = sum(
        1
        for c in mine
        if c["outcome"] not in ("silence", "key")
        and recs.get(c["id"], {}).get("status") in ("complete", "truncated", "incomplete", "recording")
    )
    windowed = [s for s in site.samples if a <= s["wall"] <= b]
    backlog = {
        n: {
            "journal_max": max((s[n]["journal"] for s in windowed), default=0),
            "upload_pending_max": max((s[n]["upload_pending"] or 0 for s in windowed), default=0),
            "upload_failing_seen": any(s[n]["upload_failing"] for s in windowed),
            "workers_ready_min": min((s[n]["workers_ready"] for s in windowed), default=None),
            "status_stale_max_s": max((s[n]["status_age_s"] or 0 for s in windowed), default=None),
        }
        for n in site.nodes
    }
    return {
        "calls_in_index": len(mine),
        "outcomes": {
            o: sum(1 for c in mine if c["outcome"] == o) for o in sorted({c["outcome"] for c in mine})
        },
        "sipp": sipp_window(site, a, b),
        "failed_open": failopen_in(site, a, b),
        "consented": len(consented),
        "recordings_complete": complete,
        "recordings_truncated_recovered": truncated,
        "recordings_failed_marked": failed_told,
        "failed_marked_why": marked,
        "recordings_lost": lost,
        "lost_calls": lost_ids[:5],
        "unconsented_with_audio_kept": audio_kept,
        "backlog": backlog,
    }


# -- the run ----------------------------------------------------------------------------------


def build(args: argparse.Namespace, tmp: Path) -> Site:
    pg_server = pg.start(durable=True)
    s3_server = s3.start()
    relay = s3.outage_for(s3_server)
    bucket = s3_server.new_bucket()
    db_url = pg_server.new_database()
    nodes: dict[str, Node] = {}
    for i, (name, host) in enumerate((("node-a", "127.0.0.2"), ("node-b", "127.0.0.3"))):
        d = tmp / name
        d.mkdir()
        lab = CallLab(d, workers=args.workers, host=host, node=name)
        configure(lab, 40)
        # RTP below the range free ports are picked from (20000 up): 10000-14999 and 15000-19999.
        lab.gw.set("calls", "rtp_port", 10000 + 5000 * i)
        lab.gw.set("calls", "rtp_port_range", 4999)
        lab.gw.set("node", "max_workers", args.workers + 6)
        nodes[name] = Node(name, lab, d)
    a, b = nodes["node-a"].lab, nodes["node-b"].lab
    a.gw.share_index(db_url, b.gw)
    for n in nodes.values():
        for key, value in [
            ("url", f"s3://{bucket}/calls"),
            ("endpoint", relay.endpoint),
            ("region", "us-east-1"),
            ("access_key_id", s3.ACCESS_KEY),
            ("secret_access_key", s3.SECRET_KEY),
        ]:
            n.lab.gw.set("store", key, value)
        n.lab.gw.set("recording", "recipients", [a.gw.recipient])
    spool = nodes["node-b"].lab.gw.dir / "spool"
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SPOOL_MB}m,mode=0700", "tmpfs", str(spool)],
        capture_output=True,
        text=True,
    )
    if res.returncode == 0:
        nodes["node-b"].spool_mount = spool
    else:
        print(f"# spool_full cannot run: {res.stderr.strip()}", flush=True)
    return Site(pg_server, s3_server, relay, db_url, nodes)


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    site = build(args, tmp)
    out: dict[str, Any] = {"faults": {}}
    windows: dict[str, tuple[float, float]] = {}
    audio, pbx_audio = tmp / "audio-caller.pcap", tmp / "audio-pbx.pcap"
    speech = speech_loop(args.hold + 10)
    write_rtp_pcap(audio, speech, ssrc=0x1234ABCD)
    write_rtp_pcap(pbx_audio, speech, ssrc=0x5678DCBA)
    timeout_s = 6 * 3600
    sampler = threading.Thread(target=site.run_sampler, daemon=True)
    try:
        for n in site.nodes.values():
            n.lab.start_gateway()
        for n in site.nodes.values():
            n.pbx = start_pbx(n.lab.pbx_port, pbx_audio, n.tmp, timeout_s)
        time.sleep(0.5)
        sampler.start()
        for n in site.nodes.values():
            target = f"{n.lab.host}:{n.lab.sip_port}"
            n.callers = {
                g.name: start_caller(g, args.calls // 2, args.hold, target, n.tmp, audio, timeout_s)
                for g in GROUPS
            }
        t_start = time.time()
        time.sleep(args.warmup_s)
        windows["baseline"] = (t_start, time.time())
        for name in args.faults:
            print(f"# {datetime.now():%H:%M:%S} fault {name}", flush=True)
            t0 = time.time()
            notes: dict[str, Any] = {}
            try:
                fault(site, name, args.fault_s, notes)
            except Exception as e:  # the run goes on: what failed is the finding
                notes["error"] = f"{type(e).__name__}: {e}"[-800:]
            t1 = time.time()
            deadline = time.monotonic() + args.recovery_max_s
            recovered = site.settled()
            while not recovered and time.monotonic() < deadline:
                time.sleep(1)
                recovered = site.settled()
            t2 = time.time()
            windows[name] = (t0, t2 + args.hold + 10)
            out["faults"][name] = {
                "held_s": round(t1 - t0, 1),
                # None: not within --recovery-max-s (judged once: the state moves on after)
                "recovered_s": round(t2 - t1, 1) if recovered else None,
                **notes,
            }
            time.sleep(args.hold + 10)  # the calls that saw the fault end before the next one
        t_end = time.time()
        for n in site.nodes.values():
            for p in n.callers.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGUSR1)
        for n in site.nodes.values():
            for p in n.callers.values():
                try:
                    p.wait(timeout=args.hold * 3 + 60)
                except subprocess.TimeoutExpired:
                    p.kill()
        deadline = time.monotonic() + args.recovery_max_s
        while not site.settled() and time.monotonic() < deadline:
            time.sleep(1)
        site.stop.set()
        sampler.join()
        for n in site.nodes.values():
            if n.pbx is not None:
                n.pbx.send_signal(signal.SIGUSR1)
            assert n.lab.gateway is not None
            out.setdefault("gateway_exit", {})[n.name] = n.lab.gateway.stop()
        gw = Gateway.open(site.nodes["node-a"].lab.gw.config)
        calls = calls_in_index(site)
        for c in calls:
            end = c["end"] or t_end
            # The latest fault the call was up for (a call up across two is the later one's:
            # a worker killed, say, right after a store outage's window).
            c["window"] = next(
                (
                    w
                    for w, (a, b) in reversed(windows.items())
                    if w != "baseline" and c["start"] <= b and end >= a
                ),
                "baseline",
            )
        recs = verify_recordings(gw, site.nodes["node-a"].lab.gw.key)
        gw.close()
        table = {w: table_row(site, w, windows[w], calls, recs) for w in windows}
        # The baseline row counts every call no fault touched, over the whole run.
        table["baseline"]["sipp"] = {"note": "sipp counts are per fault window only"}
        out["table"] = table
        out["totals"] = {
            "calls_in_index": len(calls),
            "recordings_lost": sum(r["recordings_lost"] for r in table.values()),
            "sipp_failed": sum(r["sipp"].get("failed", 0) for r in table.values()),
            "recordings_by_status_and_consent": {
                k: sum(1 for r in recs.values() if f"{r['status']}/{r['consent']}" == k)
                for k in sorted({f"{r['status']}/{r['consent']}" for r in recs.values()})
            },
        }
    finally:
        site.stop.set()
        for n in site.nodes.values():
            for p in [*n.callers.values(), *([n.pbx] if n.pbx else [])]:
                if p.poll() is None:
                    p.kill()
            n.lab.close()
            if n.spool_mount is not None:
                subprocess.run(["umount", "-l", str(n.spool_mount)], capture_output=True)
        site.relay.halt()
        site.s3.stop()
        site.pg.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=40, help="concurrent calls over both nodes")
    ap.add_argument("--hold", type=float, default=20)
    ap.add_argument("--workers", type=int, default=14, help="workers per node")
    ap.add_argument("--fault-s", type=float, default=60, help="how long pg_stop, s3_stop and spool_full last")
    ap.add_argument("--warmup-s", type=float, default=60)
    ap.add_argument("--recovery-max-s", type=float, default=300)
    ap.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, of {', '.join(FAULTS)}")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the working directory (logs) for a post-mortem")
    args = ap.parse_args()
    args.faults = [f for f in args.faults.split(",") if f]
    unknown = set(args.faults) - set(FAULTS)
    if unknown:
        ap.error(f"unknown faults: {', '.join(sorted(unknown))}")
    print(run_header(), flush=True)
    with contextlib.ExitStack() as stack:
        if args.keep:
            d = tempfile.mkdtemp(prefix="chaos-")
            print(f"# working directory kept: {d}", flush=True)
        else:
            d = stack.enter_context(tempfile.TemporaryDirectory(prefix="chaos-"))
        out = {"calls": args.calls, "hold_s": args.hold, "fault_s": args.fault_s, **run(args, Path(d))}
    text = json.dumps(out, indent=2)
    if args.json:
        args.json.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
