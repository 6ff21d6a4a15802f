"""The consent receipt: what a data subject or an auditor can check about one call's consent.

It names the exact prompt audio (SHA-256 of the PCM played, and how much of it was played) of
the notice and of every other prompt the caller heard, the language and how it was chosen, the
mode and keys, every digit with its time since answer and how it arrived, and the decision
with its reason.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from .machine import ACCEPT_KEY, ConsentMachine

RECEIPT_VERSION = 1


@dataclass(frozen=True)
class PromptPlayed:
    id: str
    version: str
    language: str
    sha256: str  # of the whole prompt's PCM at the bridge clock rate
    played_ms: int  # how much of it the caller heard before it ended or was cut
    played_sha256: str  # of the PCM actually sent


@dataclass(frozen=True)
class LanguageUsed:
    code: str  # the language of the notice the caller heard
    chosen_by: str  # "route", "header", "menu", "menu-timeout" or "menu-unanswered"
    menu: list[str]  # the languages the menu offered (empty: no menu)
    key: str | None  # the menu key pressed


def build(
    machine: ConsentMachine,
    *,
    call_id: str,
    route: str,
    prompt: PromptPlayed | None,
    answered_at: str,
    decided_at: str | None,
    ended_at: str | None = None,
    language: LanguageUsed | None = None,
    heard: list[PromptPlayed] | None = None,
    siprec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`prompt` is None for a recording session forked by a SIPREC client, which played the
    notice itself: `siprec` then says who decided and how (the client's signal, a key seen in
    the caller's forked stream, or the route's mode at the end of the window)."""
    receipt = {
        "version": RECEIPT_VERSION,
        "call_id": call_id,
        "route": route,
        "mode": machine.mode.value,
        "keys": {
            "decline": machine.decline_key,
            "accept": machine.accept_key,
            "withdraw": machine.withdraw_sequence,
        },
        "grace_s": machine.grace_s,
        "prompt": asdict(prompt) if prompt is not None else None,
        "language": asdict(language) if language is not None else None,
        # Every prompt the caller heard, in order (menu options, notice, confirmation...).
        "prompts_heard": [asdict(p) for p in heard or []],
        "answered_at": answered_at,
        "decided_at": decided_at,
        "ended_at": ended_at,
        "state": machine.state.value,
        "decision": machine.decision.value if machine.decision else None,
        "reason": machine.reason,
        "decided_after_s": machine.decided_t,
        "withdrawn_after_s": machine.withdrawn_t,
        "digits": [asdict(d) for d in machine.digits],
        "digits_dropped": machine.digits_dropped,
    }
    if siprec is not None:
        receipt["siprec"] = siprec
    return receipt


class Outcome(StrEnum):
    """How a call's consent came out, in one word for the recordings list and its filter
    (derived from the receipt, which stays the evidence)."""

    SILENCE = "silence"  # granted: no decline key within the notice and grace (opt-out)
    KEY = "key"  # granted by the accept key (opt-in), or a key in a forked stream
    CLIENT_HEADER = "client-header"  # a recording session's client signalled it in a header
    CLIENT_METADATA = "client-metadata"  # ... in the recording metadata
    WINDOW = "window"  # a recording session's window ended under the route's mode
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"  # granted, then withdrawn with the withdraw sequence


def outcome(receipt: dict[str, Any]) -> Outcome | None:
    """The receipt's outcome; None while nothing is decided (or the caller hung up first)."""
    if receipt.get("state") == "withdrawn":
        return Outcome.WITHDRAWN
    decision = receipt.get("decision")
    if decision == "declined":
        return Outcome.DECLINED
    if decision != "granted":
        return None
    siprec = receipt.get("siprec")
    if isinstance(siprec, dict) and siprec.get("decided_by"):
        try:
            return Outcome(siprec["decided_by"])
        except ValueError:
            return None
    return Outcome.KEY if receipt.get("reason") == ACCEPT_KEY else Outcome.SILENCE


def language(receipt: dict[str, Any]) -> str | None:
    """The language of the notice the caller heard (None: none was played, as in a recording
    session, whose client plays its own)."""
    lang = receipt.get("language")
    code = lang.get("code") if isinstance(lang, dict) else None
    return code if isinstance(code, str) else None


def digest(receipt: dict[str, Any]) -> str:
    """A stable hash of the receipt (canonical JSON), for signing and for the audit log."""
    return hashlib.sha256(json.dumps(receipt, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
