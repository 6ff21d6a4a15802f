"""A real conference bridge recording two tones while the process's Python holds the GIL for
long stretches, as a busy worker's loop does: the subject of test_media_ports's stall test.
Usage: python -m tests.stall_child SPOOL_DIR.

pjmedia's clock thread needs the GIL for every tap callback, so while the main thread holds it
(100 ms at a time) the ticks run late and then back to back. Prints, per channel, the
20 ms frames of the recording that hold audio and the frames there are, then the recorder's
gap, overlap and late samples, then "clean".
"""

import sys
import time
from pathlib import Path

import numpy as np

from gateway import age
from gateway.recording import wav
from gateway.recording.recorder import Recorder, RecorderEngine
from gateway.storage.spool import LocalSpool
from gateway.telephony.media import MediaSlot, audio_format, release_slots, tone
from tests.audio import frames_present
from tests.pj_endpoint import null_endpoint

RATE = 8000
ep = null_endpoint()
slots = [MediaSlot("stall", RATE, audio_format(RATE))]
slot = slots[0]
identity = age.Identity.generate()
spool = LocalSpool(Path(sys.argv[1]))
engine = RecorderEngine()
slot.source.play(tone(440, 1.0, RATE), loop=True)
slot.aux.play(tone(1000, 1.0, RATE), loop=True)
slot.source.startTransmit(slot.taps[0])
slot.aux.startTransmit(slot.taps[1])
time.sleep(0.5)  # the taps receive audio
rec = Recorder(spool.create(), [identity.recipient()])
engine.add(rec)
for tap in slot.taps:
    tap.recorder = rec
sys.setswitchinterval(0.1)
end = time.monotonic() + 4.0
while time.monotonic() < end:  # hold the GIL 100 ms at a time, let go 60 ms
    busy = time.monotonic() + 0.1
    x = 0
    while time.monotonic() < busy:
        x += 1
    time.sleep(0.06)
sys.setswitchinterval(0.005)
for tap in slot.taps:
    tap.recorder = None
result = rec.finish().result(timeout=10)
engine.close()
del slot, tap  # the ports go with the slots list, after the clock has stopped
release_slots(ep, slots)
ep.libDestroy()
with spool.open(result.object_name) as f:
    plain = age.AgeReader(f, [identity]).read_all()
both = np.frombuffer(plain[wav.HEADER_SIZE :], dtype="<i2")
for channel in (both[0::2], both[1::2]):
    print(*frames_present(channel), flush=True)
print(result.stats["gap_samples"], result.stats["overlap_samples"], result.stats["late_samples"], flush=True)
print("clean", flush=True)
sys.exit(0)
