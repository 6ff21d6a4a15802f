"""Recording-notice prompts: loaded once with pydub, converted to the bridge's clock rate, and
kept in memory as 16-bit mono PCM with the SHA-256 that consent receipts cite.
"""

from __future__ import annotations

import hashlib
import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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
MENU = "menu"  # one option of the language menu, in its own language, with the key it names
WHISPERS = ("whisper-recorded", "whisper-not-recorded", "whisper-unavailable")  # to the helpline


if TYPE_CHECKING:
    from ..config import Config


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
    key: str = ""  # a menu option: the key it announces

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

    def complete_languages(self) -> set[str]:
        """The languages that have every required prompt."""
        return {lang for lang in self.languages() if all(self.has(pid, lang) for pid in REQUIRED)}

    def has(self, prompt_id: str, language: str) -> bool:
        return (prompt_id, language) in self._prompts

    def menu_keys(self, languages: list[str]) -> dict[str, str]:
        """Key -> language for a menu offering `languages`, from their `menu` prompts."""
        return {self.get(MENU, lang).key: lang for lang in languages}


# Prompt sets already decoded in this process, by (directory, rate), with the fingerprint of
# the files they came from. A node's fork server loads them once, and its forked workers share
# the PCM instead of each decoding (and holding) its own copy.
_decoded: dict[tuple[Path, int], tuple[str, dict[tuple[str, str], Prompt]]] = {}


def _fingerprint(directory: Path) -> str:
    """What the prompt files are now: the manifest's bytes, every file's size and mtime."""
    h = hashlib.sha256()
    try:
        h.update((directory / "manifest.toml").read_bytes())
        for f in sorted(directory.iterdir()):
            st = f.stat()
            h.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    except OSError:
        return ""
    return h.hexdigest()


def load(directory: Path, rate: int, languages: set[str] | None = None) -> PromptSet:
    """Load every prompt of `directory`/manifest.toml; each language used must be complete."""
    fingerprint = _fingerprint(directory)
    cached = _decoded.get((directory, rate))
    if fingerprint and cached is not None and cached[0] == fingerprint:
        prompts = cached[1]
    else:
        prompts = _decode(directory, rate)
        if fingerprint:
            _decoded[(directory, rate)] = (fingerprint, prompts)
    for lang in {lang for _, lang in prompts} if languages is None else languages:
        missing = [pid for pid in REQUIRED if (pid, lang) not in prompts]
        if missing:
            raise PromptError(
                f"{directory / 'manifest.toml'}: language {lang!r} lacks prompts {', '.join(missing)}"
            )
    return PromptSet(prompts)


def _decode(directory: Path, rate: int) -> dict[tuple[str, str], Prompt]:
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
        key = str(entry.get("key", ""))
        if pid == MENU and (len(key) != 1 or key not in "0123456789*#"):
            raise PromptError(f'{manifest}: the {lang} menu prompt needs the key it announces (key = "2")')
        prompts[(pid, lang)] = Prompt(
            pid, lang, version, entry.get("transcript", ""), seg.raw_data, rate, key
        )
    return prompts


def check_route(
    prompts: PromptSet,
    *,
    where: str,
    language: str,
    languages: list[str],
    helpline_language: str,
    whisper: bool,
    reserved_keys: dict[str, str],
) -> None:
    """What one route will play exists, and its menu keys are usable: each language offered has
    all the prompts, a menu option each, keys distinct from each other and from the consent
    keys (`reserved_keys`: key -> what it does). PromptError says what is wrong, and where."""
    for lang in {language, *languages}:
        missing = [pid for pid in REQUIRED if not prompts.has(pid, lang)]
        if missing:
            raise PromptError(f"{where}: language {lang!r} lacks prompts {', '.join(missing)}")
    if languages:
        lacking = [lang for lang in languages if not prompts.has(MENU, lang)]
        if lacking:
            raise PromptError(f"{where}: the menu offers {', '.join(lacking)}, which has no {MENU!r} prompt")
        keys = [prompts.get(MENU, lang).key for lang in languages]
        for key, lang in zip(keys, languages, strict=True):
            if keys.count(key) > 1:
                raise PromptError(f"{where}: two menu options announce key {key}")
            if key in reserved_keys:
                raise PromptError(
                    f"{where}: the {lang} menu option announces key {key}, which is the {reserved_keys[key]}"
                )
    if whisper:
        missing = [pid for pid in WHISPERS if not prompts.has(pid, helpline_language)]
        if missing:
            raise PromptError(
                f"{where}: whispering to the helpline in {helpline_language!r} needs {', '.join(missing)}"
            )


def load_for_routes(config: Config) -> dict[Path, PromptSet]:
    """Every route's prompt set, loaded once per directory and checked for what the route
    plays (check_route): the worker and the node's preflight refuse to start otherwise."""
    sets: dict[Path, PromptSet] = {}
    rate = config.recording.sample_rate
    reserved = {config.consent.decline_key: "decline key", config.consent.accept_key: "accept key"}
    for route in config.routes:
        if route.prompts_dir not in sets:
            sets[route.prompts_dir] = load(route.prompts_dir, rate, set())
        check_route(
            sets[route.prompts_dir],
            where=f"route {route.number!r}" if route.number != "*" else "the default route",
            language=route.language,
            languages=list(route.languages),
            helpline_language=route.helpline_language,
            whisper=route.whisper,
            reserved_keys=reserved,
        )
    return sets
