"""`gateway audit`: the gateway looks for its own exposure before anyone else does.

Each finding names what is wrong and how to fix it. Nothing is changed by the scan.
"""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from ..storage import journal
from ..storage.index import IndexUnavailable
from ..storage.index_pg import redact
from . import retention
from .gateway import Gateway

AGE_MAGIC = b"age-encryption.org/v1\n"
MAX_FILES = 200_000


@dataclass(frozen=True)
class Finding:
    kind: str
    where: str
    problem: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def audio_kind(head: bytes, name: str) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "WAV"
    if head[:3] == b"ID3":
        return "MP3 (ID3)"
    if head[:4] == b"OggS":
        return "Ogg"
    if head[:4] == b"fLaC":
        return "FLAC"
    if name.lower().endswith(".mp3") and len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "MP3"
    return None


SKIPPED = "skipped"  # a finding's kind that is a note: what this user may not read, outside the gateway's own


def _walk(root: Path, findings: list[Finding], shared: bool = False) -> list[Path]:
    """Files under `root`. `shared`: a directory others write too (the system temp directory),
    where what this user cannot read is not the gateway's and is skipped with a note."""
    files: list[Path] = []

    def onerror(e: OSError) -> None:
        if shared:
            findings.append(
                Finding(SKIPPED, str(e.filename), f"not scanned: {e.strerror}", "nothing: not the gateway's")
            )
            return
        findings.append(
            Finding(
                "unreadable",
                str(e.filename),
                f"cannot be scanned: {e.strerror}",
                "run `gateway audit` as a user who can read it (e.g. the gateway's own user)",
            )
        )

    for dirpath, _, filenames in os.walk(root, onerror=onerror):
        for name in filenames:
            files.append(Path(dirpath) / name)
            if len(files) >= MAX_FILES:
                findings.append(
                    Finding(
                        "incomplete",
                        str(root),
                        f"more than {MAX_FILES} files; scan stopped",
                        "scan that directory on its own",
                    )
                )
                return files
    return files


def _head(path: Path, findings: list[Finding], n: int = 64) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except PermissionError:
        findings.append(
            Finding("unreadable", str(path), "cannot be read", "run as the gateway's user or root")
        )
    except OSError:
        pass
    return None


def scan_plaintext(
    roots: list[Path], findings: list[Finding], *, owner: int | None = None, skip: tuple[Path, ...] = ()
) -> None:
    """Plaintext audio under `roots`: only files of `owner` (a uid) when given; never under
    `skip` (the configured prompt sets: their audio is the notice, played to every caller)."""
    for root in roots:
        for path in _walk(root, findings, shared=owner is not None):
            try:
                # lstat: a symbolic link is never followed (in a sticky directory, following
                # another user's link is refused: fs.protected_symlinks).
                st = path.lstat()
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or any(path.is_relative_to(s) for s in skip):
                continue
            if owner is not None and st.st_uid != owner:
                continue
            head = _head(path, findings)
            kind = audio_kind(head, path.name) if head else None
            if kind:
                findings.append(
                    Finding(
                        "plaintext-audio",
                        str(path),
                        f"{kind} audio in plaintext",
                        "encrypt it (`gateway import-legacy --shred-originals PATH`) or delete it",
                    )
                )


def scan_permissions(gw: Gateway, findings: list[Finding]) -> None:
    p = gw.config.paths
    for d in (p.data_dir, p.spool_dir, p.secrets_dir, gw.layout.root):
        if d.exists() and stat.S_IMODE(d.stat().st_mode) & 0o077:
            findings.append(
                Finding(
                    "permissions",
                    str(d),
                    f"directory is {oct(stat.S_IMODE(d.stat().st_mode))}, wider than 0700",
                    f"chmod 700 {d}",
                )
            )
    for d in (p.spool_dir, p.secrets_dir):
        if not d.exists():
            continue
        for f in d.iterdir():
            if f.name == "signing.pub" or not f.is_file():
                continue
            mode = stat.S_IMODE(f.stat().st_mode)
            if mode & 0o077:
                kind = "key-exposed" if d == p.secrets_dir else "permissions"
                findings.append(
                    Finding(kind, str(f), f"file is {oct(mode)}, readable beyond its owner", f"chmod 600 {f}")
                )
    for f in p.data_dir.glob(p.index.name + "*"):
        mode = stat.S_IMODE(f.stat().st_mode)
        if mode & 0o077:
            findings.append(Finding("permissions", str(f), f"index file is {oct(mode)}", f"chmod 600 {f}"))
    cfg = gw.config.path
    if cfg.exists() and stat.S_IMODE(cfg.stat().st_mode) & 0o007:
        findings.append(
            Finding("permissions", str(cfg), "configuration is readable by everyone", f"chmod 640 {cfg}")
        )


def scan_identities(gw: Gateway, findings: list[Finding]) -> None:
    """A private age identity anywhere under the data directory breaks the first promise."""
    for path in _walk(gw.config.paths.data_dir, findings):
        if path.is_file() and path.stat().st_size < 1 << 20 and not path.name.endswith(".age"):
            try:
                if b"AGE-SECRET-KEY-1" in path.read_bytes():
                    findings.append(
                        Finding(
                            "identity-on-gateway",
                            str(path),
                            "a private age identity is stored on the gateway",
                            "move it to the operators' offline storage and delete it here",
                        )
                    )
            except OSError:
                pass


