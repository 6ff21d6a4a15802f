"""A process that records until it is killed: the crash tests' victim.

Usage: python -m tests.recording_child CONFIG. Prints the recording id, then "sealed" once
three chunks are durable and the index has their checkpoint (written off the recorder's
thread), then keeps recording (at 10x real time) until killed.
"""

import sys
import time

from gateway.app.gateway import Gateway
from gateway.recording.recorder import RecorderEngine
from tests.audio import frames, tone
from tests.gw import new_call

gw = Gateway.open(sys.argv[1])
service = gw.recording_service(RecorderEngine(tick_s=0.01), actor="child")
started = service.start(new_call(gw.index, "crash-call"))
assert started is not None
rec_id, rec = started
print(rec_id, flush=True)
caller, helpline = frames(tone(440, 1)), frames(tone(1000, 1))
t, said, durable = rec._t0, False, 0
for i in range(100_000):
    rec.push_frame(0, caller[i % 50], at=t)
    rec.push_frame(1, helpline[i % 50], at=t)
    t += 0.02
    if i % 10 == 9:
        time.sleep(0.02)
    if not durable and rec.stats.chunks_sealed >= 3:
        durable = rec.stats.bytes_sealed
    if durable and not said and (gw.index.get_recording(rec_id).bytes or 0) >= durable:
        print("sealed", flush=True)
        said = True
