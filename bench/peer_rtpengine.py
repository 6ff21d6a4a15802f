"""Benchmark: the gateway's node against what a site would run instead to record its calls,
Kamailio + rtpengine (Debian packages, userspace forwarding, no kernel module), with the same
sipp load in the same run.

    .venv/bin/python bench/peer_rtpengine.py --calls 20 --workers 10 --hold 30

Both stacks get the same calls: sipp callers and a sipp PBX, G.711 A-law both ways for the
whole hold (sip-tester's speech, looped), each caller sending an RFC 2833 "5" first (ignored by
the gateway, which records every call: consent by silence). The peer is a Kamailio proxy whose
rtpengine records every call (`record-call=yes`).

rtpengine's recording daemon (`rtpengine-recording`, which writes WAV) reads packets from the
kernel module's /proc interface (`--recording-method=proc`); that module cannot be loaded here
(no kernel modules in a container or on CI), so the peer records with rtpengine's userspace
method, `pcap`: one pcap file per call. Decoding those pcaps into WAV is done afterwards by
this benchmark and is not counted in the peer's CPU (a site would pay for it in the recording
daemon, in C).

Reported per stack: CPU of all its processes per recorded call-second, peak memory (PSS and
RSS, summed over its processes) during the calls, and the frames present in its recordings:
each recording decoded to 16-bit PCM per direction (rtpengine's pcaps by RTP sequence number,
a missing packet as silence; the gateway's by decrypting its age-encrypted WAV) and cut into
20 ms frames, a frame counting as present unless it is all zeros. Then the ratio gateway/peer.
Working files go under the system temp directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.node_load import (  # noqa: E402
    SIPP_MEDIA,
    SIPP_MEDIA_CHOICES,
    configure,
    run_header,
    sipp_phase,
    tree_pids,
    use_sipp_media,
)
from gateway import age  # noqa: E402
from gateway.recording import wav  # noqa: E402
from gateway.supervisor.kamailio import module_path  # noqa: E402
from tests.audio import FRAME, frames_present  # noqa: E402
from tests.calls import CallLab, Proc, free_port  # noqa: E402
from tests.pcapgen import alaw_to_pcm, read_rtp  # noqa: E402


def contained(cwd: Path, *cmd: str) -> list[str]:
    """`cmd` run in `cwd` with core dumps off (rtpengine 10.5 may dump core as it stops): the
    same pid, so it can be measured and stopped by pid."""
    return ["sh", "-c", 'ulimit -c 0 && cd "$0" && exec "$@"', str(cwd), *cmd]


def memory_kb(pid: int) -> tuple[int, int]:
    """(PSS, RSS) of one process in kB, 0 for one that is gone."""
    pss = rss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
            elif line.startswith("Rss:"):
                rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss


class MemoryPeak(threading.Thread):
    """Samples the summed PSS and RSS of the process trees under `roots` every second."""

    def __init__(self, roots: list[int]) -> None:
        super().__init__(daemon=True)
        self.roots = roots
        self.peak_pss = self.peak_rss = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(1.0):
            pss = rss = 0
            for pid in {p for r in self.roots for p in tree_pids(r)}:
                a, b = memory_kb(pid)
                pss, rss = pss + a, rss + b
            self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)


def peer_frames(recording_dir: Path) -> list[tuple[int, int]]:
    """Per direction of every recorded call: rtpengine's pcap decoded by sequence number."""
    out = []
    for pcap in sorted(recording_dir.rglob("*.pcap")):
        for packets in read_rtp(pcap).values():
            audio = {seq: payload for pt, seq, payload in packets if pt == 8}
            if len(audio) < 50:
                continue  # not a call's audio stream (a few RFC 2833 or stray packets)
            first, seqs = min(audio), sorted(audio)
            # Unwrap 16-bit sequence numbers so a stream crossing 65535 stays in order.
            span = (seqs[-1] - first) if seqs[-1] - first < 32768 else (seqs[-1] - first - 65536)
            pcm = np.zeros((span + 1) * FRAME, dtype=np.int16)
            for seq, payload in audio.items():
                i = (seq - first) % 65536
                if i <= span:
                    samples = np.frombuffer(alaw_to_pcm(payload), dtype="<i2")[:FRAME]
                    pcm[i * FRAME : i * FRAME + len(samples)] = samples
            out.append(frames_present(pcm))
    return out


