"""The "no plaintext audio on disk" harness.

`traced_run` runs a command under strace, following every child (`-ff`: one trace file per
process, so no call is ever split across lines), and collects what any process of the tree put
into a file:

- every byte written with write/pwrite/writev (deleted temp files included: the temp-file case,
  which a look at the disk afterwards would miss);
- every file opened for writing, created, renamed or linked into place;
- every file data was moved into without passing through the process (sendfile,
  copy_file_range, splice, tee) or written through a shared writable mmap: those bytes are not
  in the trace, so the file is read from disk afterwards, and a finding is raised if it is gone;
- every file new or changed in the watched trees (the test's directory by default), whether or
  not the trace saw it written.

`find_plaintext` then looks in those bytes, and in every such file that still exists, for the
canary (a known pseudo-random PCM pattern, raw or in either channel of interleaved 16-bit
stereo, at any byte alignment) and for audio containers (RIFF/WAVE, ID3, Ogg, FLAC at any
offset, with their header fields checked so that ciphertext does not match by chance; an MPEG
frame sync at a file's start).

Pipes, sockets and terminals are not disk and are not counted; /dev/null is not either.
"""

from __future__ import annotations

import glob
import os
import re
import stat
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_HEX = re.compile(rb"\\x([0-9a-f]{2})")
_LINE = re.compile(rb"^(?:\d+\s+)?([a-z0-9_]+)\((.*)\) += (.*)$")
_STRING = re.compile(rb'"((?:\\x[0-9a-f]{2})*)"')
_FD = re.compile(rb"(-?\d+|AT_FDCWD)<((?:\\x[0-9a-f]{2})*)>")
NOT_DISK = (
    "pipe:",
    "socket:",
    "anon_inode:",
    "/dev/null",
    "/dev/pts/",
    "/dev/tty",
    "TCP",
    "UDP",
    "UNIX",
    "/dev/urandom",
    "/proc/",
    "/sys/",
)
WRITES = ("write", "pwrite64", "writev", "pwritev", "pwritev2")
MOVES = {
    "sendfile": 0,
    "sendfile64": 0,
    "copy_file_range": 2,
    "splice": 2,
    "tee": 1,
}  # which arg is the target
OPENS = ("open", "openat", "openat2", "creat")
RENAMES = ("rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat")
SYSCALLS = [*WRITES, *MOVES, *OPENS, *RENAMES, "mmap"]
STRACE_PREFIX = ["strace", "-ff", "-qq", "-s", str(1 << 24), "-xx", "-y", "-e", "trace=" + ",".join(SYSCALLS)]
# SQLite's shared-memory WAL index is mapped shared and writable, and removed on close. It holds
# page numbers and checksums of the index database, never audio.
SHARED_MAP_EXEMPT = re.compile(r"\.sqlite3?-shm$")


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


_CONTAINERS = [
    # RIFF, any size, then WAVE.
    ("RIFF", re.compile(rb"RIFF[\x00-\xff]{4}WAVE", re.S)),
    # ID3v2: version 2-4, revision 0, no undefined flags, a syncsafe size.
    ("ID3", re.compile(rb"ID3[\x02-\x04]\x00[\x00-\xf0][\x00-\x7f]{4}")),
    # Ogg page: version 0, a known header type.
    ("OggS", re.compile(rb"OggS\x00[\x00-\x07]")),
    # FLAC: a STREAMINFO block of 34 bytes first.
    ("fLaC", re.compile(rb"fLaC[\x00\x80]\x00\x00\x22")),
]


def audio_signature(data: bytes) -> str | None:
    """An audio container anywhere in `data` (or an MPEG frame at its start)."""
    for name, pattern in _CONTAINERS:
        if pattern.search(data):
            return name
    if (
        len(data) >= 4
        and data[0] == 0xFF
        and (data[1] & 0xE0) == 0xE0
        and (data[1] >> 1) & 3
        and (data[2] >> 4) not in (0, 15)
    ):
        return "MPEG frame"
    return None


@dataclass
class Trace:
    returncode: int
    stdout: bytes
    stderr: bytes
    # path -> the data of each write to it
    writes: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    opened: set[str] = field(default_factory=set)  # opened for writing, created, renamed or linked into place
    # path -> how data reached it without a write the trace could see (sendfile, shared mmap...)
    moved: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    changed: set[str] = field(default_factory=set)  # new or changed in the watched trees

    @property
    def files_written(self) -> list[str]:
        return sorted(self.writes)

    @property
    def files_touched(self) -> list[str]:
        return sorted(set(self.writes) | self.opened | set(self.moved) | self.changed)


Snapshot = dict[str, tuple[int, int, int]]


def snapshot(roots: list[Path]) -> Snapshot:
    """(inode, size, mtime) of every regular file under `roots`."""
    out: Snapshot = {}
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for name in names:
                p = os.path.join(dirpath, name)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    out[p] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


def changed_since(before: Snapshot, roots: list[Path], exclude: str = "") -> set[str]:
    after = snapshot(roots)
    return {p for p, sig in after.items() if before.get(p) != sig and not (exclude and p.startswith(exclude))}


