"""Soak: one node under recorded calls with churn for an hour, sampled each minute.

    .venv/bin/python bench/soak.py --minutes 60 --calls 30 --hold 30 --workers 18

sipp callers through Kamailio into the pool, a sipp PBX behind it, G.711 speech both ways. Of
the `--calls` concurrent calls, 70 % consent (silence after the notice), 10 % decline by key
(9), 10 % consent and then withdraw with *9 half-way, and one caller in ten seconds hangs up
while the notice plays. Each group keeps its share of calls up: a new call starts as one ends.

Sampled every `--sample-s` seconds: RSS and PSS of the node (by role), open file descriptors,
threads, the index's database connections (file descriptors on the SQLite index), spool size,
live calls, and CPU per recorded call-second over the interval. The figure is growth from
minute `--warmup` to the end of the load (the mean of the last three samples against the mean of the three
from the warm-up on) and the least-squares trend over the same span, in % per hour.

At the end every consented call must have a complete recording that decrypts and lasts its call
(frames missing per recording); withdrawn calls leave none; declined and abandoned calls none.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.node_load import (  # noqa: E402
    PCAPS,
    SCENARIOS,
    configure,
    cpu_s,
    pss_mb,
    role,
    run_header,
    speech_loop,
    tree_pids,
    warnings,
)
from gateway import age  # noqa: E402
from gateway.consent import receipt as receipts  # noqa: E402
from gateway.recording import wav  # noqa: E402
from tests.calls import CallLab, free_port  # noqa: E402
from tests.pcapgen import write_rtp_pcap  # noqa: E402


@dataclass(frozen=True)
class Group:
    """One kind of caller: its scenario, its key, and how many of its calls run at once."""

    name: str
    scenario: str
    digit: str
    share: float  # of the concurrent calls; 0: the rate below instead
    every_s: float = 0.0  # one new call every so many seconds (callers who hang up at once)
    hold_factor: float = 1.0  # the -d pause, as a share of --hold


GROUPS = (
    Group("consent", "caller.xml", "5", 0.7),
    Group("decline", "caller.xml", "9", 0.1),
    # Two -d pauses around the *9: the call lasts about as long as the others.
    Group("withdraw", "withdraw.xml", "5", 0.1, hold_factor=0.5),
    Group("notice_hangup", "hangup_in_notice.xml", "5", 0.0, every_s=10.0),
)


def sipp(
    scenario: str, keys: dict[str, str], port: int, tmp: Path, stat: str, timeout_s: int, *extra: str
) -> subprocess.Popen[bytes]:
    """sipp running `scenario` on 127.0.0.1:`port` with `-key`s, its statistics every 5 s in
    tmp/stat-`stat`.csv. Its working directory is the run's own: it writes its error log there."""
    cmd = ["sipp", "-sf", str(SCENARIOS / scenario)]
    for k, v in keys.items():
        cmd += ["-key", k, v]
    cmd += ["-i", "127.0.0.1", "-p", str(port), "-mp", str(free_port()), "-nostdin"]
    cmd += [
        "-timeout",
        str(timeout_s),
        "-trace_stat",
        "-fd",
        "5",
        "-stf",
        str(tmp / f"stat-{stat}.csv"),
        *extra,
    ]
    return subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_caller(
    g: Group, calls: int, hold_s: float, target: str, tmp: Path, audio: Path, timeout_s: int
) -> subprocess.Popen[bytes]:
    """Group `g`'s sipp caller to `target` (host:port); its statistics in tmp/stat-NAME.csv."""
    if g.every_s:
        rate = ["-l", "3", "-r", "1", "-rp", str(int(g.every_s * 1000)), "-d", "600"]
    else:
        n = max(1, round(calls * g.share))
        rate = ["-l", str(n), "-r", "2", "-d", str(int(hold_s * g.hold_factor * 1000))]
    keys = {
        "payload": "8",
        "audio_pcap": str(audio),
        "digit_pcap": str(PCAPS / f"dtmf_2833_{g.digit}.pcap"),
        "star_pcap": str(PCAPS / "dtmf_2833_star.pcap"),
        "nine_pcap": str(PCAPS / "dtmf_2833_9.pcap"),
    }
    return sipp(
        g.scenario, keys, free_port(), tmp, g.name, timeout_s, *rate, "-m", "10000000", "-trace_err", target
    )


