"""Keypad digits, pure: which signalling a route listens to, and the rule that counts a digit
once when it arrives both ways. The detector for digits sent as audio tones is in `tones`
(it needs numpy; the supervisor and the configuration do not)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

# The keypad: each key is one row tone and one column tone (Hz).
ROWS = (697.0, 770.0, 852.0, 941.0)
COLS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = ("123A", "456B", "789C", "*0#D")


class DtmfMethod(enum.StrEnum):
    """Which signalling carries the caller's keys on a route."""

    AUTO = "auto"  # all of them, each key counted once
    RFC4733 = "rfc4733"  # telephone-event packets in the RTP stream
    INFO = "info"  # SIP INFO (application/dtmf-relay)
    INBAND = "inband"  # audio tones in the caller's stream

    def accepts(self, source: DtmfMethod) -> bool:
        return self is DtmfMethod.AUTO or self is source

    @property
    def listens_inband(self) -> bool:
        return self in (DtmfMethod.AUTO, DtmfMethod.INBAND)


@dataclass
class OnceOnly:
    """Counts a key once when it arrives both as an event and as tones (or twice as events):
    the same key from another source within `window_s` of the last one is the same press."""

    window_s: float = 0.3
    _last: dict[str, tuple[str, DtmfMethod, float]] = field(default_factory=dict)

    def first(self, leg: str, digit: str, source: DtmfMethod, t: float) -> bool:
        prev = self._last.get(leg)
        self._last[leg] = (digit, source, t)
        if prev is None:
            return True
        p_digit, p_source, p_t = prev
        return not (p_digit == digit and p_source is not source and abs(t - p_t) <= self.window_s)
