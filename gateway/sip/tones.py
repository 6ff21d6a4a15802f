"""Keypad digits sent as audio tones (in-band DTMF), pure: a detector over the caller's audio.

The detector runs the Goertzel algorithm over blocks of 12.75 ms of the caller's 8 or
16 kHz audio and accepts a digit only when, in two blocks in a row:
- one row tone and one column tone each stand at least 6 dB above the other tones of their
  group (a key press is exactly two tones);
- each tone is loud enough (about -35 dBFS or more);
- the twist (column tone against row tone) lies within -8 dB and +4 dB, as telephone networks
  allow (ITU-T Q.24);
- the two tones carry at least 75 % of the block's energy, and neither has a second harmonic
  within 15 dB of it: speech and music spread their energy over many frequencies and carry
  overtones, a keypad's tones are pure.
A digit is reported once, when it starts; the same key again needs a gap of two blocks (25.5 ms
at 8 kHz) without it: a press broken by one bad block still counts once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .dtmf import COLS, KEYS, ROWS

MIN_AMPLITUDE = 32768 * 10 ** (-35 / 20)  # each tone's peak amplitude, in 16-bit samples
MAX_TWIST_DB, MAX_REVERSE_TWIST_DB = 4.0, 8.0
TWIST_LOW, TWIST_HIGH = 10 ** (-MAX_REVERSE_TWIST_DB / 20), 10 ** (MAX_TWIST_DB / 20)  # column / row
GROUP_MARGIN = 10 ** (6 / 10)  # the winning tone's power over the next one in its group
MIN_TONE_SHARE = 0.75  # of the block's energy, in the two tones together
MAX_HARMONIC = 10 ** (-15 / 10)  # each tone's second harmonic, against the tone


@dataclass
class ToneDetector:
    rate: int
    block: int = 0
    _buf: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    _tones: np.ndarray = field(init=False)
    _harmonics: np.ndarray = field(init=False)
    _near: list[list[bool]] = field(init=False)
    _candidate: str = ""
    _held: str = ""  # the key reported last, until two blocks without it
    _gap: int = 0
    _samples_seen: int = 0

    def __post_init__(self) -> None:
        if self.rate not in (8000, 16000):
            raise ValueError("in-band DTMF detection takes 8000 or 16000 Hz audio")
        self.block = self.block or round(self.rate * 0.01275)  # 102 samples at 8 kHz
        n = np.arange(self.block)
        # One row of cosines and one of sines per frequency: the Goertzel sums as one product.
        tones = 2 * np.pi * np.outer(np.array(ROWS + COLS), n) / self.rate
        self._tones = np.concatenate([np.cos(tones), np.sin(tones)])
        overtones = 2 * tones  # the second harmonics, checked only for a block that passed
        self._harmonics = np.concatenate([np.cos(overtones), np.sin(overtones)])
        self._near = [[abs(2 * f - g) < 1.5 * self.rate / self.block for g in COLS] for f in ROWS]

    def classify(self, x: np.ndarray) -> str:
        """The key one block holds, or "" (pure: no state)."""
        return self.classify_blocks(x.reshape(1, -1))[0]

    def classify_blocks(self, blocks: np.ndarray) -> list[str]:
        """The key each row of `blocks` (one block of samples each) holds, or "". One matrix
        product for the eight tones of every block, then the checks on the tones' powers for
        all blocks at once (speech, music and silence fail them); only a block that passes them
        all gets its overtones checked, one by one."""
        n = self.block
        keys = [""] * len(blocks)
        energy = np.einsum("ij,ij->i", blocks, blocks)
        proj = blocks @ self._tones.T
        power = proj[:, :8] ** 2 + proj[:, 8:] ** 2
        rows, cols = np.sort(power[:, :4], axis=1), np.sort(power[:, 4:], axis=1)
        pr, pc = rows[:, -1], cols[:, -1]
        # A sinusoid of amplitude A gives |X|^2 = (A n / 2)^2 and carries energy A^2 n / 2.
        amp_r, amp_c = 2 * np.sqrt(pr) / n, 2 * np.sqrt(pc) / n
        passed = (
            (energy > 0.0)
            & (pr >= GROUP_MARGIN * rows[:, -2])  # one tone of each group stands out
            & (pc >= GROUP_MARGIN * cols[:, -2])
            & (amp_r >= MIN_AMPLITUDE)
            & (amp_c >= MIN_AMPLITUDE)
            & (amp_c >= TWIST_LOW * amp_r)  # the twist, column against row
            & (amp_c <= TWIST_HIGH * amp_r)
            & ((amp_r**2 + amp_c**2) * n / 2 >= MIN_TONE_SHARE * energy)
        )
        for i in np.flatnonzero(passed).tolist():
            r, c = int(np.argmax(power[i, :4])), int(np.argmax(power[i, 4:]))
            keys[i] = self._pure(blocks[i], r, c, float(pr[i]), float(pc[i]))
        return keys

    def _pure(self, x: np.ndarray, r: int, c: int, pr: float, pc: float) -> str:
        """Key (r, c) if its tones are pure. A keypad sends pure tones; a voice or an instrument
        at those pitches has overtones. A row tone's harmonic near the key's column tone cannot
        be told from it in a short block, and is not checked (the column's harmonic always is)."""
        hp = self._harmonics @ x
        harm = hp[:8] ** 2 + hp[8:] ** 2
        if harm[4 + c] > MAX_HARMONIC * pc:
            return ""
        if not self._near[r][c] and harm[r] > MAX_HARMONIC * pr:
            return ""
        return KEYS[r][c]

    def feed(self, pcm: bytes) -> list[tuple[str, float]]:
        """16-bit little-endian mono audio in; the keys that started in it out, each with the
        time of its start in seconds since the first sample fed."""
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        buf = np.concatenate([self._buf, samples]) if self._buf.size else samples
        count = buf.size // self.block
        used = count * self.block
        keys = self.classify_blocks(buf[:used].reshape(count, self.block)) if count else []
        found = []
        for i, key in enumerate(keys):
            t = (self._samples_seen + i * self.block) / self.rate
            if key and key == self._candidate and key != self._held:
                found.append((key, round(t - self.block / self.rate, 3)))  # it began a block ago
                self._held, self._gap = key, 0
            elif self._held and key != self._held:
                self._gap += 1  # two blocks without the key end its press
                if self._gap >= 2:
                    self._held = ""
            else:
                self._gap = 0
            self._candidate = key
        self._samples_seen += used
        self._buf = buf[used:].copy()
        return found
