"""When each frame of a steady media stream was due, from when its callback ran. Pure: the
caller passes the time.

pjmedia's clock thread hands a port one frame per tick: on time on an idle machine, late on a
loaded one (it waits for the CPU, or for the GIL while a worker's loop runs Python), and then
it catches up with a burst of ticks back to back. Stamping each frame with the time its
callback ran turns that lateness into audio lost on the recording's timeline: a burst's frames
all land at the same moment, so all but one overlap and are dropped, and the time they
belonged to is filled with silence. Every frame arrived; the recording still had holes.

The frames' count is the stream's own clock: frame n was due `n * frame_s` after the stream's
start. That start is estimated as the smallest lateness seen (a tick that ran on time shows
the schedule; a late one only shows how late it was). The smallest is taken over a sliding
window, not for ever, so the schedule can still move later (a port whose frames are longer
than the bridge's can shift its phase when it starts receiving); a stall shorter than the
window never moves it. A frame more than half a second late starts the schedule again:
pjmedia gives up catching up at that point and skips the ticks it missed, so that audio really
is gone (and a clock that stopped and started again has a new schedule too).
"""

from __future__ import annotations

import math

WINDOW_S = 4.0
JUMP_S = 0.5  # pjmedia's clock_thread.c MAX_JUMP_MSEC


class FrameClock:
    __slots__ = ("frame_s", "jump_s", "frames", "_half", "_current", "_previous", "_rotate_at")

    def __init__(self, frame_s: float, window_s: float = WINDOW_S, jump_s: float = JUMP_S) -> None:
        if frame_s <= 0 or window_s <= 0 or jump_s <= 0:
            raise ValueError("a frame clock needs a positive frame length, window and jump")
        self.frame_s, self.jump_s = frame_s, jump_s
        self.frames = 0  # frames seen so far
        self._half = window_s / 2
        # The smallest lateness in the current half window and in the one before it.
        self._current = math.inf
        self._previous = math.inf
        self._rotate_at = -math.inf

    def due(self, now: float) -> float:
        """The time the frame whose callback runs at `now` was due: its last sample's time.
        Call it once for every frame the stream delivers, empty ones included."""
        self.frames = n = self.frames + 1
        elapsed = n * self.frame_s
        start = now - elapsed
        if start - min(self._previous, self._current) > self.jump_s:
            self._previous = self._current = start  # the ticks were skipped: a new schedule
            self._rotate_at = now + self._half
        elif now >= self._rotate_at:
            self._previous, self._current = self._current, start
            self._rotate_at = now + self._half
        elif start < self._current:
            self._current = start
        return min(self._previous, self._current) + elapsed
