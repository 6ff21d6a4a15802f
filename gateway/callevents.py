"""The vocabulary of the call event stream (docs/events.md): event types, and the states a
call, its consent and its recording can be in. One definition, shared by the worker that
publishes events and by everything that reads them (the supervisor's links and metrics, the
dashboard's live model, the demo). The values are the strings on the wire.
"""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    CALL_STARTED = "call.started"
    CALL_STATE = "call.state"
    CALL_CONSENT = "call.consent"
    CALL_RECORDING = "call.recording"
    CALL_PROGRESS = "call.progress"
    CALL_HOLD = "call.hold"
    CALL_DIGIT = "call.digit"
    CALL_WHISPER = "call.whisper"
    CALL_FAILED = "call.failed"
    WORKER_STARTED = "worker.started"
    WORKER_DRAINING = "worker.draining"
    CONTROL_RESULT = "control.result"


class CallState(StrEnum):
    """A call's life: [menu →] notice → deciding → dialling → bridged → ended (or unavailable →
    ended)."""

    MENU = "menu"  # the language menu plays; a menu key or its timeout picks the notice's language
    NOTICE = "notice"  # the recording notice plays; a decisive key ends it early
    DECIDING = "deciding"  # the notice is over; silence until the deadline counts as the answer
    DIALLING = "dialling"  # the helpline's PBX rings
    BRIDGED = "bridged"  # caller and helpline talk
    UNAVAILABLE = "unavailable"  # the PBX could not be reached; the caller hears why
    FORKED = "forked"  # a SIPREC session after the decision: recorded with consent, else idle
    ENDED = "ended"


class ConsentState(StrEnum):
    PENDING = "pending"
    GRANTED = "granted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    UNAVAILABLE = "unavailable"  # failed open: no worker asked (the dashboard's fail-open rows)


class RecordingState(StrEnum):
    NONE = "none"  # nothing is recorded (no consent, or not bridged yet)
    RECORDING = "recording"
    PAUSED = "paused"  # by the helpline's keys or a supervisor
    STOPPED = "stopped"  # by a supervisor: what was recorded is kept, nothing more is
    SAVING = "saving"  # the call ended; the final chunk is being sealed
    SAVED = "saved"
    INCOMPLETE = "incomplete"  # storage failed: the sealed part is kept
    DISCARDED = "discarded"  # consent withdrawn: deleted

    @property
    def live(self) -> bool:
        """The recorder is still taking audio (or could again, once resumed)."""
        return self in (RecordingState.RECORDING, RecordingState.PAUSED)