def gateway_frames(lab: CallLab) -> list[tuple[int, int]]:
    gw = lab.gw.open()
    identities = age.load_identity_file(lab.gw.key)
    out = []
    for rec in gw.index.list_recordings():
        with gw.store.open(rec.object_name) as f:
            plain = age.AgeReader(f, identities).read_all()
        samples = np.frombuffer(plain[wav.HEADER_SIZE :], dtype="<i2")
        out += [frames_present(samples[0::2]), frames_present(samples[1::2])]
    return out


def summary(frames: list[tuple[int, int]]) -> dict[str, object]:
    shares = [p / t * 100 for p, t in frames if t]
    return {
        "directions": len(frames),
        "frames_present": sum(p for p, _ in frames),
        "frames_total": sum(t for _, t in frames),
        "present_percent_mean": round(statistics.mean(shares), 3) if shares else None,
        "present_percent_min": round(min(shares), 3) if shares else None,
    }


def peer_kamailio_cfg(port: int, pbx_port: int, ng_port: int, rundir: Path) -> str:
    """A recording proxy as a site would write one: record-route, rtpengine on every call."""
    flags = "record-call=yes replace-origin replace-session-connection"
    return f"""#!KAMAILIO
debug=1
log_stderror=yes
children=2
listen=udp:127.0.0.1:{port}
mpath="{module_path()}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "ctl.so"
loadmodule "rtpengine.so"
modparam("ctl", "binrpc", "unixs:{rundir}/ctl")
modparam("rr", "enable_full_lr", 1)
modparam("rtpengine", "rtpengine_sock", "udp:127.0.0.1:{ng_port}")

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            if (is_method("BYE")) {{
                rtpengine_delete();
            }} else if (has_body("application/sdp")) {{
                rtpengine_manage("{flags}");
            }}
            t_relay();
            exit;
        }}
        if (is_method("ACK") && t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            rtpengine_delete();
            t_relay();
        }}
        exit;
    }}
    if (!is_method("INVITE")) {{
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }}
    record_route();
    rtpengine_offer("{flags}");
    t_on_reply("REPLY");
    $ru = "sip:helpline@127.0.0.1:{pbx_port}";
    t_relay();
    exit;
}}

onreply_route[REPLY] {{
    if (has_body("application/sdp")) {{
        rtpengine_answer("{flags}");
    }}
}}
"""


