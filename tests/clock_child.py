"""A pjsua2 endpoint whose clock thread calls a tap: the subject of test_media_ports's
thread-state test. Usage: python -m tests.clock_child.

A source plays into a tap for a moment, twice, with the clock thread stopped and started again
in between (as a worker's sound device closing and opening again would). The tap counts its
callbacks in a thread-local counter, which lives in the Python thread state the callback runs
in. Prints, per round, the counter's values: 1, 2, 3... when the clock thread keeps one thread
state; all 1 when each callback gets a new one.
"""

import sys
import threading
import time

import pjsua2 as pj

from gateway.telephony.media import MediaSlot, Tap, audio_format, release_slots, tone
from tests.pj_endpoint import null_endpoint

RATE = 8000
local = threading.local()
seen: list[int] = []


class CountingTap(Tap):
    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        super().onFrameReceived(frame)
        local.n = getattr(local, "n", 0) + 1
        seen.append(local.n)


ep = null_endpoint()
fmt = audio_format(RATE)
for round_ in range(2):
    slots = [MediaSlot(f"r{round_}", RATE, fmt)]
    tap = CountingTap(0, 20)
    tap.createPort(f"count-{round_}", fmt)
    slots[0].taps.append(tap)  # dropped with the slot
    slots[0].source.play(tone(440, 1.0, RATE), loop=True)
    slots[0].source.startTransmit(tap)
    del tap
    time.sleep(0.3)
    release_slots(ep, slots)  # stops the clock thread
    print(" ".join(map(str, seen)), flush=True)
    seen.clear()
    ep.audDevManager().setNullDev()  # a new clock thread
ep.libDestroy()
print("clean", flush=True)
sys.exit(0)
