"""The ports a media slot puts on a real conference bridge, made as they are first used: the
subject of test_media_ports's port-count test. Usage: python -m tests.slot_child.

Prints the bridge's port count after each step: a new slot, its source used, its helper used,
both used again.
"""

import sys

from gateway.telephony.media import MediaSlot, audio_format, release_slots
from tests.pj_endpoint import null_endpoint

RATE = 8000
ep = null_endpoint()
counts = [ep.mediaActivePorts()]
slots = [MediaSlot("s", RATE, audio_format(RATE))]
counts.append(ep.mediaActivePorts())
slots[0].source.play(bytes(320))
counts.append(ep.mediaActivePorts())
slots[0].aux.play(bytes(320))
counts.append(ep.mediaActivePorts())
slots[0].reset()
slots[0].source.play(bytes(320))
slots[0].aux.play(bytes(320))
counts.append(ep.mediaActivePorts())
release_slots(ep, slots)
ep.libDestroy()
print(" ".join(map(str, counts)), flush=True)
print("clean", flush=True)
sys.exit(0)