def traced_run(
    cmd: list[str],
    *,
    cwd: Path | str | None = None,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    timeout: float = 120,
    trace_file: Path,
    watch: list[Path] | None = None,
) -> Trace:
    """Run `cmd` under strace -ff and collect what it put into files. `watch`: trees whose new
    or changed files are checked too (default: the directory of `trace_file`)."""
    roots = watch if watch is not None else [trace_file.parent]
    before = snapshot(roots)
    proc = subprocess.run(
        [*STRACE_PREFIX, "-o", str(trace_file), *cmd],
        cwd=cwd,
        env=env,
        input=input,
        capture_output=True,
        timeout=timeout,
    )
    trace = Trace(proc.returncode, proc.stdout, proc.stderr)
    parse_trace(trace_file, trace)
    trace.changed = changed_since(before, roots, exclude=str(trace_file))
    return trace


def _on_disk(path: str) -> bool:
    """A file a copy of the machine's storage could hold. Devices are not, except /dev/shm
    (files there outlive the process and other processes can read them)."""
    if path.startswith("/dev/") and not path.startswith("/dev/shm/"):
        return False
    return path.startswith("/") and not any(path.startswith(p) for p in NOT_DISK)


def _disk_path(raw: bytes) -> str | None:
    path = _unhex(raw).decode(errors="replace")
    if path.endswith(" (deleted)"):
        path = path[: -len(" (deleted)")]
    return path if _on_disk(path) else None


def _args(text: bytes) -> list[bytes]:
    """Top-level arguments of a syscall (strings are hex-escaped, so only brackets nest)."""
    out, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c in b"[{(":
            depth += 1
        elif c in b"]})":
            depth -= 1
        elif c == ord(",") and depth == 0:
            out.append(text[start:i].strip())
            start = i + 1
    out.append(text[start:].strip())
    return out


def _fd_path(arg: bytes) -> str | None:
    m = _FD.match(arg)
    return _disk_path(m.group(2)) if m else None


def _joined(dirfd: bytes, name: bytes) -> str | None:
    s = _STRING.match(name)
    if not s:
        return None
    rel = _unhex(s.group(1)).decode(errors="replace")
    if rel.startswith("/"):
        return rel
    base = _fd_path(dirfd) if dirfd else None
    return os.path.join(base, rel) if base else None


def parse_trace(trace_file: Path, trace: Trace) -> None:
    """Add what the `strace -ff -xx -y` output files `trace_file`.PID record to `trace`."""
    files = sorted(glob.glob(glob.escape(str(trace_file)) + ".*"))
    if trace_file.exists():
        files.append(str(trace_file))
    for name in files:
        with open(name, "rb") as f:
            for line in f:
                _parse_line(line.rstrip(b"\n"), trace)
        os.unlink(name)


def _parse_line(line: bytes, trace: Trace) -> None:
    m = _LINE.match(line)
    if not m:
        return
    call, args, result = m.group(1).decode(), m.group(2), m.group(3)
    if result.startswith(b"-1"):
        return  # the call failed: nothing reached a file
    a = _args(args)
    if call in WRITES:
        path = _fd_path(a[0])
        if path is None:
            return
        if call.startswith(("writev", "pwritev")):
            data = b"".join(_unhex(s) for s in re.findall(rb'iov_base="((?:\\x[0-9a-f]{2})*)"', args))
        else:
            s = _STRING.match(a[1]) if len(a) > 1 else None
            data = _unhex(s.group(1)) if s else b""
        trace.writes[path].append(data)
    elif call in MOVES:
        path = _fd_path(a[MOVES[call]]) if len(a) > MOVES[call] else None
        if path is not None:
            trace.moved[path].add(call)
    elif call == "mmap":
        if len(a) >= 5 and b"PROT_WRITE" in a[2] and b"MAP_SHARED" in a[3]:
            path = _fd_path(a[4])
            if path is not None:
                trace.moved[path].add("shared mmap")
    elif call in OPENS:
        flags = a[1] if call == "open" else (a[2] if len(a) > 2 else b"")
        if call == "creat" or any(f in flags for f in (b"O_WRONLY", b"O_RDWR", b"O_CREAT", b"O_TRUNC")):
            path = _fd_path(result)
            if path is not None:
                trace.opened.add(path)
    elif call in RENAMES:
        if call in ("rename", "link", "symlink"):
            target = _joined(b"", a[1])
        elif call == "symlinkat":
            target = _joined(a[1], a[2])
        else:
            target = _joined(a[2], a[3])
        if target is not None and _on_disk(target):
            trace.opened.add(target)


@dataclass
class Finding:
    path: str
    what: str


def _file_findings(path: str, canary: bytes) -> list[Finding]:
    findings = []
    try:
        with open(path, "rb") as f:
            on_disk = f.read()
    except OSError:
        return findings
    if contains_canary(on_disk, canary):
        findings.append(Finding(path, "canary audio in the file on disk"))
    sig = audio_signature(on_disk)
    if sig:
        findings.append(Finding(path, f"file on disk is {sig} audio"))
    return findings


def find_plaintext(trace: Trace, canary: bytes) -> list[Finding]:
    """Every file that received the canary or an audio container, while running or after."""
    findings = []
    for path, chunks in trace.writes.items():
        data = b"".join(chunks)
        if contains_canary(data, canary):
            findings.append(Finding(path, "canary audio in bytes written"))
        sig = audio_signature(data)
        if sig:
            findings.append(Finding(path, f"{sig} audio written"))
    for path in trace.files_touched:
        if os.path.isfile(path):
            findings += _file_findings(path, canary)
        elif path in trace.moved and not (
            trace.moved[path] == {"shared mmap"} and SHARED_MAP_EXEMPT.search(path)
        ):
            how = ", ".join(sorted(trace.moved[path]))
            findings.append(
                Finding(path, f"data went in by {how} and the file is gone: it cannot be checked")
            )
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
