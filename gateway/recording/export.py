"""Decrypting a stored recording for the operator, streaming, with no plaintext temp file.

WAV goes straight to the destination; for a regular file the streaming sizes are patched to
the real ones afterwards. MP3 and Opus are encoded by ffmpeg reading from and writing to
pipes: the only plaintext file that ever exists is the one the operator asked for.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from . import wav

FFMPEG_FORMATS = {
    ".mp3": ["-f", "mp3", "-codec:a", "libmp3lame", "-q:a", "4"],
    ".opus": ["-f", "opus", "-codec:a", "libopus", "-b:a", "32k"],
    ".ogg": ["-f", "ogg", "-codec:a", "libopus", "-b:a", "32k"],
}
MEDIA_EXTENSIONS = {"audio/wav": ".wav", "audio/mpeg": ".mp3"}


class ExportError(Exception):
    pass


@dataclass
class ExportResult:
    bytes_out: int
    format: str


def output_format(out: str, media_type: str) -> str:
    if out == "-":
        return MEDIA_EXTENSIONS.get(media_type, ".wav")
    ext = Path(out).suffix.lower()
    if ext not in (".wav", ".mp3", *FFMPEG_FORMATS):
        raise ExportError(
            f"cannot export to {ext or 'a file without extension'}: use .wav, .mp3, .opus or .ogg"
        )
    return ext


def open_destination(out: str, force: bool) -> BinaryIO:
    """A new 0600 file for plaintext (or stdout for "-"). Never through a symbolic link; with
    `force` an existing file is removed first, so that the new one is created 0600 whatever the
    old one's mode was (a file others could read stays readable if it is merely truncated)."""
    if out == "-":
        return os.fdopen(os.dup(1), "wb")
    if force:
        try:
            st = os.lstat(out)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISREG(st.st_mode):
                raise ExportError(f"{out} exists and is not a regular file: not overwritten")
            os.unlink(out)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise ExportError(f"{out} exists (use --force to overwrite)") from None
    except OSError as e:
        raise ExportError(f"cannot write {out}: {e.strerror}") from None
    return os.fdopen(fd, "wb")


def _pipe_through_ffmpeg(chunks: Iterator[bytes], args: list[str], dest: BinaryIO) -> int:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise ExportError("ffmpeg is not installed: export to .wav, or install ffmpeg")
    proc = subprocess.Popen(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-i", "pipe:0", *args, "pipe:1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    feed_error: list[BaseException] = []

    def feed() -> None:
        assert proc.stdin is not None
        try:
            for chunk in chunks:
                proc.stdin.write(chunk)
        except BrokenPipeError:
            pass
        except BaseException as e:  # decryption errors surface in the caller
            feed_error.append(e)
        finally:
            proc.stdin.close()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    total = 0
    assert proc.stdout is not None
    stdout = proc.stdout
    for block in iter(lambda: stdout.read(1 << 16), b""):
        dest.write(block)
        total += len(block)
    feeder.join()
    stderr = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
    proc.wait()
    if feed_error:
        raise feed_error[0]
    if proc.returncode != 0:
        raise ExportError(f"ffmpeg failed: {stderr.splitlines()[-1] if stderr else proc.returncode}")
    return total


def write_export(chunks: Iterator[bytes], media_type: str, fmt: str, dest: BinaryIO) -> ExportResult:
    """Write decrypted `chunks` of a `media_type` recording to `dest` as `fmt`."""
    if MEDIA_EXTENSIONS.get(media_type) == fmt:
        total = 0
        head = b""
        for chunk in chunks:
            if not head:
                head = chunk[:4096]
            dest.write(chunk)
            total += len(chunk)
        if fmt == ".wav":
            _patch_wav_sizes(dest, total, head)
        return ExportResult(total, fmt)
    if fmt == ".wav":
        args = ["-f", "wav", "-codec:a", "pcm_s16le"]
    elif fmt == ".mp3" or fmt in FFMPEG_FORMATS:
        args = FFMPEG_FORMATS[fmt]
    else:
        raise ExportError(f"cannot convert {media_type} to {fmt}")
    return ExportResult(_pipe_through_ffmpeg(chunks, args, dest), fmt)


def _patch_wav_sizes(dest: BinaryIO, total: int, head: bytes) -> None:
    """Replace the streaming sizes with real ones when the destination can seek."""
    try:
        info = wav.parse_header(head)
    except wav.WavError:
        return
    try:
        if not dest.seekable():
            return
        dest.seek(4)
        dest.write(min(total - 8, wav.STREAMING_SIZE).to_bytes(4, "little"))
        dest.seek(info.data_offset - 4)
        dest.write(min(total - info.data_offset, wav.STREAMING_SIZE).to_bytes(4, "little"))
        dest.seek(0, os.SEEK_END)
    except OSError:
        return
