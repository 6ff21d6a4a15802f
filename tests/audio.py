"""Test audio: tones, a recognisable canary pattern, and a dominant-frequency probe."""

from __future__ import annotations

import numpy as np


def tone(freq: float, seconds: float, rate: int = 8000, amplitude: float = 0.5) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype("<i2").tobytes()


def dominant_frequency(pcm: bytes | np.ndarray, rate: int = 8000) -> float:
    samples = np.frombuffer(pcm, dtype="<i2") if isinstance(pcm, bytes) else pcm
    spectrum = np.abs(np.fft.rfft(samples.astype(float) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def split_channels(interleaved: bytes) -> tuple[np.ndarray, np.ndarray]:
    s = np.frombuffer(interleaved, dtype="<i2")
    return s[0::2], s[1::2]


def frames(pcm: bytes, frame_bytes: int = 320) -> list[bytes]:
    return [pcm[i : i + frame_bytes] for i in range(0, len(pcm), frame_bytes)]


FRAME = 160  # samples in 20 ms at 8 kHz


def frames_present(pcm: np.ndarray) -> tuple[int, int]:
    """(present, total) 20 ms frames of one direction's samples: a frame is present unless it
    is all zeros (sipp's speech has no silent frame; the recorder fills what it lost with
    silence to keep the channels aligned)."""
    n = len(pcm) // FRAME
    framed = pcm[: n * FRAME].reshape(n, FRAME)
    return int(np.count_nonzero(np.any(framed != 0, axis=1))), n
