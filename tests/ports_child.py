"""A pjsua2 endpoint whose media ports are dropped while calls' audio is flowing: the victim of
test_media_ports. Usage: python -m tests.ports_child CYCLES.

Each cycle builds a worker's media slots, plays a tone from every source into a tap, lets the
conference bridge's clock run, then drops the slots the way a worker does at shutdown
(`release_slots`) and brings the clock back for the next cycle. Prints the frames each cycle's
taps heard; a port destroyed under the clock crashes the process instead.
"""

import collections
import sys
import time

from gateway.telephony.media import MediaSlot, audio_format, release_slots, tone
from tests.pj_endpoint import null_endpoint

RATE = 8000

ep = null_endpoint()
fmt = audio_format(RATE)
pcm = tone(440, 1.0, RATE)
for cycle in range(int(sys.argv[1])):
    slots = [MediaSlot(f"{cycle}-{i}", RATE, fmt) for i in range(4)]
    heard: list[collections.deque[bytes]] = []
    for slot in slots:
        for port in (slot.source, slot.aux):
            port.play(pcm, loop=True)
        for port, tap in zip((slot.source, slot.aux), slot.taps, strict=True):
            tap.inband = collections.deque(maxlen=1000)
            heard.append(tap.inband)
            port.startTransmit(tap)
    del slot, port, tap  # the slots list must hold the only references, as in a worker
    time.sleep(0.06)
    release_slots(ep, slots)
    print(cycle, min(len(q) for q in heard), flush=True)
    ep.audDevManager().setNullDev()
ep.libDestroy()
print("clean", flush=True)
