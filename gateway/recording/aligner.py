"""Keeps the two channels of a recording aligned in time. Pure: no threads, clocks or I/O.

Frames arrive per channel with the sample position at which they were captured. Small
timing jitter is absorbed (a frame within `tolerance` of where its channel left off is
appended there); a larger gap is filled with silence; a frame overlapping audio already held
loses its overlapping head. `drain(upto)` emits interleaved 16-bit samples up to a position,
padding a channel that has nothing for that time with silence, so both channels always
advance together.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

BYTES_PER_SAMPLE = 2


@dataclass
class AlignerStats:
    gap_samples: int = 0  # silence inserted for missing audio (gaps and padding)
    overlap_samples: int = 0  # samples dropped because their time was already filled
    late_samples: int = 0  # samples that arrived after their time had been emitted


class ChannelAligner:
    def __init__(self, channels: int = 2, tolerance: int = 160) -> None:
        self.channels = channels
        self.tolerance = tolerance
        self.emitted = 0  # samples per channel already drained
        self._pending = [bytearray() for _ in range(channels)]  # from `emitted` on
        self.stats = AlignerStats()

    def cursor(self, channel: int) -> int:
        """Position just after the last sample held for `channel`."""
        return self.emitted + len(self._pending[channel]) // BYTES_PER_SAMPLE

    @property
    def end(self) -> int:
        """The furthest position any channel has reached."""
        return max(self.cursor(c) for c in range(self.channels))

    def place(self, channel: int, position: int, pcm: bytes) -> None:
        if len(pcm) % BYTES_PER_SAMPLE:
            raise ValueError("PCM frame must hold whole 16-bit samples")
        buf = self._pending[channel]
        cursor = self.cursor(channel)
        if position > cursor + self.tolerance:
            gap = position - cursor
            buf += bytes(gap * BYTES_PER_SAMPLE)
            self.stats.gap_samples += gap
        elif position < cursor - self.tolerance:
            # The head of this frame covers time this channel already holds (or has emitted).
            drop = min(cursor - position, len(pcm) // BYTES_PER_SAMPLE)
            late = min(max(self.emitted - position, 0), drop)
            self.stats.late_samples += late
            self.stats.overlap_samples += drop - late
            pcm = pcm[drop * BYTES_PER_SAMPLE :]
        buf += pcm

    def drain(self, upto: int) -> bytes:
        """Interleaved samples for positions [emitted, upto); empty if upto <= emitted."""
        n = upto - self.emitted
        if n <= 0:
            return b""
        nbytes = n * BYTES_PER_SAMPLE
        # Samples are copied as opaque 16-bit units, so their byte order is kept whatever the
        # machine's (no numpy: the supervisor imports this module and never records).
        out = array("h", bytes(nbytes * self.channels))
        for c, buf in enumerate(self._pending):
            have = min(len(buf), nbytes)
            if have < nbytes:
                self.stats.gap_samples += (nbytes - have) // BYTES_PER_SAMPLE
            if have:
                samples = array("h", bytes(buf[:have]))
                out[c : c + len(samples) * self.channels : self.channels] = samples
                del buf[:have]
        self.emitted = upto
        return out.tobytes()

    def clear(self) -> None:
        """Forget everything held (a discarded recording), overwriting the buffers first."""
        for buf in self._pending:
            buf[:] = bytes(len(buf))
            buf.clear()
