"""Recording-notice prompts: loaded once with pydub, converted to the bridge's clock rate, and
kept in memory as 16-bit mono PCM with the SHA-256 that consent receipts cite.
"""

from __future__ import annotations

import hashlib
import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # pydub imports audioop (deprecated in 3.11)
    from pydub import AudioSegment

REQUIRED = (
    "notice-opt-out",
    "notice-opt-in",
    "confirm-declined",
    "confirm-granted",
    "confirm-withdrawn",
    "unavailable",
)


class PromptError(Exception):
    """Prompts missing, unreadable or incomplete: the worker refuses to start."""


@dataclass(frozen=True)
class Prompt:
    id: str
    language: str
    version: str
    transcript: str
    pcm: bytes  # 16-bit little-endian mono at `rate`
    rate: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.pcm).hexdigest()

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / 2 / self.rate


class PromptSet:
    def __init__(self, prompts: dict[tuple[str, str], Prompt]) -> None:
        self._prompts = prompts

    def get(self, prompt_id: str, language: str) -> Prompt:
        try:
            return self._prompts[(prompt_id, language)]
        except KeyError:
            raise PromptError(f"no prompt {prompt_id!r} in language {language!r}") from None

    def languages(self) -> set[str]:
        return {lang for _, lang in self._prompts}


def load(directory: Path, rate: int, languages: set[str] | None = None) -> PromptSet:
    """Load every prompt of `directory`/manifest.toml; each language used must be complete."""
    manifest = directory / "manifest.toml"
    try:
        entries = tomllib.loads(manifest.read_text(encoding="utf-8")).get("prompt", [])
    except FileNotFoundError:
        raise PromptError(f"prompt manifest {manifest} not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise PromptError(f"prompt manifest {manifest} unreadable: {e}") from None
    prompts: dict[tuple[str, str], Prompt] = {}
    for i, entry in enumerate(entries):
        try:
            pid, lang, version, file = entry["id"], entry["language"], str(entry["version"]), entry["file"]
        except (KeyError, TypeError):
            raise PromptError(f"{manifest}: prompt #{i + 1} needs id, language, version and file") from None
        path = directory / file
        try:
            seg = AudioSegment.from_file(path, format=path.suffix.lstrip(".") or "wav")
        except FileNotFoundError:
            raise PromptError(f"prompt {pid} ({lang}): file {path} not found") from None
        except Exception as e2:  # pydub raises several types for undecodable audio
            raise PromptError(f"prompt {pid} ({lang}): cannot decode {path}: {e2}") from None
        seg = seg.set_channels(1).set_sample_width(2).set_frame_rate(rate)
        if len(seg.raw_data) == 0:
            raise PromptError(f"prompt {pid} ({lang}): {path} holds no audio")
        prompts[(pid, lang)] = Prompt(pid, lang, version, entry.get("transcript", ""), seg.raw_data, rate)
    for lang in languages or {lang for _, lang in prompts}:
        missing = [pid for pid in REQUIRED if (pid, lang) not in prompts]
        if missing:
            raise PromptError(f"{manifest}: language {lang!r} lacks prompts {', '.join(missing)}")
    return PromptSet(prompts)
