"""Migrating a plaintext archive (WAV/MP3 trees like medicall/2016/01/01/) into the store.

Each original is encrypted byte for byte: no transcoding, so what was recorded is exactly what
an export gives back. The call time is the file's mtime; the original path is kept only
encrypted. A file is recognised again (to resume, or to shred what was already imported) by a
fingerprint of its device, inode, size, mtime and content, never by its path: a legacy system
that reuses a name must not lose the new file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import age
from ..recording import keys, signing, wav
from ..storage import pii
from ..storage.index import Index
from ..storage.liveness import process_token, writer_is_gone
from ..storage.rows import RecordingRow, RecordingStatus, utcnow
from ..storage.spool import fsync_dir
from ..storage.store import ObjectNotFound, Store
from . import holds
from .gateway import Gateway
from .recordings import new_id

AUDIO_EXTENSIONS = {".wav", ".wave", ".mp3"}
_MPEG_BITRATES_L3 = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320]


class NotAudio(ValueError):
    pass


@dataclass
class ImportSummary:
    imported: int = 0
    skipped: int = 0  # imported by an earlier run
    rejected: list[tuple[str, str]] = field(default_factory=list)
    ignored: int = 0  # not audio by extension
    shredded: int = 0
    bytes_in: int = 0


def _mpeg_frame_ok(b: bytes) -> bool:
    if len(b) < 4 or b[0] != 0xFF or (b[1] & 0xE0) != 0xE0:
        return False
    version, layer = (b[1] >> 3) & 3, (b[1] >> 1) & 3
    bitrate, rate = b[2] >> 4, (b[2] >> 2) & 3
    return version != 1 and layer != 0 and bitrate not in (0, 15) and rate != 3


def sniff(head: bytes, size: int) -> tuple[str, float | None]:
    """(media type, duration if known from the header) or NotAudio with the reason."""
    if head[:4] == b"RIFF":
        try:
            info = wav.parse_header(head, total_size=size)
        except wav.WavError as e:
            raise NotAudio(f"corrupt WAV: {e}") from None
        return "audio/wav", info.duration(total_size=size)
    if head[:3] == b"ID3":
        if len(head) < 10:
            raise NotAudio("corrupt MP3: ID3 tag cut short")
        tag = 10 + (
            (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
        )
        if tag < len(head) and not _mpeg_frame_ok(head[tag : tag + 4]):
            raise NotAudio("corrupt MP3: no MPEG frame after the ID3 tag")
        return "audio/mpeg", None
    if _mpeg_frame_ok(head[:4]):
        return "audio/mpeg", None
    raise NotAudio("not a WAV or MP3 file")


def probe_duration(path: Path) -> float | None:
    """Duration by ffprobe reading the file itself (it writes nothing)."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return None
    out = subprocess.run(
        [ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        return round(float(out.stdout.strip()), 3)
    except ValueError:
        return None


def candidates(paths: list[Path], summary: ImportSummary) -> Iterator[Path]:
    for root in paths:
        if root.is_file():
            yield root
            continue
        if not root.is_dir():
            summary.rejected.append((str(root), "no such file or directory"))
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                p = Path(dirpath) / name
                if p.suffix.lower() in AUDIO_EXTENSIONS:
                    yield p
                else:
                    summary.ignored += 1


@dataclass(frozen=True)
class SourceFile:
    """A legacy original exactly as it was encrypted: which file (device, inode), which
    version of it (size, mtime) and what it held (SHA-256 of its bytes)."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    sha256: str

    @property
    def fingerprint(self) -> str:
        """What the index keeps (no path, no key): enough to recognise this very file again."""
        text = f"legacy-v1:{self.device}:{self.inode}:{self.size}:{self.mtime_ns}:{self.sha256}"
        return hashlib.sha256(text.encode()).hexdigest()

    def same_version(self, st: os.stat_result) -> bool:
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) == (
            self.device,
            self.inode,
            self.size,
            self.mtime_ns,
        )


class ChangedWhileReading(NotAudio):
    """The file changed while it was read: it is probably still being written."""


class ShredRefused(Exception):
    """The file at the path is not (or no longer) exactly what was encrypted: left alone."""


def _open_regular(path: Path, flags: int) -> tuple[int, os.stat_result]:
    """An fd on `path`, refusing symbolic links (at the last component, by O_NOFOLLOW, and
    anywhere in a path that does not resolve to itself) and anything but a regular file."""
    if path.is_symlink():
        raise NotAudio("a symbolic link: not followed (import the file it points to)")
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotAudio("not a regular file")
    return fd, st


def _hash_fd(fd: int) -> str:
    h = hashlib.sha256()
    offset = 0
    while True:
        block = os.pread(fd, 1 << 20, offset)
        if not block:
            return h.hexdigest()
        h.update(block)
        offset += len(block)


def shred_exact(path: Path, expected: SourceFile) -> None:
    """Overwrite and unlink `path` only if it is still exactly the file that was encrypted:
    same device, inode, size, mtime and content. Otherwise ShredRefused, and nothing is touched.

    The overwrite goes through the descriptor that was checked, so a file swapped in at the
    path meanwhile is never overwritten; the name is removed only if it still names that
    inode. On copy-on-write filesystems and SSDs the old blocks may survive the overwrite
    (SECURITY.md says so); it still removes the file from every ordinary view and backup.
    """
    try:
        fd, st = _open_regular(path, os.O_RDWR)
    except NotAudio as e:
        raise ShredRefused(str(e)) from None
    except OSError as e:
        raise ShredRefused(e.strerror or str(e)) from None
    try:
        if not expected.same_version(st):
            raise ShredRefused(
                "the file was changed or replaced since it was encrypted (size, mtime or inode "
                "differ): it may hold audio that was never imported"
            )
        if _hash_fd(fd) != expected.sha256:
            raise ShredRefused("the file's content differs from what was encrypted")
        block = bytes(1 << 20)
        offset = 0
        while offset < expected.size:
            offset += os.pwrite(fd, block[: min(expected.size - offset, len(block))], offset)
        os.fsync(fd)
        grew = os.fstat(fd).st_size > expected.size
    finally:
        os.close(fd)
    if grew:
        raise ShredRefused(
            f"the file grew while it was overwritten: its first {expected.size} bytes (the "
            "encrypted part) are overwritten, the rest is left in place"
        )
    now = path.lstat()
    if (now.st_dev, now.st_ino) == (expected.device, expected.inode):
        path.unlink()
        fsync_dir(path.parent)


class LegacyImporter:
    def __init__(
        self,
        store: Store,
        index: Index,
        recipients: list[age.AnyRecipient],
        actor: str,
        signer: Any = None,
        default_retention_days: int | None = None,
        key_per_recording: bool = False,
        node: str = "",
        tenant: str | None = None,
    ) -> None:
        if not recipients:
            raise ValueError("no recipient configured: nothing can be imported")
        self.store, self.index, self.recipients, self.actor = store, index, recipients, actor
        self.signer = signer
        self.retention_days = default_retention_days
        self.key_per_recording = key_per_recording  # recording/keys.py
        self.node = node  # liveness.py: whose interrupted imports this one may clean
        self.tenant = tenant  # whose recipients `recipients` are (config/tenants.py)
        self.shred_refused: list[tuple[str, str]] = []
        self.shredded = 0

    def clean_interrupted(self) -> int:
        """Partial imports of an earlier run whose process died: their ciphertext is removed
        (their originals were never shredded: that happens only after a complete import)."""
        rows = [
            r
            for r in self.index.list_recordings(RecordingStatus.RECORDING)
            if r.origin == "legacy" and writer_is_gone(r.writer, self.node)
        ]
        for row in rows:
            self._forget_interrupted(row)
        return len(rows)

    def _read_source(self, path: Path) -> tuple[int, SourceFile, bytes]:
        fd, st = _open_regular(path, os.O_RDONLY)
        try:
            digest = _hash_fd(fd)
            head = os.pread(fd, 1 << 16, 0)
            if not SourceFile(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, digest).same_version(
                os.fstat(fd)
            ):
                raise ChangedWhileReading("changed while being read (still being written?): run again later")
        except BaseException:
            os.close(fd)
            raise
        return fd, SourceFile(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, digest), head

    def import_file(self, path: Path, *, shred_original: bool = False) -> tuple[str, str]:
        """Import one file; returns ("imported" or "skipped", the recording's id). Raises
        NotAudio (with the reason it was refused) or OSError. With `shred_original` the original is shredded only if it is
        still exactly what was encrypted; a refusal is recorded in `shred_refused`."""
        fd, src, head = self._read_source(path)
        try:
            earlier = self.index.find_recording_by_fingerprint(src.fingerprint)
            if earlier is not None and earlier.status == RecordingStatus.COMPLETE:
                if shred_original:
                    self._shred(path, src, earlier.id)
                return "skipped", earlier.id
            if (
                earlier is not None
                and earlier.status == RecordingStatus.RECORDING
                and earlier.writer != process_token(node=self.node)
                and not writer_is_gone(earlier.writer, self.node)
            ):
                raise NotAudio("being imported by another running import-legacy")
            rec_id = self._encrypt(fd, path, src, head, earlier)
        finally:
            os.close(fd)
        if shred_original:
            # Only now: the ciphertext is fsynced chunk by chunk and the index row is committed.
            self._shred(path, src, rec_id)
        return "imported", rec_id

    def _encrypt(
        self, fd: int, path: Path, src: SourceFile, head: bytes, earlier: RecordingRow | None
    ) -> str:
        media_type, duration = sniff(head, src.size)
        if media_type == "audio/mpeg":
            duration = probe_duration(path)
        if earlier is not None:
            self._forget_interrupted(earlier)
        recipients, key_enc = self.recipients, None
        if self.key_per_recording:
            own, key_enc = keys.new_recording_key(self.recipients)
            recipients = [own]
        writer = self.store.create()
        rec_id = new_id()
        started = datetime.fromtimestamp(src.mtime_ns / 1e9, UTC).isoformat(timespec="seconds")
        self.index.add_recording(
            RecordingRow(
                id=rec_id,
                object_name=writer.name,
                started_at=started.replace("+00:00", "Z"),
                origin="legacy",
                media_type=media_type,
                source_enc=pii.seal_value(str(path.resolve()), self.recipients),
                source_fingerprint=src.fingerprint,
                writer=process_token(node=self.node),
                retention_days=self.retention_days,
                key_enc=key_enc,
                tenant=self.tenant,
            )
        )
        sha, content = hashlib.sha256(), hashlib.sha256()

        def sink(data: bytes) -> None:
            writer.append(data)
            sha.update(data)

        w = age.AgeWriter(recipients, sink)
        offset = 0
        while block := os.pread(fd, 1 << 20, offset):
            w.write(block)
            content.update(block)
            offset += len(block)
        if content.hexdigest() != src.sha256 or not src.same_version(os.fstat(fd)):
            # Not what was fingerprinted: drop the ciphertext, leave the original alone.
            w.wipe()
            writer.close()
            self._forget_interrupted(self.index.get_recording(rec_id), reason="changed while importing")
            raise ChangedWhileReading("changed while being imported (still being written?): run again later")
        w.close()
        writer.close()
        self.index.update_recording(
            rec_id,
            status=RecordingStatus.COMPLETE,
            finished_at=utcnow(),
            bytes=w.ciphertext_bytes,
            sha256=sha.hexdigest(),
            duration_s=duration,
        )
        self.index.append_audit(
            self.actor,
            "recording.imported",
            rec_id,
            {"media_type": media_type, "bytes": w.ciphertext_bytes, "source_fingerprint": src.fingerprint},
        )
        if self.signer is not None:
            self.index.update_recording(
                rec_id, signature=signing.sign(self.signer, self.index.get_recording(rec_id), None)
            )
        return rec_id

    def _shred(self, path: Path, src: SourceFile, rec_id: str) -> None:
        try:
            shred_exact(path, src)
        except ShredRefused as e:
            self.shred_refused.append((str(path), str(e)))
            self.index.append_audit(
                self.actor,
                "legacy.shred_refused",
                rec_id,
                {"source_fingerprint": src.fingerprint, "reason": str(e)},
            )
            return
        self.shredded += 1
        self.index.append_audit(
            self.actor,
            "legacy.original_shredded",
            rec_id,
            {
                "source_fingerprint": src.fingerprint,
                "bytes": src.size,
                "device": src.device,
                "inode": src.inode,
                "mtime_ns": src.mtime_ns,
                "content_sha256": src.sha256,
            },
        )

    def _forget_interrupted(
        self, row: RecordingRow, reason: str = "interrupted import, imported again"
    ) -> None:
        """Drop a partial import's ciphertext so the file is imported whole."""
        try:
            self.store.delete(row.object_name)
        except ObjectNotFound:
            pass
        self.index.update_recording(
            row.id, status=RecordingStatus.DELETED, source_fingerprint=None, bytes=0, error=reason
        )
        self.index.append_audit(self.actor, "recording.deleted", row.id, {"reason": reason})


def keep(
    gw: Gateway, rec_ids: list[str], actor: str, *, retention_days: int | None, hold: str | None
) -> list[str]:
    """Apply an import's --retention-days and --hold to what it imported or found imported;
    the recordings newly held."""
    if not rec_ids:
        return []
    if retention_days is not None:
        for rec_id in rec_ids:
            gw.index.update_recording(rec_id, retention_days=retention_days)
        gw.index.append_audit(
            actor,
            "legacy.retention_set",
            "-",
            {"recordings": len(rec_ids), "retention_days": retention_days},
        )
    if hold:
        return holds.place_new(gw, "legacy-import", rec_ids, hold, actor)
    return []