def start_pbx(port: int, audio: Path, tmp: Path, timeout_s: int) -> subprocess.Popen[bytes]:
    """A sipp PBX on 127.0.0.1:`port` answering every call with `audio`; its statistics in
    tmp/stat-pbx.csv."""
    return sipp("pbx.xml", {"audio_pcap": str(audio)}, port, tmp, "pbx", timeout_s)


def sipp_totals(stat: Path) -> dict[str, int]:
    lines = stat.read_text().splitlines() if stat.exists() else []
    if len(lines) < 2:
        return {"ok": 0, "failed": 0}
    row = dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))
    return {"ok": int(row.get("SuccessfulCall(C)", 0)), "failed": int(row.get("FailedCall(C)", 0))}


def fds(pid: int) -> tuple[int, int]:
    """Open file descriptors of a process, and how many of them are on the SQLite index (one
    per connection, with its -wal and -shm)."""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0, 0
    db = 0
    for n in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{n}")
        except OSError:
            continue
        db += target.endswith("index.sqlite3")
    return len(names), db


def threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def dir_bytes(d: Path) -> int:
    total = 0
    for p in d.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except OSError:
            pass
    return total


class Sampler(threading.Thread):
    def __init__(self, lab: CallLab, every_s: float) -> None:
        super().__init__(daemon=True)
        self.lab, self.every_s = lab, every_s
        self.stop = threading.Event()
        self.samples: list[dict[str, Any]] = []
        self.t0 = time.time()
        self.loading = True  # False once the callers stop placing calls (the wind-down)

    def sample(self) -> dict[str, Any]:
        root = self.lab.gateway.proc.pid  # type: ignore[union-attr]
        pids = tree_pids(root)
        by_role: dict[str, dict[str, float]] = {}
        for pid in pids:
            r = role(pid)
            n_fd, n_db = fds(pid)
            acc = by_role.setdefault(
                r, {"processes": 0, "rss_mb": 0.0, "pss_mb": 0.0, "fds": 0, "threads": 0}
            )
            acc["processes"] += 1
            acc["rss_mb"] += rss_kb(pid) / 1024
            acc["pss_mb"] += pss_mb(pid)
            acc["fds"] += n_fd
            acc["threads"] += threads(pid)
            acc["db_connections"] = acc.get("db_connections", 0) + n_db
        try:
            status = self.lab.node_status()
        except (OSError, ValueError):
            status = {}
        total = {
            k: sum(r.get(k, 0) for r in by_role.values()) for k in ("rss_mb", "pss_mb", "fds", "threads")
        }
        return {
            "t": round(time.time() - self.t0, 1),
            "load": self.loading,
            "wall": time.time(),
            "cpu_s": cpu_s(pids),
            **{k: round(v, 1) for k, v in total.items()},
            "db_connections": sum(r.get("db_connections", 0) for r in by_role.values()),
            "spool_mb": round(dir_bytes(self.lab.gw.dir / "spool") / 2**20, 1),
            "live_calls": status.get("live_calls"),
            "workers": len(status.get("workers", [])),
            "worker_restarts": sum(w.get("restarts", 0) for w in status.get("workers", [])),
            "by_role": {r: {k: round(v, 1) for k, v in d.items()} for r, d in sorted(by_role.items())},
        }

    def run(self) -> None:
        self.samples.append(self.sample())
        while not self.stop.wait(self.every_s):
            self.samples.append(self.sample())


