"""What the caller hears from the gateway: one prompt (or tone) at a time from the call's media
slot, a callback when it has played out, and a record of every prompt the caller heard and
how much of it, which the consent receipt carries."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable

import pjsua2 as pj

from ..consent import receipt as rc
from .media import PcmSource
from .prompts import Prompt, PromptSet


def played(prompt: Prompt, heard_bytes: int) -> rc.PromptPlayed:
    """What a receipt says of a prompt the caller heard `heard_bytes` of."""
    pcm = prompt.pcm[: max(0, min(heard_bytes, len(prompt.pcm)))]
    return rc.PromptPlayed(
        prompt.id,
        prompt.version,
        prompt.language,
        prompt.sha256,
        int(len(pcm) / 2 / prompt.rate * 1000),
        hashlib.sha256(pcm).hexdigest(),
    )


class PromptPlayer:
    def __init__(
        self, source: PcmSource, prompts: PromptSet, caller_audio: Callable[[], pj.AudioMedia | None]
    ) -> None:
        self.source: PcmSource | None = source
        self.prompts = prompts
        self._caller_audio = caller_audio  # the caller leg's audio, once it has media
        self.heard: list[rc.PromptPlayed] = []  # every prompt the caller heard, in order
        self.clip: Prompt | None = None  # the prompt playing now, if any
        self._then: Callable[[], None] | None = None
        self._waiting = asyncio.Event()

    def play(
        self,
        prompt_id: str | None,
        then: Callable[[], None] | None,
        *,
        language: str,
        pcm: bytes | None = None,
        loop: bool = False,
    ) -> None:
        """Play a prompt in `language` (or raw PCM) to the caller; `then` once it has played out."""
        assert self.source is not None
        self._close_clip()
        if prompt_id is not None:
            self.clip = self.prompts.get(prompt_id, language)
            pcm = self.clip.pcm
        self.source.play(pcm or b"", prompt_id or "tone", loop)
        self._then = then
        if then is not None:
            self._waiting.set()  # the call's poll watches for this clip's end
        self.connect()

    def connect(self) -> None:
        """Send what plays to the caller (again, after its media was rebuilt)."""
        audio = self._caller_audio()
        if audio is not None and self.source is not None:
            self.source.startTransmit(audio)

    def stop(self) -> None:
        self._then = None
        self._close_clip()
        if self.source is None:
            return
        self.source.stop()
        audio = self._caller_audio()
        if audio is not None:
            try:
                self.source.stopTransmit(audio)
            except pj.Error:
                pass

    def _close_clip(self) -> None:
        """Note how much of the prompt playing now the caller heard, before anything replaces it."""
        clip, self.clip = self.clip, None
        if clip is None or self.source is None:
            return
        heard = self.source.played_bytes if self.source.clip_id == clip.id else len(clip.pcm)
        self.heard.append(played(clip, heard))

    def heard_so_far(self) -> list[rc.PromptPlayed]:
        """Every prompt heard, the one playing now as far as it went (a receipt written
        mid-prompt)."""
        if self.clip is None:
            return list(self.heard)
        src = self.source
        now = src.played_bytes if src is not None and src.clip_id == self.clip.id else 0
        return [*self.heard, played(self.clip, now)]

    def progress_of(self, prompt_id: str) -> int | None:
        """Bytes of `prompt_id` played so far, if it is the clip playing now."""
        if self.source is not None and self.source.clip_id == prompt_id:
            return self.source.played_bytes
        return None

    async def wait(self, timeout_s: float) -> None:
        """Until a clip with something to do at its end may have ended: 20 ms while one plays,
        else until one starts or `timeout_s` passes (a bridged call wakes rarely)."""
        if self._then is None:
            self._waiting.clear()
            try:
                await asyncio.wait_for(self._waiting.wait(), max(0.0, timeout_s))
            except TimeoutError:
                pass
        else:
            await asyncio.sleep(0.02)

    def finished(self) -> Callable[[], None] | None:
        """The callback of the clip that has just played out (once), else None."""
        if self.source is not None and self.source.finished and self._then is not None:
            then, self._then = self._then, None
            return then
        return None

    def release(self) -> None:
        """The call is gone: its media slot goes back to the worker, and no path from here to
        the slot's ports or to the call remains (ports that outlive pjsua's conference bridge
        abort the process at exit)."""
        self.source = None
        self.clip = None
        self._then = None
        self._caller_audio = _no_audio


def _no_audio() -> None:
    return None
