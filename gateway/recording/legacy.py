"""Migrating a plaintext archive (WAV/MP3 trees like medicall/2016/01/01/) into the store.

Each original is encrypted byte for byte: no transcoding, so what was recorded is exactly what
an export gives back. The call time is the file's mtime; the original path is kept only
encrypted, with a keyed hash so that an interrupted import resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import age
from ..governance import signing
from ..storage import index as ix
from ..storage import pii
from ..storage.index import Index, RecordingRow
from ..storage.liveness import process_token
from ..storage.spool import fsync_dir
from ..storage.store import ObjectNotFound, Store
from . import wav
from .service import new_id

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
        tag = 10 + ((head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F))
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
    out = subprocess.run([ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                          str(path)], capture_output=True, text=True, timeout=60)
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


def shred(path: Path) -> None:
    """Overwrite in place, fsync, unlink, fsync the directory.

    On copy-on-write filesystems and SSDs the old blocks may survive the overwrite; SECURITY.md
    says so. It still removes the file from every ordinary view and backup.
    """
    size = path.stat().st_size
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        block = bytes(1 << 20)
        left = size
        while left > 0:
            left -= os.write(fd, block[: min(left, len(block))])
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
    fsync_dir(path.parent)


class LegacyImporter:
    def __init__(self, store: Store, index: Index, recipients: list[age.Recipient], secret: bytes,
                 actor: str, signer: Any = None, default_retention_days: int | None = None) -> None:
        if not recipients:
            raise ValueError("no recipient configured: nothing can be imported")
        self.store, self.index, self.recipients, self.secret, self.actor = store, index, recipients, secret, actor
        self.signer = signer
        self.retention_days = default_retention_days

    def source_hash(self, path: Path) -> str:
        return pii.lookup_hash(self.secret, "legacy-path:" + str(path.resolve()))

    def import_file(self, path: Path, *, shred_original: bool = False) -> str:
        """Import one file; returns "imported" or "skipped". Raises NotAudio or OSError."""
        source_hash = self.source_hash(path)
        earlier = self.index.find_recording_by_source(source_hash)
        if earlier is not None and earlier.status == ix.COMPLETE:
            if shred_original and path.exists():
                shred(path)
                self.index.append_audit(self.actor, "legacy.original_shredded", earlier.id, {})
            return "skipped"
        st = path.stat()
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        media_type, duration = sniff(head, st.st_size)
        if media_type == "audio/mpeg":
            duration = probe_duration(path)
        if earlier is not None:
            self._forget_interrupted(earlier)
        writer = self.store.create()
        rec_id = new_id()
        started = datetime.fromtimestamp(st.st_mtime, UTC).isoformat(timespec="seconds")
        self.index.add_recording(RecordingRow(
            id=rec_id, object_name=writer.name, started_at=started.replace("+00:00", "Z"), origin="legacy",
            media_type=media_type, source_enc=pii.seal_value(str(path.resolve()), self.recipients),
            source_hash=source_hash, writer=process_token(), retention_days=self.retention_days))
        sha = hashlib.sha256()

        def sink(data: bytes) -> None:
            writer.append(data)
            sha.update(data)

        w = age.AgeWriter(self.recipients, sink)
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                w.write(block)
        w.close()
        writer.close()
        self.index.update_recording(rec_id, status=ix.COMPLETE, finished_at=ix.utcnow(),
                                    bytes=w.ciphertext_bytes, sha256=sha.hexdigest(), duration_s=duration)
        self.index.append_audit(self.actor, "recording.imported", rec_id,
                                {"media_type": media_type, "bytes": w.ciphertext_bytes})
        if self.signer is not None:
            self.index.update_recording(rec_id, signature=signing.sign(self.signer, self.index.get_recording(rec_id), None))
        if shred_original:
            # Only now: the ciphertext is fsynced chunk by chunk and the index row is committed.
            shred(path)
            self.index.append_audit(self.actor, "legacy.original_shredded", rec_id, {})
        return "imported"

    def _forget_interrupted(self, row: RecordingRow) -> None:
        """An earlier run died mid-file: drop its partial ciphertext so the file is imported whole."""
        try:
            self.store.delete(row.object_name)
        except ObjectNotFound:
            pass
        self.index.update_recording(row.id, status=ix.DELETED, source_hash=None, bytes=0,
                                    error="interrupted import, imported again")
        self.index.append_audit(self.actor, "recording.deleted", row.id, {"reason": "interrupted import retried"})