def iso(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def recorded_seconds(spans: list[tuple[float, float]], a: float, b: float) -> float:
    """Recorded call-seconds inside the wall-clock interval [a, b]."""
    return sum(max(0.0, min(e, b) - max(s, a)) for s, e in spans)


def trend(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (per unit of x)."""
    mx, my = statistics.mean(xs), statistics.mean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def growth(samples: list[dict[str, Any]], key: str, warmup_s: float) -> dict[str, float | None]:
    """From the warm-up on: the last three samples' mean against the first three's (%), and the
    least-squares trend in % of the mean per hour."""
    span = [s for s in samples if s["load"] and s["t"] >= warmup_s and s.get(key) is not None]
    if len(span) < 4:
        return {"start": None, "end": None, "growth_percent": None, "trend_percent_per_hour": None}
    start = statistics.mean(s[key] for s in span[:3])
    end = statistics.mean(s[key] for s in span[-3:])
    mean = statistics.mean(s[key] for s in span)
    slope = trend([s["t"] / 3600 for s in span], [s[key] for s in span])
    return {
        "start": round(start, 2),
        "end": round(end, 2),
        "growth_percent": round((end - start) / start * 100, 2) if start else None,
        "trend_percent_per_hour": round(slope / mean * 100, 2) if mean else None,
    }


def outcomes(db: Path) -> dict[str, int]:
    """Calls by what their receipts say: silence, declined, withdrawn, abandoned, ..."""
    out: dict[str, int] = {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        for (text,) in con.execute("SELECT receipt FROM consent_receipts"):
            r = json.loads(text)
            kind = str(receipts.outcome(r) or r.get("state") or "undecided")
            out[kind] = out.get(kind, 0) + 1
        out["calls"] = con.execute("SELECT count(*) FROM calls").fetchone()[0]
    finally:
        con.close()
    return out


def verify(lab: CallLab, limit: int) -> dict[str, Any]:
    """Every recording's state, and up to `limit` complete ones decrypted: the frames missing
    against the call's bridged time (recorder start to hang-up)."""
    gw = lab.gw.open()
    identities = age.load_identity_file(lab.gw.key)
    by_status: dict[str, int] = {}
    by_consent: dict[str, int] = {}
    missing: list[float] = []
    failed: list[str] = []
    for rec in gw.index.list_recordings():
        by_status[rec.status] = by_status.get(rec.status, 0) + 1
        kind = f"{rec.status}/{rec.consent}"
        by_consent[kind] = by_consent.get(kind, 0) + 1
        if rec.status != "complete" or len(missing) + len(failed) >= limit:
            continue
        try:
            with gw.store.open(rec.object_name) as f:
                plain = age.AgeReader(f, identities).read_all()
        except Exception as e:  # a recording that does not decrypt is the finding
            failed.append(f"{rec.id}: {e}")
            continue
        samples = (len(plain) - wav.HEADER_SIZE) // 4
        ended = gw.index.get_call(rec.call_id).ended_at if rec.call_id else None
        span = iso(ended or rec.finished_at or rec.started_at) - iso(rec.started_at)
        missing.append(max(0.0, 1 - samples / 8000 / span) * 100 if span > 0 else 0.0)
    return {
        "recordings_by_status": by_status,
        "recordings_by_status_and_consent": by_consent,
        "decrypted": len(missing),
        "not_decrypting": failed[:5],
        "frames_missing_percent_mean": round(statistics.mean(missing), 3) if missing else None,
        "frames_missing_percent_p99": round(sorted(missing)[int(len(missing) * 0.99) - 1], 3)
        if len(missing) >= 100
        else None,
        "frames_missing_percent_max": round(max(missing), 3) if missing else None,
    }


def soak(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    lab = CallLab(tmp, workers=args.workers)
    configure(lab, 40)
    lab.gw.set("node", "max_workers", args.workers + 6)
    out: dict[str, Any] = {}
    audio = tmp / "audio-caller.pcap"
    pbx_audio = tmp / "audio-pbx.pcap"
    speech = speech_loop(args.hold + 10)
    write_rtp_pcap(audio, speech, ssrc=0x1234ABCD)
    write_rtp_pcap(pbx_audio, speech, ssrc=0x5678DCBA)
    timeout_s = int(args.minutes * 60 + args.hold * 4 + 120)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        lab.start_gateway()
        pbx = start_pbx(lab.pbx_port, pbx_audio, tmp, timeout_s)
        procs.append(pbx)
        time.sleep(0.5)
        sampler = Sampler(lab, args.sample_s)
        sampler.start()
        callers = {
            g.name: start_caller(
                g, args.calls, args.hold, f"{lab.host}:{lab.sip_port}", tmp, audio, timeout_s
            )
            for g in GROUPS
        }
        procs += callers.values()
        deadline = time.monotonic() + args.minutes * 60
        while time.monotonic() < deadline:
            gone = [n for n, p in callers.items() if p.poll() is not None]
            if gone:
                out["callers_exited_early"] = {n: callers[n].returncode for n in gone}
                break
            time.sleep(1)
        # A soft stop: no new calls, the calls up end as they would (sampled, not measured).
        sampler.loading = False
        for p in callers.values():
            if p.poll() is None:
                p.send_signal(signal.SIGUSR1)
        for p in callers.values():
            try:
                p.wait(timeout=args.hold * 3 + 60)
            except subprocess.TimeoutExpired:
                p.kill()
        time.sleep(args.hold * 0.2 + 3)  # the last recordings are finished
        sampler.stop.set()
        sampler.join()
        samples = sampler.samples
        pbx.send_signal(signal.SIGUSR1)
        try:
            pbx.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pbx.kill()
        rc = lab.gateway.stop()  # type: ignore[union-attr]
        out["gateway_exit"] = rc
        out["calls"] = {g.name: sipp_totals(tmp / f"stat-{g.name}.csv") for g in GROUPS}
        out["calls"]["pbx_answered"] = sipp_totals(tmp / "stat-pbx.csv")
        out["outcomes"] = outcomes(lab.gw.dir / "index.sqlite3")
        out["recordings"] = verify(lab, args.verify)
        made = out["recordings"]["recordings_by_status_and_consent"]
        out["verdict"] = {
            "calls_failed": sum(c["failed"] for c in out["calls"].values()),
            "consented_calls": out["calls"]["consent"]["ok"],
            # Each consenting caller's call has a complete recording that decrypts.
            "recordings_lost": out["calls"]["consent"]["ok"] - made.get("complete/silence", 0),
            "recordings_not_decrypting": len(out["recordings"]["not_decrypting"]),
            "withdrawn_calls": out["calls"]["withdraw"]["ok"],
            # A withdrawn call's recording is discarded (or deleted, when it had just been
            # finalised): its audio gone from the store.
            "withdrawn_with_audio_kept": sum(
                n
                for k, n in made.items()
                if k.endswith("/withdrawn") and k.split("/")[0] not in ("discarded", "deleted")
            ),
            "declined_or_abandoned_recorded": sum(
                n for k, n in made.items() if k.endswith(("/declined", "/None"))
            ),
        }
        gw = lab.gw.open()
        spans = [
            (iso(r.started_at), iso(r.finished_at))
            for r in gw.index.list_recordings()
            if r.finished_at is not None
        ]
        for prev, cur in zip(samples, samples[1:], strict=False):
            rec_s = recorded_seconds(spans, prev["wall"], cur["wall"])
            cur["recorded_call_s"] = round(rec_s, 1)
            cur["cpu_ms_per_recorded_call_s"] = (
                round((cur["cpu_s"] - prev["cpu_s"]) / rec_s * 1000, 2) if rec_s > 0 else None
            )
        warm = args.warmup * 60
        out["growth_from_warmup"] = {
            key: growth(samples, key, warm)
            for key in (
                "rss_mb",
                "pss_mb",
                "fds",
                "threads",
                "db_connections",
                "cpu_ms_per_recorded_call_s",
                "live_calls",
            )
        }
        spool_per_rec = [
            {
                **s,
                "spool_mb_per_recorded_hour": s["spool_mb"] / (recorded_seconds(spans, 0, s["wall"]) / 3600),
            }
            for s in samples
            if recorded_seconds(spans, 0, s["wall"]) > 0
        ]
        out["growth_from_warmup"]["spool_mb_per_recorded_hour"] = growth(
            spool_per_rec, "spool_mb_per_recorded_hour", warm
        )
        out["node_warnings"] = warnings(lab)
        out["samples"] = [{k: v for k, v in s.items() if k != "wall"} for s in samples]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        lab.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--calls", type=int, default=30, help="concurrent calls (the four kinds together)")
    ap.add_argument("--hold", type=float, default=30, help="seconds a call lasts after its notice")
    ap.add_argument("--workers", type=int, default=18)
    ap.add_argument("--sample-s", type=float, default=60)
    ap.add_argument("--warmup", type=float, default=5, help="minutes before growth is measured")
    ap.add_argument("--verify", type=int, default=100000, help="at most this many recordings decrypted")
    ap.add_argument("--json", type=Path, help="also write the whole result here")
    args = ap.parse_args()
    print(run_header(), flush=True)
    with tempfile.TemporaryDirectory(prefix="soak-") as d:
        out = {"minutes": args.minutes, "calls": args.calls, "hold_s": args.hold, **soak(args, Path(d))}
    text = json.dumps(out, indent=2)
    if args.json:
        args.json.write_text(text)
    summary = {k: v for k, v in out.items() if k != "samples"}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
