from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.recording.aligner import ChannelAligner

FRAME = 160


def frame(channel: int, index: int) -> bytes:
    # Each sample says which channel and frame it belongs to.
    value = (channel + 1) * 1000 + index % 1000
    return value.to_bytes(2, "little", signed=True) * FRAME


def samples(out: bytes, channel: int) -> list[int]:
    return [int.from_bytes(out[i : i + 2], "little", signed=True) for i in range(channel * 2, len(out), 4)]


@given(
    present=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60),
    jitter=st.lists(st.integers(min_value=-30, max_value=30), min_size=1, max_size=60),
    drains=st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=10),
)
def test_missing_frames_become_silence_and_channels_stay_aligned(
    present: list[tuple[bool, bool]], jitter: list[int], drains: list[int]
) -> None:
    """Frames arrive with timing jitter, some missing on either channel, drained at random
    moments a few frames behind; every frame ends up exactly at its own time slot."""
    a = ChannelAligner(2, tolerance=70)
    out = bytearray()
    d = 0
    for i, flags in enumerate(present):
        for c in (0, 1):
            if flags[c]:
                a.place(c, i * FRAME + jitter[(i + c) % len(jitter)], frame(c, i))
        if i % drains[d % len(drains)] == 0:
            out += a.drain(max(0, (i - 2) * FRAME))
            d += 1
    out += a.drain(len(present) * FRAME)
    for c in (0, 1):
        got = samples(bytes(out), c)
        assert len(got) == len(present) * FRAME
        for i, flags in enumerate(present):
            slot = got[i * FRAME : (i + 1) * FRAME]
            expected = (c + 1) * 1000 + i if flags[c] else 0
            # Jitter shifts a frame by at most 30 samples, so the middle of each slot holds
            # that slot's frame, or silence where the frame never came.
            assert slot[FRAME // 2] == expected


def test_one_silent_channel_does_not_hold_back_the_other() -> None:
    a = ChannelAligner(2, tolerance=80)
    for i in range(10):
        a.place(0, i * FRAME, frame(0, i))
    out = a.drain(10 * FRAME)
    assert samples(out, 0)[5 * FRAME] == 1005 and set(samples(out, 1)) == {0}


def test_late_and_overlapping_audio_is_counted_not_duplicated() -> None:
    a = ChannelAligner(2, tolerance=80)
    a.place(0, 0, frame(0, 0))
    a.drain(2 * FRAME)
    a.place(0, FRAME, frame(0, 1))  # its whole time was already emitted
    assert a.stats.late_samples == FRAME
    a.place(1, 0, frame(1, 0))
    a.place(1, 0, frame(1, 0))  # a duplicate
    assert a.stats.late_samples == 3 * FRAME
    # The first drain padded channel 0 by one frame and the empty channel 1 by two.
    assert a.stats.gap_samples == 3 * FRAME
    a.place(0, 10 * FRAME, frame(0, 10))
    assert a.stats.gap_samples == 3 * FRAME + 8 * FRAME
