"""`gateway demo`: record a generated two-party call and show how to decrypt it.

Until the SIP worker exists, the "call" is a generated caller tone (440 Hz) and helpline tone
(1000 Hz), pushed frame by frame in real time through the same recorder engine, store, index
and audit log that calls use.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import time
from array import array
from pathlib import Path

from .. import age
from ..context import Gateway
from ..recording import wav
from ..recording.recorder import RecorderEngine
from ..recording.service import new_id
from ..storage import pii
from ..storage.index import CallRow, utcnow
from . import init

MARKER = ".gateway-demo"
RATE = 8000
FRAME = 160


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="record a generated call into a fresh demo directory")
    p.add_argument("--dir", type=Path, default=Path("demo-data"))
    p.add_argument("--seconds", type=float, default=6.0)
    p.set_defaults(func=run)


def _tone_frame(freq: float, index: int) -> bytes:
    start = index * FRAME
    return array("h", (int(12000 * math.sin(2 * math.pi * freq * (start + n) / RATE)) for n in range(FRAME))).tobytes()


def _power(samples: array, freq: float) -> float:
    """Goertzel power of one frequency: enough to name the tone on each channel."""
    k = 2 * math.cos(2 * math.pi * freq / RATE)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    return s1 * s1 + s2 * s2 - k * s1 * s2


def _write_identity(path: Path) -> str:
    if shutil.which("age-keygen"):
        subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
        path.chmod(0o600)
        return age.load_identity_file(path)[0].recipient().__str__()
    ident = age.Identity.generate()
    path.write_text(f"# created: gateway demo\n# public key: {ident.recipient()}\n{ident.encode()}\n")
    path.chmod(0o600)
    return str(ident.recipient())


def run(args: argparse.Namespace) -> int:
    base: Path = args.dir.resolve()
    if base.exists():
        if not (base / MARKER).exists():
            raise SystemExit(f"gateway: {base} exists and is not a demo directory; choose another --dir")
        shutil.rmtree(base)
    base.mkdir(parents=True, mode=0o700)
    (base / MARKER).touch()
    key = base / "operator-key.txt"
    recipient = _write_identity(key)
    print(f"1. Operator key pair: private identity in {key} (in production it never")
    print(f"   touches the gateway), public recipient {recipient}")
    gw_dir = base / "gateway"
    init.run(argparse.Namespace(dir=gw_dir, recipient=[recipient], sip_listen="127.0.0.1:5060",
                                pbx="sip:helpline@127.0.0.1:5070", mode="opt-out", force=False))
    config = gw_dir / "gateway.toml"
    gw = Gateway.open(config)
    engine = RecorderEngine()
    service = gw.recording_service(engine, actor="demo")
    secret = gw.lookup_secret()
    number = "+46 8 123 45 67"
    call_id = new_id()
    gw.index.add_call(CallRow(call_id, utcnow(), route="demo", caller_enc=pii.seal_value(number, service.recipients),
                              caller_hash=pii.number_hash(secret, number)))
    started = service.start(call_id, route="demo")
    assert started is not None
    rec_id, rec = started
    frames = int(args.seconds * RATE / FRAME)
    print(f"2. Recording a {args.seconds:.0f} s call: caller 440 Hz on channel 0, helpline 1000 Hz on channel 1")
    t0 = time.monotonic()
    for i in range(frames):
        rec.push_frame(0, _tone_frame(440, i))
        rec.push_frame(1, _tone_frame(1000, i))
        if i % 50 == 49:
            print(f"   {(i + 1) * FRAME / RATE:4.1f} s  {rec.stats.bytes_sealed:7d} bytes sealed to disk", flush=True)
        time.sleep(max(0.0, t0 + (i + 1) * FRAME / RATE - time.monotonic()))
    result = rec.finish().result(timeout=10)
    engine.close()
    row = gw.index.get_recording(rec_id)
    print(f"3. Recording {rec_id}: {row.status}, {row.duration_s:.2f} s, {row.bytes} bytes of ciphertext")
    print(f"   stored as {gw.config.paths.spool_dir / result.object_name} (an age file, random name)")
    # Decrypt in memory with the operator's key, as an operator would, and name each channel's tone.
    with gw.store.open(result.object_name) as f:
        plain = age.AgeReader(f, age.load_identity_file(key)).read_all()
    info = wav.parse_header(plain)
    samples = array("h", plain[info.data_offset : info.data_offset + 4 * RATE])
    for ch, name in ((0, "caller"), (1, "helpline")):
        chan = samples[ch::2]
        tone = max((440, 1000), key=lambda f: _power(chan, f))
        print(f"   channel {ch} ({name}): {tone} Hz")
    gw.close()
    print("4. Decrypt it yourself with the plain age CLI:")
    print(f"     age -d -i {key} {gw.config.paths.spool_dir / result.object_name} > call.wav")
    print("   or with the gateway (logged in the audit log):")
    print(f"     .venv/bin/gateway --config {config} recordings export {rec_id} -i {key} -o call.wav")
    print("   and check the audit chain:")
    print(f"     .venv/bin/gateway --config {config} audit verify")
    return 0


