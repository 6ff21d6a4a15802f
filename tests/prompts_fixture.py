"""A short prompt set for call tests: tones instead of speech, so calls take seconds. Each
language's prompts are their own tones, so a test can tell from a recording or a receipt which
language a caller heard."""

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
    "menu": 0.5,
    "whisper-recorded": 0.5,
    "whisper-not-recorded": 0.5,
    "whisper-unavailable": 0.5,
}
MENU_KEYS = {"sv": "2", "en": "3", "fi": "4"}
LANGUAGE_FREQ = {"en": 0, "sv": 400, "fi": 800}  # added to each prompt's tone


def write_prompts(directory: Path, freq: float = 300.0, languages: tuple[str, ...] = ("en",)) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for lang in languages:
        for i, (pid, seconds) in enumerate(LENGTHS.items()):
            pcm = tone(freq + LANGUAGE_FREQ.get(lang, 0) + 20 * i, seconds, 8000)
            name = f"{pid}.wav" if lang == "en" else f"{lang}-{pid}.wav"
            (directory / name).write_bytes(wav.header(8000, 1, data_size=len(pcm)) + pcm)
            key = f'key = "{MENU_KEYS[lang]}"\n' if pid == "menu" else ""
            lines.append(
                f'[[prompt]]\nid = "{pid}"\nlanguage = "{lang}"\nversion = "test"\nfile = "{name}"\n'
                f'{key}transcript = "test tone"\n'
            )
    (directory / "manifest.toml").write_text("\n".join(lines))
    return directory
