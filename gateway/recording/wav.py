"""WAV (RIFF/WAVE) framing: the streaming header the recorder writes, and a strict parser.

The recorder cannot know the length of a call in advance, so it writes RIFF and data sizes of
0xFFFFFFFF, which players and ffmpeg read as "until the end of the stream". Export to a regular
file patches the real sizes in afterwards.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

STREAMING_SIZE = 0xFFFFFFFF
WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_ALAW = 0x0006
WAVE_FORMAT_MULAW = 0x0007
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
KNOWN_FORMATS = {
    WAVE_FORMAT_PCM,
    WAVE_FORMAT_IEEE_FLOAT,
    WAVE_FORMAT_ALAW,
    WAVE_FORMAT_MULAW,
    WAVE_FORMAT_EXTENSIBLE,
}
HEADER_SIZE = 44


class WavError(ValueError):
    """The bytes are not a well-formed WAV file."""


@dataclass(frozen=True)
class WavInfo:
    format_tag: int
    channels: int
    sample_rate: int
    bits_per_sample: int
    block_align: int
    data_offset: int
    data_size: int | None  # None: streaming (0xFFFFFFFF), read to the end

    def duration(self, total_size: int | None = None) -> float | None:
        """Seconds of audio; for a streaming file, `total_size` of the whole file is needed."""
        size = self.data_size
        if size is None:
            if total_size is None:
                return None
            size = total_size - self.data_offset
        byte_rate = self.sample_rate * self.block_align
        return size / byte_rate if byte_rate else None


def header(sample_rate: int, channels: int = 2, bits: int = 16, data_size: int | None = None) -> bytes:
    """A canonical 44-byte PCM header; `data_size=None` gives the streaming form."""
    block_align = channels * bits // 8
    if data_size is None:
        riff_size = data_size = STREAMING_SIZE
    else:
        riff_size = min(36 + data_size, STREAMING_SIZE)
        data_size = min(data_size, STREAMING_SIZE)
    return (
        b"RIFF"
        + struct.pack("<I", riff_size)
        + b"WAVE"
        + b"fmt "
        + struct.pack(
            "<IHHIIHH",
            16,
            WAVE_FORMAT_PCM,
            channels,
            sample_rate,
            sample_rate * block_align,
            block_align,
            bits,
        )
        + b"data"
        + struct.pack("<I", data_size)
    )


def parse_header(data: bytes, total_size: int | None = None) -> WavInfo:
    """Parse the header at the start of `data` (which must reach the data chunk)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError("not a RIFF/WAVE file")
    pos = 12
    fmt: tuple[int, int, int, int, int] | None = None
    while pos + 8 <= len(data):
        cid = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if cid == b"fmt ":
            if size < 16 or body + 16 > len(data):
                raise WavError("fmt chunk too short")
            tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag not in KNOWN_FORMATS:
                raise WavError(f"unsupported WAV format tag 0x{tag:04x}")
            if not (1 <= channels <= 16) or not (1000 <= rate <= 384000) or bits not in (8, 16, 24, 32):
                raise WavError("implausible fmt chunk")
            if block_align == 0:
                raise WavError("fmt chunk has block align 0")
            fmt = (tag, channels, rate, bits, block_align)
        elif cid == b"data":
            if fmt is None:
                raise WavError("data chunk before fmt chunk")
            data_size = None if size == STREAMING_SIZE else size
            if data_size is not None and total_size is not None and body + data_size > total_size:
                raise WavError("data chunk runs past the end of the file (truncated)")
            return WavInfo(*fmt[:4], fmt[4], body, data_size)
        pos = body + size + (size & 1)
    raise WavError("no data chunk")
