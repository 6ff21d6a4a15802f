from __future__ import annotations

import io
import wave

import pytest

from gateway.recording import wav


def test_streaming_header_fields() -> None:
    h = wav.header(8000, 2)
    assert len(h) == wav.HEADER_SIZE
    info = wav.parse_header(h)
    assert (info.channels, info.sample_rate, info.bits_per_sample, info.block_align) == (2, 8000, 16, 4)
    assert info.data_size is None and info.data_offset == 44
    assert info.duration(total_size=44 + 32000) == 1.0


def test_sized_header_is_read_by_the_wave_module() -> None:
    data = bytes(16000 * 4)
    blob = wav.header(16000, 2, data_size=len(data)) + data
    with wave.open(io.BytesIO(blob)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth(), w.getnframes()) == (2, 16000, 2, 16000)


def test_parses_files_written_by_the_wave_module_with_extra_chunks() -> None:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(800))
    raw = buf.getvalue()
    # A LIST chunk before data, as many recorders write.
    raw = raw[:36] + b"LIST" + (5).to_bytes(4, "little") + b"INFOx\x00" + raw[36:]
    info = wav.parse_header(raw, total_size=len(raw))
    assert info.channels == 1 and info.data_size == 800 and info.duration() == 0.05


@pytest.mark.parametrize(
    "blob,message",
    [
        (b"", "not a RIFF"),
        (b"RIFF\x00\x00\x00\x00WAVEdata\x00\x00\x00\x00", "before fmt"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + bytes(16), "unsupported"),
        (wav.header(8000, 1, data_size=1000) + bytes(10), "truncated"),
    ],
)
def test_malformed(blob: bytes, message: str) -> None:
    with pytest.raises(wav.WavError, match=message):
        wav.parse_header(blob, total_size=len(blob))
