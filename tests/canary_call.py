"""Records one call whose caller audio is the harness canary, then exits cleanly.

Usage: python -m tests.canary_call CONFIG SECONDS. Prints the recording id.
"""

import sys
import time

from gateway.app.gateway import Gateway
from gateway.recording.recorder import RecorderEngine
from tests.audio import frames
from tests.gw import new_call
from tests.harness.plaintext import canary_pcm

gw = Gateway.open(sys.argv[1])
seconds = float(sys.argv[2])
engine = RecorderEngine(tick_s=0.01)
service = gw.recording_service(engine, actor="canary")
started = service.start(new_call(gw.index, "canary-call"))
assert started is not None
rec_id, rec = started
caller = frames(canary_pcm(int(8000 * seconds)))
helpline = frames(canary_pcm(int(8000 * seconds), seed=7))
t = rec._t0
for a, b in zip(caller, helpline, strict=True):
    rec.push_frame(0, a, at=t)
    rec.push_frame(1, b, at=t)
    t += 0.02
    while rec.queued > 200:
        engine.wake()
        time.sleep(0.005)
rec.finish(at=t).result(timeout=30)
engine.close()
print(rec_id)
