"""Benchmark: sipp load through Kamailio into the worker pool, sipp as the PBX.

    .venv/bin/python bench/node_load.py --workers 8 --calls 16 --hold 20

Two phases in the same run, the same node:
1. every caller presses 9 (RFC 2833 pcap) during the notice: nothing is recorded (baseline);
2. every caller presses 5 (ignored) and consents by silence: every call is recorded.
Both phases send G.711 audio (sip-tester's g711a.pcap) from both sides. Reported per phase:
calls completed, concurrent calls, CPU seconds of the node's processes (supervisor, Kamailio,
workers) per call-second, RSS per worker, call setup time (INVITE -> 200) percentiles, and,
for phase 2, recording completeness: every recording decrypted with the benchmark's own
identity, its samples compared with its bridged time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway import age  # noqa: E402
from gateway.recording import wav  # noqa: E402
from tests.audio import frames_present  # noqa: E402
from tests.calls import CallLab, Proc, free_port  # noqa: E402
from tests.pcapgen import alaw_to_pcm, read_rtp, write_rtp_pcap  # noqa: E402

PCAPS = Path("/usr/share/sip-tester")
SCENARIOS = ROOT / "tests" / "sipp"


def run_header() -> str:
    """The command, the machine and the date, printed with a benchmark's results."""
    model = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in ln
        ),
        platform.processor(),
    )
    return (
        f"# {' '.join(sys.argv)}\n# {platform.machine()} ({model}), {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )


def speech_alaw(seconds: float) -> bytes:
    """sip-tester's 7 s of G.711 A-law speech, repeated to `seconds` (the payloads, 8 kHz)."""
    [stream] = read_rtp(PCAPS / "g711a.pcap").values()
    alaw = b"".join(payload for pt, _, payload in stream if pt == 8)
    need = int(seconds * 8000)
    return (alaw * (need // len(alaw) + 1))[:need]


def speech_loop(seconds: float) -> bytes:
    """The same speech decoded (8 kHz 16-bit PCM)."""
    return alaw_to_pcm(speech_alaw(seconds))


# How sipp sends its audio. "stream" (sipp's rtp_stream: a few threads send every call's RTP
# from one UDP socket) is the default since 2026-12-06. "pcap" (play_pcap_audio) is what runs
# before that used: sipp plays each leg's pcap on a thread and a raw socket of its own, and the
# kernel checks every UDP packet on the loopback against every raw socket open, so at 200 calls
# (400 raw sockets) that check was 7 % of the machine, charged to whichever process sent the
# packet (`perf`: raw_local_deliver; BENCHMARKS.md, "the frames' clock").
SIPP_MEDIA = "stream"
SIPP_MEDIA_CHOICES = ("stream", "pcap")


def use_sipp_media(media: str) -> None:
    global SIPP_MEDIA
    SIPP_MEDIA = media


def sipp_scenario(name: str, tmp: Path, audio: Path) -> Path:
    """The scenario as it sends audio under SIPP_MEDIA: tests/sipp's own (pcap), or a copy
    whose speech goes out through rtp_stream from `audio`, raw A-law (sipp substitutes no -key
    inside an rtp_stream's arguments)."""
    if SIPP_MEDIA == "pcap":
        return SCENARIOS / name
    text = (SCENARIOS / name).read_text()
    streamed = text.replace('play_pcap_audio="[audio_pcap]"', f'rtp_stream="{audio},1,8"')
    assert streamed != text, f"{name} plays no [audio_pcap]"
    out = tmp / f"stream-{name}"
    out.write_text(streamed)
    return out


def tree_pids(root: int) -> list[int]:
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, clock ticks
        except OSError:
            pass
    return total


def role(pid: int) -> str:
    """What a process of a node (or of the peer) is, from its command line."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "gone"
    for name in ("kamailio", "rtpengine"):
        if name in cmd:
            return name
    if " forkserver " in cmd:  # its forks, the workers, keep its command line
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            parent = int(next(ln for ln in status.splitlines() if ln.startswith("PPid:")).split()[1])
            parent_cmd = Path(f"/proc/{parent}/cmdline").read_bytes()
        except (OSError, StopIteration, ValueError):
            return "gone"
        return "worker" if b"forkserver" in parent_cmd else "forkserver"
    if " worker " in cmd or cmd.rstrip().endswith(" worker"):
        return "worker"
    return "supervisor" if "gateway" in cmd else "other"


def thread_cpu(pids: list[int]) -> dict[tuple[str, int], float]:
    """CPU seconds of every thread, by (role/thread name, thread id), e.g. ("worker/pjmedia",
    1234), from /proc/PID/task/TID/stat: where a node's time goes. Keyed by thread id too,
    because pjsua ends and restarts some threads (its clock, when the sound device idles)."""
    out: dict[tuple[str, int], float] = {}
    for pid in pids:
        r = role(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                stat = (task / "stat").read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat.rsplit(")", 1)[1].split()
            out[(f"{r}/{comm}", int(task.name))] = (int(fields[11]) + int(fields[12])) / 100.0
    return out


def thread_cpu_ms(
    before: dict[tuple[str, int], float], after: dict[tuple[str, int], float], per_s: float
) -> dict[str, float]:
    """CPU milliseconds per `per_s` by role/thread name between two readings, largest first.
    A thread that started in between counts whole; one that ended in between cannot be read
    (its share is in the total, not here)."""
    used: dict[str, float] = {}
    for (name, tid), v in after.items():
        used[name] = used.get(name, 0.0) + v - before.get((name, tid), 0.0)
    return {k: round(v / per_s * 1000, 2) for k, v in sorted(used.items(), key=lambda kv: -kv[1]) if v > 0}


class ThreadSampler(threading.Thread):
    """Reads every thread's CPU under `roots` every `every_s` while a phase runs, so that threads
    which end during the phase are accounted too (with what they had used at their last
    reading): by role/thread name, with how many such threads started and ended."""

    def __init__(self, roots: list[int], every_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.roots, self.every_s = roots, every_s
        self.stop = threading.Event()
        self.first = thread_cpu([p for r in roots for p in tree_pids(r)])
        self.last: dict[tuple[str, int], float] = dict(self.first)
        self.alive: set[tuple[str, int]] = set(self.first)

    def run(self) -> None:
        while True:
            snap = thread_cpu([p for r in self.roots for p in tree_pids(r)])
            self.last.update(snap)
            self.alive = set(snap)
            if self.stop.wait(self.every_s):
                snap = thread_cpu([p for r in self.roots for p in tree_pids(r)])
                self.last.update(snap)
                self.alive = set(snap)
                return

    def report(self, per_s: float) -> dict[str, object]:
        used: dict[str, float] = {}
        started: dict[str, int] = {}
        ended: dict[str, int] = {}
        for (name, tid), v in self.last.items():
            used[name] = used.get(name, 0.0) + v - self.first.get((name, tid), 0.0)
            if (name, tid) not in self.first:
                started[name] = started.get(name, 0) + 1
            if (name, tid) not in self.alive:
                ended[name] = ended.get(name, 0) + 1
        return {
            "cpu_ms_per_call_second_by_thread": {
                k: round(v / per_s * 1000, 2) for k, v in sorted(used.items(), key=lambda kv: -kv[1]) if v > 0
            },
            "threads_started": dict(sorted(started.items())),
            "threads_ended": dict(sorted(ended.items())),
        }


def pss_mb(pid: int) -> float:
    """Proportional set size: a page shared by n processes counts 1/n in each (smaps_rollup)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class MemorySampler(threading.Thread):
    """Samples the PSS of the process trees under `roots` every `every_s` while a phase runs:
    the peak of the node's total, and by role (worker, kamailio, supervisor, forkserver)."""

    def __init__(self, roots: list[int], every_s: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.roots, self.every_s = roots, every_s
        self.stop = threading.Event()
        self.peak_total = 0.0
        self.at_peak: dict[str, float] = {}
        self.workers_at_peak = 0

    def run(self) -> None:
        while not self.stop.wait(self.every_s):
            by_role: dict[str, float] = {}
            workers = 0
            for pid in (p for r in self.roots for p in tree_pids(r)):
                r = role(pid)
                by_role[r] = by_role.get(r, 0.0) + pss_mb(pid)
                workers += r == "worker"
            total = sum(by_role.values())
            if total > self.peak_total:
                self.peak_total, self.at_peak, self.workers_at_peak = total, by_role, workers

    def report(self) -> dict[str, object]:
        return {
            "node_pss_mb_peak": round(self.peak_total, 1),
            "pss_mb_by_role_at_peak": {k: round(v, 1) for k, v in sorted(self.at_peak.items())},
            "pss_mb_per_worker_at_peak": round(self.at_peak.get("worker", 0.0) / self.workers_at_peak, 1)
            if self.workers_at_peak
            else None,
        }


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def phase(
    lab: CallLab,
    digit: str,
    calls: int,
    hold_s: float,
    tmp: Path,
    infra: list[int] | None = None,
    settle: object = None,
) -> dict[str, object]:
    """One phase of `calls` calls through the node. `infra`: pids of shared servers (PostgreSQL,
    the S3 server) whose CPU is reported apart; `settle`: called before the CPU is read (waits
    for uploads)."""
    root = lab.gateway.proc.pid  # type: ignore[union-attr]
    return sipp_phase(lab.sip_port, lab.pbx_port, [root], digit, calls, hold_s, tmp, infra, settle)


def sipp_phase(
    target_port: int,
    pbx_port: int,
    roots: list[int],
    digit: str,
    calls: int,
    hold_s: float,
    tmp: Path,
    infra: list[int] | None = None,
    settle: object = None,
) -> dict[str, object]:
    """`calls` sipp calls (G.711 both ways, the RFC 2833 pcap of `digit` first) to 127.0.0.1:
    `target_port`, a sipp PBX on `pbx_port`; the CPU of the process trees under `roots` is what
    is measured."""
    pbx_log = tmp / f"pbx-{digit}.log"
    # Audio for the whole hold in both directions: sip-tester's g711a.pcap lasts 7 s, after
    # which sipp sends nothing and the media path idles (runs before 2026-11-27 did that).
    # Each side its own SSRC, as two real endpoints would have.
    if SIPP_MEDIA == "pcap":
        audio, pbx_audio = tmp / "audio-caller.pcap", tmp / "audio-pbx.pcap"
        if not audio.exists():
            speech = speech_loop(hold_s + 5)
            write_rtp_pcap(audio, speech, ssrc=0x1234ABCD)
            write_rtp_pcap(pbx_audio, speech, ssrc=0x5678DCBA)
    else:  # rtp_stream picks each call's SSRC itself
        audio = pbx_audio = tmp / "audio.alaw"
        if not audio.exists():
            audio.write_bytes(speech_alaw(hold_s + 5))
    pbx = Proc(
        [
            "sipp",
            "-sf",
            str(sipp_scenario("pbx.xml", tmp, pbx_audio)),
            "-key",
            "audio_pcap",
            str(pbx_audio),
            "-i",
            "127.0.0.1",
            "-p",
            str(pbx_port),
            "-mp",
            str(free_port()),
            "-m",
            str(calls),
            "-nostdin",
            "-timeout",
            str(int(hold_s * 4 + 60)),
            "-trace_logs",
            "-log_file",
            str(pbx_log),
        ]
    )
    time.sleep(0.5)
    c0 = cpu_s([p for r in roots for p in tree_pids(r)])
    threads = ThreadSampler(roots)
    threads.start()
    i0 = cpu_s([p for r in infra or [] for p in tree_pids(r)])
    t0 = time.monotonic()
    memory = MemorySampler(roots)
    memory.start()
    rtt = tmp / f"rtt-{digit}.csv"
    caller = subprocess.run(
        [
            "sipp",
            "-sf",
            str(sipp_scenario("caller.xml", tmp, audio)),
            "-key",
            "payload",
            "8",
            "-key",
            "audio_pcap",
            str(audio),
            "-key",
            "digit_pcap",
            str(PCAPS / f"dtmf_2833_{digit}.pcap"),
            "-i",
            "127.0.0.1",
            "-p",
            str(free_port()),
            "-mp",
            str(free_port()),
            "-m",
            str(calls),
            "-l",
            str(calls),
            "-r",
            "4",
            "-d",
            str(int(hold_s * 1000)),
            "-nostdin",
            "-timeout",
            str(int(hold_s * 4 + 60)),
            "-trace_rtt",
            "-rtt_freq",
            "1",
            "-trace_err",
            "-trace_stat",
            "-fd",
            "1",
            "-stf",
            str(tmp / f"stat-{digit}.csv"),
            f"127.0.0.1:{target_port}",
        ],
        cwd=tmp,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - t0
    memory.stop.set()
    memory.join()
    # Every call has ended once the callers are done; a PBX still waiting for some of its
    # calls means they never reached it (refused, or lost under overload): reported, not fatal.
    try:
        pbx.wait_exit(30)
        pbx_missing = 0
    except AssertionError:
        pbx_missing = calls - sum(1 for line in pbx_log.read_text().splitlines() if "consent=" in line)
    if callable(settle):
        settle()
    used = cpu_s([p for r in roots for p in tree_pids(r)]) - c0
    threads.stop.set()
    threads.join()
    infra_used = cpu_s([p for r in infra or [] for p in tree_pids(r)]) - i0
    setup = []
    for f in tmp.glob("*caller_*_rtt.csv"):
        for line in f.read_text().splitlines()[1:]:
            parts = line.split(";")
            # date_ms;response_time_ms;rtd_no
            if len(parts) >= 2 and parts[1].replace(".", "").isdigit():
                setup.append(float(parts[1]))
        f.rename(rtt)
    stat_lines = (
        (tmp / f"stat-{digit}.csv").read_text().splitlines() if (tmp / f"stat-{digit}.csv").exists() else []
    )
    ok = failed = peak = 0
    if len(stat_lines) >= 2:
        head = stat_lines[0].split(";")
        last = stat_lines[-1].split(";")
        row = dict(zip(head, last, strict=False))
        ok, failed = int(row.get("SuccessfulCall(C)", 0)), int(row.get("FailedCall(C)", 0))
        peak = max(
            int(dict(zip(head, line.split(";"), strict=False)).get("CurrentCall", 0) or 0)
            for line in stat_lines[1:]
        )
    call_seconds = ok * hold_s
    errors = [
        line[:200]
        for f in tmp.glob("*caller_*_errors.log")
        for line in f.read_text(errors="replace").splitlines()
        if line.strip() and not line.startswith(("-", " "))
    ][-6:]
    for f in tmp.glob("*caller_*_errors.log"):
        f.unlink()
    return {
        "digit": digit,
        "sipp_rc": caller.returncode,
        "calls_ok": ok,
        "calls_failed": failed,
        "sipp_errors": errors,
        "peak_concurrent": peak,
        "wall_s": round(wall, 1),
        **memory.report(),
        "node_cpu_s": round(used, 2),
        "node_cpu_ms_per_call_second": round(used / call_seconds * 1000, 2) if call_seconds else None,
        # Where it went, by thread, read every 0.5 s: a thread that ended in between counts up
        # to its last reading, one that started in between counts whole.
        **(threads.report(call_seconds) if call_seconds else {}),
        "shared_servers_cpu_ms_per_call_second": round(infra_used / call_seconds * 1000, 2)
        if call_seconds and infra
        else None,
        "setup_ms_p50": round(statistics.median(setup), 1) if setup else None,
        "setup_ms_p95": round(sorted(setup)[int(len(setup) * 0.95) - 1], 1) if len(setup) >= 20 else None,
        "calls_the_pbx_never_saw": pbx_missing,
        "consent_seen_by_pbx": sorted(
            {
                line.split("consent=")[1].split()[0]
                for line in pbx_log.read_text().splitlines()
                if "consent=" in line
            }
        )
        if pbx_log.exists()
        else [],
    }


def completeness(lab: CallLab) -> dict[str, object]:
    """The finished recordings against their calls. Two figures: what is missing at the edges
    (the recording's length against the time from its start to the call's end), and the 20 ms
    frames of each direction that hold audio (a frame lost in the middle is silence)."""
    gw = lab.gw.open()
    identities = age.load_identity_file(lab.gw.key)
    missing = []
    present: list[float] = []
    not_whole: dict[str, int] = {}  # truncated (a worker died) or still open, by status
    for rec in gw.index.list_recordings():
        if rec.status != "complete":
            not_whole[rec.status] = not_whole.get(rec.status, 0) + 1
            continue
        with gw.store.open(rec.object_name) as f:
            plain = age.AgeReader(f, identities).read_all()
        samples = (len(plain) - wav.HEADER_SIZE) // 4
        both = np.frombuffer(plain[wav.HEADER_SIZE :], dtype="<i2")
        for direction in (both[0::2], both[1::2]):
            got, total = frames_present(direction)
            if total:
                present.append(got / total * 100)
        from datetime import datetime

        # Bridged time: from the recorder's start (when the PBX answered) to the call's end
        # (the hang-up), not to the recording's finalisation, which comes a little later.
        ended = gw.index.get_call(rec.call_id).ended_at or rec.finished_at
        span = (
            datetime.fromisoformat(ended.replace("Z", "+00:00"))
            - datetime.fromisoformat(rec.started_at.replace("Z", "+00:00"))
        ).total_seconds()
        missing.append(max(0.0, 1 - samples / 8000 / span) * 100 if span > 0 else 0.0)
    return {
        "recordings": len(missing),
        "recordings_not_complete": not_whole,
        "frames_missing_percent_mean": round(statistics.mean(missing), 3) if missing else None,
        "frames_missing_percent_max": round(max(missing), 3) if missing else None,
        "frames_present_percent_mean": round(statistics.mean(present), 3) if present else None,
        "frames_present_percent_min": round(min(present), 3) if present else None,
    }


def configure(lab: CallLab, tap_ptime: int) -> None:
    # RTP below the ephemeral range, where sipp's own media ports (-mp) are taken from, and
    # wide enough for every worker's slice (the tests' 100 ports are too few for a big pool).
    text = re.sub(r"rtp_port = \d+", "rtp_port = 10000", lab.gw.config.read_text())
    lab.gw.config.write_text(
        text.replace("grace_s = 1.0", "grace_s = 0.5")
        .replace("rtp_port_range = 100", "rtp_port_range = 8000")
        .replace("tap_ptime_ms = 40", f"tap_ptime_ms = {tap_ptime}")
    )


def run_embedded(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    """Both phases (declined, then consented) on the embedded default: SQLite and the spool."""
    lab = CallLab(tmp, workers=args.workers)
    configure(lab, args.tap_ptime)
    lab.gw.set("node", "fork_workers", not args.separate_workers)
    out: dict[str, object] = {}
    try:
        lab.start_gateway()
        worker_pids = [w["pid"] for w in lab.node_status()["workers"]]
        out["rss_per_worker_mb_idle"] = round(statistics.mean(rss_mb(p) for p in worker_pids), 1)
        if not args.consented_only:
            out["declined"] = phase(lab, "9", args.calls, args.hold, tmp)
        out["consented"] = phase(lab, "5", args.calls, args.hold, tmp)
        alive = [p for p in worker_pids if Path(f"/proc/{p}").exists()]
        out["workers_gone_during_the_run"] = len(worker_pids) - len(alive)
        out["rss_per_worker_mb_after"] = (
            round(statistics.mean(rss_mb(p) for p in alive), 1) if alive else None
        )
        if not args.consented_only:
            d_cpu = out["declined"]["node_cpu_ms_per_call_second"]  # type: ignore[index]
            c_cpu = out["consented"]["node_cpu_ms_per_call_second"]  # type: ignore[index]
            out["cpu_ratio_recorded_over_unrecorded"] = round(c_cpu / d_cpu, 3) if d_cpu and c_cpu else None
        out["completeness"] = completeness(lab)
        out["node_warnings"] = warnings(lab)
    finally:
        lab.close()
    return out


def run_shared(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    """The consented phase on shared state: a PostgreSQL index (fsync on) and a SeaweedFS S3
    bucket, both on this machine; every recording is uploaded as its call ends."""
    from tests import pg, s3

    pg_server = pg.start(durable=True)
    s3_server = s3.start()
    lab = CallLab(tmp, workers=args.workers)
    configure(lab, args.tap_ptime)
    bucket = s3_server.new_bucket()
    lab.gw.share_index(pg_server.new_database())
    for section, key, value in [
        ("store", "url", f"s3://{bucket}/calls"),
        ("store", "endpoint", s3_server.endpoint),
        ("store", "region", "us-east-1"),
        ("store", "access_key_id", s3.ACCESS_KEY),
        ("store", "secret_access_key", s3.SECRET_KEY),
        ("store", "upload_interval_s", 5),
    ]:
        lab.gw.set(section, key, value)
    out: dict[str, object] = {}

    def uploads_settled() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            up = lab.node_status().get("upload") or {}
            if up.get("uploaded", 0) >= args.calls and not up.get("pending"):
                return
            time.sleep(0.5)

    try:
        lab.start_gateway()
        infra = [pg_server.postmaster_pid()] + ([s3_server.proc.pid] if s3_server.proc else [])
        out["consented"] = phase(lab, "5", args.calls, args.hold, tmp, infra=infra, settle=uploads_settled)
        out["upload"] = lab.node_status().get("upload")
        out["completeness"] = completeness(lab)
        out["node_warnings"] = warnings(lab)
    finally:
        lab.close()
        s3_server.stop()
        pg_server.stop()
    return out


def warnings(lab: CallLab) -> dict[str, object]:
    """Every warning and error the node logged, counted by message with its numbers and ids
    blanked (so "call 3f2a… ended: no ACK after 8 s" counts as one kind), and the first few
    lines as they were."""
    assert lab.gateway is not None
    lines = [
        line
        for line in lab.gateway.stderr_lines
        if '"level": "error"' in line or '"level": "warning"' in line
    ]
    kinds: dict[str, int] = {}
    for line in lines:
        try:
            msg = str(json.loads(line).get("msg", line))
        except ValueError:
            msg = line
        kind = re.sub(r"[0-9a-f]{8,}|\d+(\.\d+)?", "#", msg)[:160]
        kinds[kind] = kinds.get(kind, 0) + 1
    return {
        "count": len(lines),
        "by_message": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "first": [line[:300] for line in lines[:10]],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--calls", type=int, default=16, help="concurrent calls (and calls per phase)")
    ap.add_argument("--hold", type=float, default=20, help="seconds each caller stays after its ACK")
    ap.add_argument("--tap-ptime", type=int, default=40, help="[recording] tap_ptime_ms")
    ap.add_argument(
        "--shared",
        action="store_true",
        help="also run the consented phase on PostgreSQL + S3 and report its CPU over the embedded run's",
    )
    ap.add_argument("--consented-only", action="store_true", help="skip the declined (baseline) phase")
    ap.add_argument(
        "--separate-workers", action="store_true", help="[node] fork_workers = false: no shared imports"
    )
    ap.add_argument(
        "--sipp-media", choices=SIPP_MEDIA_CHOICES, default=SIPP_MEDIA, help="how sipp sends audio"
    )
    args = ap.parse_args()
    use_sipp_media(args.sipp_media)
    out: dict[str, object] = {
        "sipp_media": args.sipp_media,
        "workers": args.workers,
        "calls": args.calls,
        "hold_s": args.hold,
        "tap_ptime_ms": args.tap_ptime,
        "fork_workers": not args.separate_workers,
    }
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "embedded").mkdir()
        out["embedded"] = run_embedded(args, Path(d) / "embedded")
        if args.shared:
            (Path(d) / "shared").mkdir()
            out["shared"] = run_shared(args, Path(d) / "shared")
            base = out["embedded"]["consented"]["node_cpu_ms_per_call_second"]  # type: ignore[index]
            shared = out["shared"]["consented"]["node_cpu_ms_per_call_second"]  # type: ignore[index]
            out["node_cpu_ratio_shared_over_embedded"] = round(shared / base, 3) if base and shared else None
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
