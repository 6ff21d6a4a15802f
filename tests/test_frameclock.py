"""The frame clock: when each frame was due, from when its callback ran (late, in bursts)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.recording.frameclock import JUMP_S, WINDOW_S, FrameClock

FRAME_S = 0.04
T0 = 5000.0  # the stream's first frame was due at T0 + FRAME_S


def arrivals(lateness: list[float]) -> list[float]:
    """Callback times of a clock thread that runs frame n `lateness[n]` late, and never runs a
    tick before the one before it (a late tick delays the ticks it catches up on)."""
    out: list[float] = []
    for n, late in enumerate(lateness, start=1):
        t = T0 + n * FRAME_S + late
        out.append(max(t, out[-1]) if out else t)
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(min_value=0.0, max_value=JUMP_S * 0.9), min_size=1, max_size=400),
    st.integers(min_value=0, max_value=20),
)
def test_late_and_bursty_callbacks_get_their_scheduled_times(late: list[float], on_time_every: int) -> None:
    # Some ticks run on time (a machine is never busy for ever); the others anything up to
    # almost half a second late, then back to back as the clock catches up.
    late = [0.0 if on_time_every and n % (on_time_every + 1) == 0 else x for n, x in enumerate(late)]
    late[0] = 0.0
    clock = FrameClock(FRAME_S)
    due = [clock.due(t) for t in arrivals(late)]
    assert due == pytest.approx([T0 + n * FRAME_S for n in range(1, len(late) + 1)], abs=1e-9)


def test_a_burst_after_a_stall_is_placed_back_to_back_not_on_top_of_each_other() -> None:
    # What the recorder lost before: 0.3 s of stall, then eight frames within a millisecond.
    late = [0.0] * 50 + [0.3 - 0.04 * k for k in range(8)] + [0.0] * 20
    clock = FrameClock(FRAME_S)
    due = [clock.due(t) for t in arrivals(late)]
    gaps = {round(b - a, 9) for a, b in zip(due, due[1:], strict=False)}
    assert gaps == {FRAME_S}


def test_the_first_frame_late_the_schedule_learns_from_the_next_on_time_one() -> None:
    clock = FrameClock(FRAME_S)
    first = clock.due(T0 + FRAME_S + 0.007)
    assert first == pytest.approx(T0 + FRAME_S + 0.007)
    assert clock.due(T0 + 2 * FRAME_S) == pytest.approx(T0 + 2 * FRAME_S)


def test_ticks_pjmedia_skipped_start_a_new_schedule() -> None:
    # Over half a second behind, pjmedia stops catching up and skips the ticks it missed: the
    # frames after that are due from the moment it went on, and the time skipped stays a gap.
    clock = FrameClock(FRAME_S)
    t = [T0 + n * FRAME_S for n in range(1, 51)]
    stalled_until = t[-1] + 0.8
    after = [stalled_until + k * FRAME_S for k in range(50)]
    due = [clock.due(x) for x in t + after]
    assert due[49] == pytest.approx(t[-1])
    assert due[50:] == pytest.approx(after, abs=1e-9)


def test_a_schedule_that_moves_later_is_followed_within_the_window() -> None:
    # A port whose frames are longer than the bridge's can start receiving half a bridge frame
    # later than its empty frames ran: every frame after that is 20 ms later for good.
    clock = FrameClock(FRAME_S)
    n_before, n_after = 100, int(2 * WINDOW_S / FRAME_S)
    t = [T0 + n * FRAME_S for n in range(1, n_before + 1)]
    t += [T0 + 0.02 + n * FRAME_S for n in range(n_before + 1, n_before + n_after + 1)]
    due = [clock.due(x) for x in t]
    assert due[:n_before] == pytest.approx(t[:n_before])
    settled = n_before + int(WINDOW_S / FRAME_S) + 1
    assert due[settled:] == pytest.approx(t[settled:], abs=1e-9)
    # Meanwhile the frames stay back to back, and the schedule moves once, by the 20 ms.
    steps = [round(b - a, 6) for a, b in zip(due, due[1:], strict=False)]
    assert sorted(set(steps)) == [FRAME_S, FRAME_S + 0.02] and steps.count(FRAME_S + 0.02) == 1


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError):
        FrameClock(0)
    with pytest.raises(ValueError):
        FrameClock(FRAME_S, window_s=-1)
