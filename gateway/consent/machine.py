"""The consent decision for one call. Pure: events in, actions out, time passed in.

    answered ──▶ notice ──(decisive key)──▶ decided ──(withdraw sequence)──▶ withdrawn
                   │  └──(deadline: notice + grace)──▶ decided
                   └──(hang-up)──▶ abandoned

Opt-out mode: the decline key declines; silence until the deadline grants.
Opt-in mode: the accept key grants; silence until the deadline declines.
Any other key during the notice is recorded in the receipt and otherwise ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

MAX_DIGITS_KEPT = 64  # a digit flood is counted, not stored without bound
ACCEPT_KEY = "accept key"  # the reason of a grant by key (receipt.outcome tells it from silence)


class Mode(StrEnum):
    OPT_OUT = "opt-out"
    OPT_IN = "opt-in"


class State(StrEnum):
    NOTICE = "notice"  # the notice is playing or its grace period runs
    DECIDED = "decided"
    WITHDRAWN = "withdrawn"
    ABANDONED = "abandoned"  # the caller hung up before deciding


class Decision(StrEnum):
    GRANTED = "granted"
    DECLINED = "declined"


# Actions for the worker to carry out.
@dataclass(frozen=True)
class StopNotice:
    pass


@dataclass(frozen=True)
class Confirm:
    """Play the short confirmation for `decision` (after a key, or a withdrawal)."""

    decision: str  # "granted", "declined" or "withdrawn"


@dataclass(frozen=True)
class Decide:
    decision: Decision
    reason: str


@dataclass(frozen=True)
class Withdraw:
    """Stop the recording and discard what was recorded."""


Action = StopNotice | Confirm | Decide | Withdraw


@dataclass(frozen=True)
class Digit:
    digit: str
    t: float  # seconds since answer
    effect: str  # "decline", "accept", "ignored", "withdraw", "relayed"
    via: str = ""  # how it arrived: "rfc4733", "info" or "inband" ("" when not known)


@dataclass
class ConsentMachine:
    mode: Mode
    notice_s: float
    grace_s: float
    decline_key: str = "9"
    accept_key: str = "1"
    withdraw_sequence: str = "*9"
    sequence_timeout_s: float = 3.0
    notice_at: float = 0.0  # when the notice began, seconds since answer (after a language menu)
    state: State = State.NOTICE
    decision: Decision | None = None
    reason: str = ""
    decided_t: float | None = None
    withdrawn_t: float | None = None
    digits: list[Digit] = field(default_factory=list)
    digits_dropped: int = 0
    transitions: list[tuple[float, str, str]] = field(default_factory=list)
    _seq: str = ""
    _seq_t: float = 0.0
    _via: str = ""

    @property
    def deadline(self) -> float | None:
        """When silence becomes the answer (seconds since answer), while still deciding."""
        return self.notice_at + self.notice_s + self.grace_s if self.state is State.NOTICE else None

    def _set_state(self, t: float, new: State) -> None:
        self.transitions.append((t, self.state.value, new.value))
        self.state = new

    def _note(self, digit: str, t: float, effect: str) -> None:
        if len(self.digits) < MAX_DIGITS_KEPT:
            self.digits.append(Digit(digit, round(t, 3), effect, self._via))
        else:
            self.digits_dropped += 1

    def _decide(self, t: float, decision: Decision, reason: str) -> list[Action]:
        self.decision, self.reason, self.decided_t = decision, reason, round(t, 3)
        self._set_state(t, State.DECIDED)
        return [Decide(decision, reason)]

    def on_digit(self, digit: str, t: float, via: str = "") -> list[Action]:
        """A DTMF digit from the caller, `t` seconds after answer, arrived `via` a signalling."""
        self._via = via
        # A key after the deadline comes too late: silence has already decided.
        expired = self.on_tick(t)
        if expired:
            return expired + self.on_digit(digit, t, via)
        if self.state is State.NOTICE:
            decisive = self.decline_key if self.mode is Mode.OPT_OUT else self.accept_key
            if digit != decisive:
                self._note(digit, t, "ignored")
                return []
            if self.mode is Mode.OPT_OUT:
                self._note(digit, t, "decline")
                return [StopNotice(), *self._decide(t, Decision.DECLINED, "decline key"), Confirm("declined")]
            self._note(digit, t, "accept")
            return [StopNotice(), *self._decide(t, Decision.GRANTED, ACCEPT_KEY), Confirm("granted")]
        if self.state is State.DECIDED and self.decision is Decision.GRANTED:
            if self._seq and t - self._seq_t > self.sequence_timeout_s:
                self._seq = ""
            self._seq = (self._seq + digit)[-len(self.withdraw_sequence) :]
            self._seq_t = t
            if self._seq == self.withdraw_sequence:
                self._note(digit, t, "withdraw")
                self.withdrawn_t = round(t, 3)
                self._set_state(t, State.WITHDRAWN)
                return [Withdraw(), Confirm("withdrawn")]
        return []

    def on_signalled(self, decision: Decision, t: float, source: str) -> list[Action]:
        """A decision collected by someone else and signalled to the gateway (a SIPREC recording
        client's header or metadata: it played the notice). It counts only while deciding."""
        if self.state is not State.NOTICE:
            return []
        return self._decide(t, decision, f"signalled by the recording client ({source})")

    def on_tick(self, t: float) -> list[Action]:
        """Time passes; past the deadline, silence decides."""
        if self.state is State.NOTICE and t >= self.notice_at + self.notice_s + self.grace_s:
            if self.mode is Mode.OPT_OUT:
                return self._decide(t, Decision.GRANTED, "no decline key before the deadline")
            return self._decide(t, Decision.DECLINED, "no accept key before the deadline")
        return []

    def on_hangup(self, t: float) -> list[Action]:
        if self.state is State.NOTICE:
            self.reason = "caller hung up before deciding"
            self._set_state(t, State.ABANDONED)
        return []

    @property
    def recording_allowed(self) -> bool:
        return self.state is State.DECIDED and self.decision is Decision.GRANTED
