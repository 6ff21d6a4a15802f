"""The live view's model: one row per call, built from the workers' events (docs/events.md).

Pure: `observe` takes an event and returns the row that changed (or None), so the web layer
only fans rows out. A row never holds a full caller number or audio; `caller_display` is
attacker-controlled text and the browser renders it as text only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..callevents import CallState, ConsentState, EventType, RecordingState

LINGER_S = 30.0  # an ended call stays on screen this long
STATES = tuple(CallState)
CONSENTS = tuple(ConsentState)
RECORDINGS = tuple(RecordingState)
MAX_DISPLAY = 64  # characters of a display name kept


def _clean(text: Any, limit: int = MAX_DISPLAY) -> str:
    """Printable text only, bounded: a display name arrives from anyone who can dial in."""
    s = text if isinstance(text, str) else ""
    return "".join(c if c.isprintable() else "\ufffd" for c in s[:limit])


def _time(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _pick(value: Any, allowed: tuple[str, ...], default: str) -> str:
    return value if value in allowed else default


@dataclass
class Today:
    """Consent outcomes since local midnight (as seen by this supervisor)."""

    day: str = ""
    granted: int = 0
    declined: int = 0
    withdrawn: int = 0

    def roll(self, now: float) -> None:
        day = datetime.fromtimestamp(now).strftime("%Y-%m-%d")
        if day != self.day:
            self.day, self.granted, self.declined, self.withdrawn = day, 0, 0, 0

    @property
    def opt_out_rate(self) -> float | None:
        decided = self.granted + self.declined
        return (self.declined + self.withdrawn) / decided if decided else None


@dataclass
class LiveView:
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    today: Today = field(default_factory=Today)
    node: str = ""  # the node whose own workers' events carry no "node" (cluster.py adds it)

    def observe(self, event: dict[str, Any], link: int, now: float | None = None) -> dict[str, Any] | None:
        """Apply one worker event (from the worker on link `link`); return the changed row."""
        now = time.time() if now is None else now
        call = event.get("call")
        kind = event.get("type")
        if not isinstance(call, str) or not call or len(call) > 64:
            return None
        row = self.calls.get(call)
        if row is None:
            if kind != EventType.CALL_STARTED and not event.get("snapshot"):
                return None  # an event of a call we never saw start (or already forgot)
            started = _time(event.get("ts"), now)
            if event.get("snapshot"):
                started = _time(event.get("started"), started)
            row = self.calls[call] = {
                "call": call,
                "link": link,
                "node": _clean(event.get("node") or self.node, 64),
                "worker": _clean(event.get("worker"), 80),
                "state": CallState.NOTICE,
                "consent": ConsentState.PENDING,
                "recording": RecordingState.NONE,
                "started": started,
                "ended": None,
                "route": "",
                "mode": "",
                "caller_masked": "",
                "caller_display": "",
                "bytes_sealed": 0,
                "recorded_s": 0.0,
                "reason": "",
                "by": "",
                "language": "",
                "kind": "call",  # or "siprec": a session forked by a recording client
                "tenant": _clean(event.get("tenant"), 32),  # "" without [[tenants]]
            }
        if kind == EventType.CALL_STARTED or event.get("snapshot"):
            for key in ("route", "mode", "caller_masked"):
                if key in event:
                    row[key] = _clean(event[key], 32)
            if "caller_display" in event:
                row["caller_display"] = _clean(event["caller_display"])
            if event.get("call_kind") == "siprec":
                row["kind"] = "siprec"
        if "state" in event:
            row["state"] = _pick(event["state"], STATES, row["state"])
        if isinstance(event.get("language"), str):
            row["language"] = _clean(event["language"], 8)  # the notice's, once known
        if kind == EventType.CALL_CONSENT or "consent" in event:
            consent = _pick(event.get("consent"), CONSENTS, row["consent"])
            if kind == EventType.CALL_CONSENT and not event.get("snapshot") and consent != row["consent"]:
                self.today.roll(now)
                if consent == ConsentState.GRANTED:
                    self.today.granted += 1
                elif consent == ConsentState.DECLINED:
                    self.today.declined += 1
                elif consent == ConsentState.WITHDRAWN:
                    self.today.withdrawn += 1
            row["consent"] = consent
        if "recording" in event:
            row["recording"] = _pick(event["recording"], RECORDINGS, row["recording"])
            if kind == EventType.CALL_RECORDING and "by" in event:
                row["by"] = _clean(event["by"], 80)  # who paused or stopped it (a supervisor)
            elif RecordingState(row["recording"]).live:
                row["by"] = ""  # the helpline's own keys, or the recorder: nobody to name
        if isinstance(event.get("bytes_sealed"), int) and not isinstance(event["bytes_sealed"], bool):
            row["bytes_sealed"] = event["bytes_sealed"]
        if isinstance(event.get("duration_s"), int | float) and not isinstance(event["duration_s"], bool):
            row["recorded_s"] = float(event["duration_s"])
        if kind == EventType.CALL_FAILED or (
            kind == EventType.CALL_STATE and event.get("state") == CallState.ENDED
        ):
            row["reason"] = _clean(event.get("reason", ""), 120)
        if row["state"] == CallState.ENDED and row["ended"] is None:
            row["ended"] = _time(event.get("ts"), now)
        row["ts"] = _time(event.get("ts"), now)  # when the worker published the change (for the delay figure)
        return row

    def link_lost(self, link: int, now: float | None = None) -> list[dict[str, Any]]:
        """A worker's stream ended (it died or restarted): its live calls are over."""
        now = time.time() if now is None else now
        changed = []
        for row in self.calls.values():
            if row["link"] == link and row["state"] != CallState.ENDED:
                row.update(state=CallState.ENDED, ended=now, reason="worker lost", ts=now)
                if RecordingState(row["recording"]).live:
                    row["recording"] = RecordingState.INCOMPLETE
                changed.append(row)
        return changed

    def expire(self, now: float | None = None) -> list[str]:
        """Forget calls that ended more than LINGER_S ago; return their ids."""
        now = time.time() if now is None else now
        gone = [c for c, r in self.calls.items() if r["ended"] is not None and now - r["ended"] > LINGER_S]
        for c in gone:
            del self.calls[c]
        return gone

    def summary(self, now: float | None = None, tenants: frozenset[str] | None = None) -> dict[str, Any]:
        """Counts of the calls up now (of `tenants` only, if given) and of the day's decisions."""
        now = time.time() if now is None else now
        self.today.roll(now)
        live = [
            r
            for r in self.calls.values()
            if r["state"] != CallState.ENDED and (tenants is None or r["tenant"] in tenants)
        ]
        return {
            "live_calls": len(live),
            "recording_calls": sum(1 for r in live if r["recording"] == RecordingState.RECORDING),
            "today": {
                "day": self.today.day,
                "granted": self.today.granted,
                "declined": self.today.declined,
                "withdrawn": self.today.withdrawn,
                "opt_out_rate": self.today.opt_out_rate,
            },
        }
