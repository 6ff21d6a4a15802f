"""The "no plaintext audio on disk" harness.

`traced_run` runs a command under strace, following every child, and collects every byte any
process of the tree writes to a file-backed descriptor, including files deleted again (the
temp-file case, which a look at the disk afterwards would miss). `PlaintextReport` then looks
in those bytes, and in every written file that still exists, for

- the canary: a known pseudo-random PCM pattern, found raw (mono) or in either channel of
  interleaved 16-bit stereo at any byte alignment, and
- audio container signatures at the start of a file: RIFF/WAVE, ID3, MPEG frame sync, OggS, fLaC.

Pipes, sockets and terminals are not disk and are not counted; /dev/null is not either.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_HEX = re.compile(rb"\\x([0-9a-f]{2})")
_CALL = re.compile(rb"^(\d+)\s+(write|pwrite64|writev|pwritev|pwritev2)\((\d+)<((?:\\x[0-9a-f]{2})*)>, (.*)$")
_STRING = re.compile(rb'"((?:\\x[0-9a-f]{2})*)"')
NOT_DISK = ("pipe:", "socket:", "anon_inode:", "/dev/null", "/dev/pts/", "/dev/tty", "TCP", "UDP", "UNIX",
            "/dev/urandom", "/proc/")
AUDIO_MAGIC = [(b"RIFF", 8, b"WAVE"), (b"ID3", None, None), (b"OggS", None, None), (b"fLaC", None, None)]


def canary_pcm(samples: int = 8000, seed: int = 0xC0FFEE) -> bytes:
    """A known pattern no microphone produces: seeded noise, as 16-bit little-endian PCM."""
    rng = np.random.default_rng(seed)
    return rng.integers(-20000, 20000, samples, dtype=np.int16).astype("<i2").tobytes()


def _unhex(s: bytes) -> bytes:
    return bytes(int(h, 16) for h in _HEX.findall(s))


def _streams(data: bytes) -> list[bytes]:
    """The data as written, and each channel of it read as interleaved 16-bit stereo."""
    out = [data]
    for align in range(4):
        usable = (len(data) - align) // 4 * 4
        if usable <= 0:
            continue
        frames = np.frombuffer(data[align : align + usable], dtype="<i2").reshape(-1, 2)
        out += [frames[:, 0].tobytes(), frames[:, 1].tobytes()]
    return out


def needles(canary: bytes, width: int = 64, count: int = 8) -> list[bytes]:
    step = max(width, (len(canary) - width) // count)
    return [canary[i : i + width] for i in range(0, len(canary) - width + 1, step)][:count]


def contains_canary(data: bytes, canary: bytes) -> bool:
    ns = needles(canary)
    return any(n in s for s in _streams(data) for n in ns)


def audio_signature(data: bytes) -> str | None:
    for magic, offset, second in AUDIO_MAGIC:
        if data.startswith(magic) and (second is None or data[offset : offset + len(second)] == second):
            return magic.decode()
    if len(data) >= 4 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0 and (data[1] >> 1) & 3 and (data[2] >> 4) not in (0, 15):
        return "MPEG frame"
    return None


@dataclass
class Trace:
    returncode: int
    stdout: bytes
    stderr: bytes
    # path -> [(first bytes of each write, whole data of each write)]
    writes: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))

    @property
    def files_written(self) -> list[str]:
        return sorted(self.writes)


def traced_run(cmd: list[str], *, cwd: Path | str | None = None, env: dict[str, str] | None = None,
               input: bytes | None = None, timeout: float = 120, trace_file: Path) -> Trace:
    """Run `cmd` under strace -f and collect what it wrote to files."""
    strace = [*STRACE_PREFIX, "-o", str(trace_file)]
    proc = subprocess.run(strace + cmd, cwd=cwd, env=env, input=input, capture_output=True, timeout=timeout)
    trace = Trace(proc.returncode, proc.stdout, proc.stderr)
    parse_trace(trace_file, trace)
    return trace


def parse_trace(trace_file: Path, trace: Trace) -> None:
    """Add the file writes recorded in an `strace -f -xx -y` output file to `trace`."""
    with open(trace_file, "rb") as f:
        for line in f:
            m = _CALL.match(line.rstrip(b"\n"))
            if not m:
                continue
            path = _unhex(m.group(4)).decode(errors="replace")
            if path.endswith(" (deleted)"):
                path = path[: -len(" (deleted)")]
            if any(path.startswith(p) for p in NOT_DISK) or not path.startswith("/"):
                continue
            args = m.group(5)
            if m.group(2).startswith(b"writev") or m.group(2).startswith(b"pwritev"):
                data = b"".join(_unhex(s) for s in re.findall(rb'iov_base="((?:\\x[0-9a-f]{2})*)"', args))
            else:
                s = _STRING.match(args)
                data = _unhex(s.group(1)) if s else b""
            trace.writes[path].append(data)
    os.unlink(trace_file)


STRACE_PREFIX = ["strace", "-f", "-qq", "-s", str(1 << 24), "-xx", "-y", "-e",
                 "trace=write,pwrite64,writev,pwritev,pwritev2"]


@dataclass
class Finding:
    path: str
    what: str


def find_plaintext(trace: Trace, canary: bytes) -> list[Finding]:
    """Every file written with the canary or an audio container in it, while running or after."""
    findings = []
    for path, chunks in trace.writes.items():
        data = b"".join(chunks)
        if contains_canary(data, canary):
            findings.append(Finding(path, "canary audio in bytes written"))
        sig = audio_signature(chunks[0]) if chunks else None
        if sig:
            findings.append(Finding(path, f"{sig} audio written"))
        if os.path.isfile(path):
            on_disk = Path(path).read_bytes()
            if contains_canary(on_disk, canary):
                findings.append(Finding(path, "canary audio in the file on disk"))
            sig = audio_signature(on_disk)
            if sig:
                findings.append(Finding(path, f"file on disk is {sig} audio"))
    return findings


def non_age_files(directory: Path) -> list[str]:
    """Files in a store directory that are not age files."""
    bad = []
    for p in sorted(directory.rglob("*")):
        if p.is_file():
            with open(p, "rb") as f:
                if f.read(22) != b"age-encryption.org/v1\n":
                    bad.append(str(p))
    return bad
