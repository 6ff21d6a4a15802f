"""What crossed the loopback interface during a test, as tshark (Debian) captured it: whether
SIP went in clear, and whether any RTP stream carries a test tone in its payload."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.audio import dominant_frequency

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # G.711 decoding (deprecated in 3.11, present until 3.13)


class Capture:
    """tshark on `lo` writing a pcap while the block runs; stopped by its pid."""

    def __init__(self, path: Path, bpf: str = "udp or tcp") -> None:
        self.path = path
        self.bpf = bpf
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Capture:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # dumpcap refuses to write into a directory it does not own as root: give it the file.
        self.path.touch()
        self.proc = subprocess.Popen(
            ["tshark", "-i", "lo", "-f", self.bpf, "-w", str(self.path), "-q"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 20
        seen = b""
        while b"Capturing on" not in seen:  # tshark says so once the interface is open
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"tshark did not start capturing: {seen.decode(errors='replace')}")
            seen += os.read(self.proc.stderr.fileno(), 4096)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        time.sleep(0.5)  # let the last packets reach the file
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Traffic:
    payloads: list[tuple[str, int, int, bytes]]  # (protocol, source port, destination port, bytes)
    rtp: dict[tuple[int, int], list[bytes]] = field(default_factory=dict)  # (port, ssrc) -> payloads

    def sip_in_clear(self) -> list[bytes]:
        """Every payload that is SIP as text (a request line, a status line or a Via)."""
        return [p for _, _, _, p in self.payloads if b"SIP/2.0" in p]

    def rtp_tones(self, rate: int = 8000) -> dict[tuple[int, int], float]:
        """Per RTP stream of at least two seconds of G.711: the frequency that dominates most
        of its one-second windows (0.0 when no frequency dominates: noise, or ciphertext)."""
        found = {}
        for key, packets in self.rtp.items():
            pt = key[1] >> 32
            pcm = b"".join(audioop.alaw2lin(p, 2) if pt == 8 else audioop.ulaw2lin(p, 2) for p in packets)
            samples = np.frombuffer(pcm, dtype="<i2")
            if len(samples) < 2 * rate:
                continue
            windows = [samples[i : i + rate] for i in range(0, len(samples) - rate + 1, rate)]
            freqs = [round(dominant_frequency(w, rate)) for w in windows if np.abs(w).mean() > 300]
            best = max(set(freqs), key=freqs.count) if freqs else 0
            found[key] = float(best) if freqs and freqs.count(best) >= len(windows) // 2 else 0.0
        return found

    def carries_tone(self, hz: float, tolerance: float = 15.0) -> bool:
        return any(abs(f - hz) <= tolerance for f in self.rtp_tones().values())


def read(path: Path) -> Traffic:
    """The UDP and TCP payloads of a capture, and the G.711 RTP streams among the UDP ones."""
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(path),
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "udp.srcport",
            "-e",
            "udp.dstport",
            "-e",
            "udp.payload",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "tcp.payload",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    payloads = []
    rtp: dict[tuple[int, int], list[bytes]] = defaultdict(list)
    for line in out.splitlines():
        usrc, udst, upay, tsrc, tdst, tpay = (line.split("|") + [""] * 6)[:6]
        if upay:
            data = bytes.fromhex(upay.replace(":", ""))
            payloads.append(("udp", int(usrc), int(udst), data))
            # RTP version 2, payload type PCMU (0) or PCMA (8), a whole 12-byte header.
            if len(data) > 12 and data[0] >> 6 == 2 and data[1] & 0x7F in (0, 8):
                ssrc = int.from_bytes(data[8:12], "big")
                csrc = (data[0] & 0x0F) * 4
                rtp[(int(udst), ((data[1] & 0x7F) << 32) | ssrc)].append(data[12 + csrc :])
        if tpay:
            payloads.append(("tcp", int(tsrc), int(tdst), bytes.fromhex(tpay.replace(":", ""))))
    return Traffic(payloads, dict(rtp))
