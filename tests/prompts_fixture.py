"""A short prompt set for call tests: tones instead of speech, so calls take seconds."""

from __future__ import annotations

from pathlib import Path

from gateway.recording import wav
from gateway.telephony.media import tone

LENGTHS = {
    "notice-opt-out": 1.5,
    "notice-opt-in": 1.5,
    "confirm-declined": 0.4,
    "confirm-granted": 0.4,
    "confirm-withdrawn": 0.4,
    "unavailable": 0.6,
}


def write_prompts(directory: Path, freq: float = 300.0) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (pid, seconds) in enumerate(LENGTHS.items()):
        pcm = tone(freq + 20 * i, seconds, 8000)
        (directory / f"{pid}.wav").write_bytes(wav.header(8000, 1, data_size=len(pcm)) + pcm)
        lines.append(
            f'[[prompt]]\nid = "{pid}"\nlanguage = "en"\nversion = "test"\nfile = "{pid}.wav"\n'
            f'transcript = "test tone"\n'
        )
    (directory / "manifest.toml").write_text("\n".join(lines))
    return directory
