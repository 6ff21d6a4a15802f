"""`gateway demo`: a live node on loopback (Kamailio in front of two workers) with a simulated
PBX agent and three callers.

Anna stays silent through the notice (opt-out: recorded), Bertil presses 9 (not recorded),
Cecilia is recorded and then withdraws consent with *9 (her recording is deleted). The demo
prints the dashboard's address and two logins (a supervisor and an auditor) so that the calls
can be watched live in a browser, prints the gateway's event stream, then decrypts Anna's
recording with the operator's key, in memory, and names the tone on each channel.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from array import array
from pathlib import Path

from .. import age
from ..app.accounts import Accounts
from ..app.gateway import Gateway
from ..app.runtime import harden_process
from ..callevents import CallState, EventType, RecordingState
from ..recording import wav
from ..storage.rows import RecordingStatus
from ..telephony.events import follow
from ..telephony.net import free_port, free_port_run
from . import init

MARKER = ".gateway-demo"
RATE = 8000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run a live demo: gateway, PBX agent and callers on loopback")
    p.add_argument("--dir", type=Path, default=Path("demo-data"))
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds between printing the dashboard's address and the first call",
    )
    p.add_argument(
        "--linger",
        type=float,
        default=0.0,
        metavar="S",
        help="keep the node and its dashboard up this long after the calls (Ctrl-C ends it)",
    )
    p.set_defaults(func=run)


TONE_BLOCK = RATE // 20  # 50 ms: 20 Hz apart, enough to tell 440 Hz from 1000 Hz


def _power(samples: array, freq: float) -> float:
    """Goertzel power of one frequency: enough to name the tone on each channel."""
    k = 2 * math.cos(2 * math.pi * freq / RATE)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    return s1 * s1 + s2 * s2 - k * s1 * s2


def _tone_name(samples: array) -> str:
    """ "440 Hz" or "1000 Hz" when that tone dominates the stretch, else "silence" (a paused
    stretch) or "no clear tone": a quiet channel must not be named after the louder tone."""
    n = len(samples)
    energy = sum(x * x for x in samples)
    if n == 0 or energy / n < 30**2:
        return "silence"
    # Measured block by block and the powers added: a jump in the tone's phase (a frame the
    # jitter buffer dropped or repeated on a loaded machine) would cancel it out over the whole
    # stretch, though every block still holds the tone.
    blocks = [samples[i : i + TONE_BLOCK] for i in range(0, n - TONE_BLOCK + 1, TONE_BLOCK)] or [samples]
    m = len(blocks[0])
    freq, power = max(((f, sum(_power(b, f) for b in blocks)) for f in (440, 1000)), key=lambda fp: fp[1])
    # A pure tone puts half of m * energy into its Goertzel bins; noise or speech far less.
    return f"{freq} Hz" if power / (m * energy) > 0.1 else "no clear tone"


def _write_identity(path: Path) -> str:
    if shutil.which("age-keygen"):
        subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    else:
        ident = age.Identity.generate()
        path.write_text(f"# created: gateway demo\n# public key: {ident.recipient()}\n{ident.encode()}\n")
    path.chmod(0o600)
    return str(age.load_identity_file(path)[0].recipient())


def _follow_events(path: Path, names: dict[str, str], stop: threading.Event) -> None:
    for e in follow(path, stop):
        call = e.get("call", "")
        if e["type"] == EventType.CALL_STARTED:
            names[call] = e.get("caller_display") or call
            print(f"   [{names[call]:8}] answered, playing the notice (caller {e.get('caller_masked')})")
        elif e["type"] == EventType.CALL_CONSENT:
            print(
                f"   [{names.get(call, call):8}] consent {e['consent']}"
                + (f" ({e['reason']})" if e.get("reason") else "")
            )
        elif e["type"] == EventType.CALL_STATE and e["state"] in (CallState.BRIDGED, CallState.ENDED):
            print(f"   [{names.get(call, call):8}] {e['state']}; recording: {e.get('recording')}")
        elif e["type"] == EventType.CALL_RECORDING and e["recording"] in (
            RecordingState.RECORDING,
            RecordingState.DISCARDED,
            RecordingState.SAVED,
        ):
            print(f"   [{names.get(call, call):8}] recording {e['recording']}")


def _wait_for_workers(status: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            st = json.loads(status.read_text())
            if st["workers"] and all(w["ready"] for w in st["workers"]):
                print(
                    f"   Kamailio pid {st['kamailio']['pid']} dispatches to {len(st['workers'])} workers "
                    f"({st['capacity_calls']} concurrent calls)"
                )
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise SystemExit("gateway: the workers did not become ready")


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _demo_users(gw: Gateway) -> dict[str, tuple[str, str]]:
    """Two dashboard logins with fresh random passwords (printed once, stored as argon2id)."""
    import secrets

    users = gw.user_store()
    accounts = Accounts(users, gw.index)
    logins = {}
    for name, role in (("demo-supervisor", "supervisor"), ("demo-auditor", "auditor")):
        password = secrets.token_urlsafe(12)
        accounts.add("cli:demo", name, role, password)
        logins[name] = (role, password)
    users.close()
    gw.close()
    return logins


def _phone(role: str, port: int, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "simphone.phone", role, "--port", str(port), "--quiet", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run(args: argparse.Namespace) -> int:
    harden_process()  # it decrypts a recording in memory
    base: Path = args.dir.resolve()
    if base.exists():
        if not (base / MARKER).exists():
            raise SystemExit(f"gateway: {base} exists and is not a demo directory; choose another --dir")
        shutil.rmtree(base)
    base.mkdir(parents=True, mode=0o700)
    (base / MARKER).touch()
    key = base / "operator-key.txt"
    recipient = _write_identity(key)
    print(f"1. Operator key: the private identity is in {key}; in production it never touches the gateway.")
    print(f"   The gateway gets only the public recipient {recipient}.")
    sip_port, pbx_port = free_port(), free_port()
    gw_dir = base / "gateway"
    init.create(  # the demo does the next steps itself: init's "next:" lines are not printed
        argparse.Namespace(
            dir=gw_dir,
            recipient=[recipient],
            sip_listen=f"127.0.0.1:{sip_port}",
            pbx=f"sip:agent@127.0.0.1:{pbx_port}",
            mode="opt-out",
            force=False,
            workers=2,
            trunk=[],
        )
    )
    config = gw_dir / "gateway.toml"
    worker_base = free_port_run(2)
    dash_port = 8080 if _port_free(8080) else free_port()
    config.write_text(
        config.read_text()
        .replace("grace_s = 3.0", "grace_s = 1.0")
        .replace("worker_base_port = 5100", f"worker_base_port = {worker_base}")
        .replace('metrics_listen = "127.0.0.1:9464"', f'metrics_listen = "127.0.0.1:{free_port()}"')
        .replace('listen = "127.0.0.1:8080"', f'listen = "127.0.0.1:{dash_port}"')
    )
    logins = _demo_users(Gateway.open(config))
    gateway = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--config", str(config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert gateway.stdout is not None
    line = ""
    for line in gateway.stdout:  # pjsua prints a few lines of its own before it is configured
        if "listening" in line:
            break
    if "listening" not in line:
        gateway.kill()
        raise SystemExit(
            f"gateway: the gateway did not start: {gateway.stderr.read() if gateway.stderr else ''}"
        )
    print(f"2. {line.strip()}")
    gw = Gateway.open(config)
    _wait_for_workers(gw.layout.node_status)
    print(
        f"   Dashboard: http://127.0.0.1:{dash_port}/  (loopback only; from another machine: "
        f"ssh -L {dash_port}:127.0.0.1:{dash_port} this-host)"
    )
    for name, (role, password) in logins.items():
        print(f"     log in as {name:16} password {password}   ({role})")
    if args.wait > 0:
        print(
            f"   The calls start in {args.wait:.0f} s: open the dashboard now to watch them live.", flush=True
        )
        time.sleep(args.wait)
    names: dict[str, str] = {}
    stop = threading.Event()
    followers = [
        threading.Thread(
            target=_follow_events,
            args=(gw.layout.worker_events(i), names, stop),
            daemon=True,
        )
        for i in range(2)
    ]
    for follower in followers:
        follower.start()
    print("3. A PBX agent answers with a 1000 Hz tone; callers send 440 Hz. The notice is speech (~10 s).")
    target = f"sip:1177@127.0.0.1:{sip_port}"
    agent = _phone("pbx", pbx_port, "--tone", "1000", "--calls", "3", "--timeout", "90")
    anna = _phone(
        "caller",
        free_port(),
        "--target",
        target,
        "--number",
        "+46701234567",
        "--display",
        "Anna",
        "--hangup-after",
        "17",
        "--timeout",
        "60",
    )
    time.sleep(0.5)
    bertil = _phone(
        "caller",
        free_port(),
        "--target",
        target,
        "--number",
        "+46702222222",
        "--display",
        "Bertil",
        "--digits",
        "9@3",
        "--hangup-after",
        "8",
        "--timeout",
        "60",
    )
    bertil.wait(timeout=60)
    cecilia = _phone(
        "caller",
        free_port(),
        "--target",
        target,
        "--number",
        "+46703333333",
        "--display",
        "Cecilia",
        "--digits",
        "*@14,9@14.3",
        "--hangup-after",
        "17",
        "--timeout",
        "60",
    )
    for p in (anna, cecilia, agent):
        try:
            p.wait(timeout=90)
        except subprocess.TimeoutExpired:
            p.kill()
    if args.linger > 0:
        print(
            f"   The calls are over. The node and its dashboard stay up for {args.linger:.0f} s "
            "(the auditor's Audit tab shows the consent decisions and the chain); Ctrl-C stops it sooner.",
            flush=True,
        )
        try:
            time.sleep(args.linger)
        except KeyboardInterrupt:
            pass
    gateway.send_signal(signal.SIGTERM)
    gateway.wait(timeout=30)
    stop.set()
    for follower in followers:
        follower.join(timeout=2)
    print("4. Recordings (metadata only; the gateway cannot read them):")
    recordings = gw.index.list_recordings()
    for r in recordings:
        print(f"   {r.id}  {r.status:10} {r.duration_s or 0:5.1f} s  {r.bytes:7d} bytes")
    complete = [r for r in recordings if r.status == RecordingStatus.COMPLETE]
    if not complete:
        print("   (no complete recording: something went wrong; see the gateway's log)")
        return 1
    rec = complete[0]
    with gw.store.open(rec.object_name) as f:
        plain = age.AgeReader(f, age.load_identity_file(key)).read_all()
    info = wav.parse_header(plain)
    samples = array("h", plain[info.data_offset :])
    mid = len(samples) // 2 - len(samples) // 2 % 2
    window = samples[mid : mid + 2 * RATE]
    for ch, name in ((0, "caller"), (1, "helpline")):
        print(f"   decrypted {rec.id}: channel {ch} ({name}) carries {_tone_name(window[ch::2])}")
    path = gw.config.paths.spool_dir / rec.object_name
    gw.close()
    print("5. Decrypt it yourself with the plain age CLI:")
    print(f"     age -d -i {key} {path} > call.wav")
    print("   or with the gateway (the export is written to the audit log):")
    print(f"     .venv/bin/gateway --config {config} recordings export {rec.id} -i {key} -o call.wav")
    print(f"   Consent receipts and the audit log: .venv/bin/gateway --config {config} audit show")
    return 0 if os.path.exists(path) else 1