def scan_store(gw: Gateway, findings: list[Finding]) -> None:
    spool = gw.config.paths.spool_dir
    if not spool.exists():
        return
    for f in spool.iterdir():
        head = _head(f, findings, len(AGE_MAGIC)) if f.is_file() else None
        if head is not None and head != AGE_MAGIC:
            findings.append(
                Finding(
                    "not-ciphertext",
                    str(f),
                    "file in the store is not an age file",
                    "find out what wrote it; if it is audio, encrypt or delete it",
                )
            )


def scan_retention(gw: Gateway, findings: list[Finding]) -> None:
    for row in retention.expired(gw.index, retention.Retention.of(gw.config)):
        if not gw.index.active_holds(row.id):
            findings.append(
                Finding(
                    "past-retention",
                    row.id,
                    f"recording from {row.started_at} is past its retention and not on hold",
                    "gateway retention run",
                )
            )


def _listening(proto: str) -> list[tuple[str, int]]:
    out = []
    for name in (proto, proto + "6"):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state = parts[1], parts[3]
            if proto == "tcp" and state != "0A":
                continue
            addr, port = local.split(":")
            if len(addr) == 8:
                host = ".".join(str(int(addr[i : i + 2], 16)) for i in (6, 4, 2, 0))
            else:
                host = "::" if set(addr) == {"0"} else "ipv6"
            out.append((host, int(port, 16)))
    return out


def scan_sockets(gw: Gateway, findings: list[Finding]) -> None:
    expected = [gw.config.sip.listen] + ([gw.config.sip.tls[:2]] if gw.config.sip.tls else [])
    for want_host, port in expected:
        for proto in ("udp", "tcp"):
            for host, p in _listening(proto):
                if p == port and host != want_host and want_host not in ("0.0.0.0", "::"):
                    findings.append(
                        Finding(
                            "socket",
                            f"{proto} {host}:{p}",
                            f"port {p} is open on {host}, beyond the configured {want_host}",
                            "check [sip] listen and what else binds that port",
                        )
                    )


def gateway_temp_dirs() -> list[Path]:
    """Where the gateway's own temporary files would be: the system temp directory, and the
    private one systemd gives the unit (PrivateTmp=yes)."""
    base = Path(tempfile.gettempdir())
    return [base, *sorted(base.glob("systemd-private-*-consent-gateway*.service-*/tmp"))]


def owned_dirs(gw: Gateway) -> list[Path]:
    """Every directory the gateway writes, once each (they usually all sit under data_dir)."""
    p = gw.config.paths
    dirs: list[Path] = []
    for d in (p.data_dir, p.spool_dir, p.index.parent, p.secrets_dir, gw.layout.root):
        if not any(d.is_relative_to(x) for x in dirs):
            dirs.append(d)
    return dirs


def scan(gw: Gateway, temp_dirs: list[Path] | None = None) -> list[Finding]:
    """The exposure scan. `temp_dirs` given: scanned whole. None: the system temp directories,
    for files of the gateway's own user (the owner of the data directory) only."""
    findings: list[Finding] = []
    prompts = tuple(sorted({r.prompts_dir for r in gw.config.routes}))
    scan_plaintext(owned_dirs(gw), findings, skip=prompts)
    if temp_dirs is None:
        owner = gw.config.paths.data_dir.stat().st_uid
        scan_plaintext(gateway_temp_dirs(), findings, owner=owner, skip=prompts)
    else:
        scan_plaintext(temp_dirs, findings, skip=prompts)
    scan_permissions(gw, findings)
    scan_identities(gw, findings)
    scan_store(gw, findings)
    scan_sockets(gw, findings)
    scan_journal(gw, findings)
    try:
        scan_retention(gw, findings)
        verdict = gw.index.verify_audit()
    except IndexUnavailable as e:
        findings.append(
            Finding(
                "index-unreachable",
                gw.config.index.url and redact(gw.config.index.url) or str(gw.config.paths.index),
                f"the index cannot be reached ({e}): retention and the audit chain were not checked",
                "bring the database back (calls go on meanwhile; their index writes wait in the journal)",
            )
        )
        return findings
    if verdict.problem is not None:
        findings.append(
            Finding(
                "audit-chain",
                f"audit entry #{verdict.problem.seq}",
                verdict.problem.message,
                "investigate who changed the index; restore it from a backup",
            )
        )
    return findings


def scan_journal(gw: Gateway, findings: list[Finding]) -> None:
    """Index writes waiting in the local journal: the shared index was (or is) out of reach."""
    directory = journal.directory_of(gw.config.paths.data_dir)
    waiting = journal.backlog(directory) if directory.is_dir() else 0
    if waiting:
        findings.append(
            Finding(
                "index-journal",
                str(directory),
                f"{waiting} index write(s) are waiting for the shared index (it was out of reach)",
                "make [index] url reachable; the running gateway replays them by itself, in order",
            )
        )