def run_peer(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    tmp.mkdir(parents=True)
    port, pbx_port, ng_port = free_port(), free_port(), free_port()
    recordings = tmp / "recordings"
    recordings.mkdir()
    rtpengine = Proc(
        contained(
            tmp,
            "rtpengine",
            "--config-file=none",
            "--foreground",
            "--log-stderr",
            "--log-level=4",
            "--table=-1",
            "--interface=127.0.0.1",
            f"--listen-ng=127.0.0.1:{ng_port}",
            # Above Linux's ephemeral range (32768-60999), where the gateway's and sipp's ports are.
            "--port-min=61000",
            "--port-max=61999",
            f"--recording-dir={recordings}",
            "--recording-method=pcap",
            "--delete-delay=0",
            f"--pidfile={tmp / 'rtpengine.pid'}",
        )
    )
    cfg = tmp / "kamailio.cfg"
    cfg.write_text(peer_kamailio_cfg(port, pbx_port, ng_port, tmp))
    kamailio = Proc(
        contained(tmp, "kamailio", "-f", str(cfg), "-DD", "-E", "-Y", str(tmp), "-m", "64", "-M", "8")
    )
    try:
        time.sleep(2.0)
        for p, name in ((rtpengine, "rtpengine"), (kamailio, "kamailio")):
            if p.proc.poll() is not None:
                raise RuntimeError(f"{name} did not start: {p.stderr_lines[-5:]}")
        roots = [rtpengine.proc.pid, kamailio.proc.pid]
        mem = MemoryPeak(roots)
        mem.start()
        out = sipp_phase(port, pbx_port, roots, "5", args.calls, args.hold, tmp)
        mem.done.set()
        time.sleep(2.0)  # rtpengine closes each call's pcap when it deletes the call
        out["peak_pss_mb"] = round(mem.peak_pss / 1024, 1)
        out["peak_rss_mb"] = round(mem.peak_rss / 1024, 1)
        out["recordings"] = len(list(recordings.rglob("*.pcap")))
        out["frames"] = summary(peer_frames(recordings))
        out["plaintext_files"] = out["recordings"]  # every pcap is audio in clear on disk
        out["rtpengine_warnings"] = [
            ln[:200] for ln in rtpengine.stderr_lines if "ERR" in ln or "WARN" in ln
        ][-5:]
        if os.environ.get("PEER_BENCH_LOG"):
            Path(os.environ["PEER_BENCH_LOG"]).write_text("\n".join(rtpengine.stderr_lines))
        return out
    finally:
        for p in (kamailio, rtpengine):
            if p.proc.poll() is None:
                p.proc.terminate()
                try:
                    p.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.proc.kill()


def run_gateway(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    tmp.mkdir(parents=True)
    lab = CallLab(tmp, workers=args.workers)
    configure(lab, 40)
    try:
        lab.start_gateway()
        assert lab.gateway is not None
        roots = [lab.gateway.proc.pid]
        mem = MemoryPeak(roots)
        mem.start()
        out = sipp_phase(lab.sip_port, lab.pbx_port, roots, "5", args.calls, args.hold, tmp)
        mem.done.set()
        out["peak_pss_mb"] = round(mem.peak_pss / 1024, 1)
        out["peak_rss_mb"] = round(mem.peak_rss / 1024, 1)
        lab.gateway.stop()
        out["recordings"] = len(lab.gw.open().index.list_recordings())
        out["frames"] = summary(gateway_frames(lab))
        return out
    finally:
        lab.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--workers", type=int, default=10, help="the gateway's pool (two calls each)")
    ap.add_argument("--hold", type=float, default=30.0)
    ap.add_argument(
        "--sipp-media", choices=SIPP_MEDIA_CHOICES, default=SIPP_MEDIA, help="how sipp sends audio"
    )
    args = ap.parse_args()
    use_sipp_media(args.sipp_media)
    if shutil.which("rtpengine") is None:
        sys.exit(
            "peer_rtpengine: rtpengine is not installed: apt-get install --no-install-recommends "
            "rtpengine-daemon (it is not in scripts/setup.sh: a packaged rtpengine service on a "
            "machine with systemd would take RTP ports the tests use)"
        )
    print(run_header(), file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="peer-bench-") as d:
        peer = run_peer(args, Path(d) / "peer")
        ours = run_gateway(args, Path(d) / "gateway")
    cpu = ("node_cpu_ms_per_call_second", "cpu_ms_per_recorded_call_second")
    for r in (peer, ours):
        r[cpu[1]] = r.pop(cpu[0])
    ratio = (
        round(ours[cpu[1]] / peer[cpu[1]], 2)  # type: ignore[operator]
        if peer.get(cpu[1]) and ours.get(cpu[1])
        else None
    )
    print(
        json.dumps(
            {
                "calls": args.calls,
                "hold_s": args.hold,
                "sipp_media": args.sipp_media,
                "peer_kamailio_rtpengine": peer,
                "gateway_node": ours,
                "cpu_ratio_gateway_over_peer": ratio,
                "pss_ratio_gateway_over_peer": round(ours["peak_pss_mb"] / peer["peak_pss_mb"], 2)  # type: ignore[operator]
                if peer.get("peak_pss_mb")
                else None,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
