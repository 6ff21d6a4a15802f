"""Coverage-guided fuzzing (atheris, libFuzzer) of the parsers that take outside input, for
longer than the suite's bounded Hypothesis properties (tests/test_fuzz.py) can run.

    .venv/bin/pip install atheris          # not a test dependency: CI never needs it
    .venv/bin/python bench/fuzz.py --seconds 120                # every target, one after another
    .venv/bin/python bench/fuzz.py --seconds 600 --target journal

Each target runs in a process of its own, instrumented, from a seed corpus of valid inputs,
under the system temp directory. A target's own clear error (AgeError, WavError, ConfigError...)
is an answer; any other exception is a finding: libFuzzer stops, and the input that caused it
is kept beside the run's corpus. The table gives executions, coverage reached and findings.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["age", "keys", "wav", "sniff", "config", "journal", "channel", "siprec", "sdp", "sipmsg"]


def harness(name: str) -> tuple[Callable[[bytes], None], list[bytes]]:
    """The target's one-input function and its seed corpus."""
    from gateway import age

    if name == "age":
        ident = age.Identity.generate()
        sealed = age.encrypt(b"x" * 70_000, [ident.recipient()])

        def run_age(data: bytes) -> None:
            try:
                age.AgeReader(io.BytesIO(data), [ident]).read_all()
            except age.AgeError:
                pass

        return run_age, [sealed, sealed[:300]]
    if name == "keys":

        def run_keys(data: bytes) -> None:
            text = data.decode("utf-8", "replace")
            for parse in (age.parse_recipient, age.parse_identity):
                try:
                    parse(text)
                except age.AgeError:
                    pass

        ident = age.Identity.generate()
        return run_keys, [ident.encode().encode(), str(ident.recipient()).encode()]
    if name in ("wav", "sniff"):
        from gateway.app.legacy import NotAudio, sniff
        from gateway.recording import wav

        seeds = [
            wav.header(8000, 2, 16, 64) + bytes(64),
            b"ID3\x03\x00\x00\x00\x00\x00\x10" + bytes(16) + b"\xff\xfb\x90\x64",
        ]

        def run_wav(data: bytes) -> None:
            try:
                wav.parse_header(data, total_size=len(data))
            except wav.WavError:
                pass

        def run_sniff(data: bytes) -> None:
            try:
                sniff(data, len(data))
            except NotAudio:
                pass

        return (run_wav if name == "wav" else run_sniff), seeds
    if name == "config":
        from gateway.config import ConfigError, _load, example

        where = Path(tempfile.mkdtemp(prefix="gw-fuzz-cfg-"))
        text = example().replace('data_dir = "/var/lib/consent-gateway"', f'data_dir = "{where / "data"}"')

        def run_config(data: bytes) -> None:
            try:
                _load(where / "gateway.toml", data)
            except ConfigError:
                pass

        return run_config, [text.encode()]
    if name == "journal":
        from gateway.storage import journal
        from gateway.storage.index import SqliteIndex

        idx = SqliteIndex(Path(tempfile.mkdtemp(prefix="gw-fuzz-journal-")) / "index.sqlite3", create=True)
        seeds = [
            json.dumps(
                {"id": "a", "at": "t", "op": "add_call", "args": {"call": {"id": "c", "started_at": "s"}}}
            ),
            json.dumps({"id": "b", "at": "t", "op": "update_recording", "args": {"rec_id": "r", "bytes": 5}}),
            json.dumps(
                {
                    "id": "c",
                    "at": "t",
                    "op": "append_audit",
                    "args": {"actor": "a", "action": "b", "subject": "c"},
                }
            ),
        ]

        def run_journal(data: bytes) -> None:
            try:
                entry = json.loads(data)
            except ValueError:
                return
            try:
                journal.apply(idx, entry)
            except ValueError:
                pass

        return run_journal, [s.encode() for s in seeds]
    if name == "channel":
        from gateway.supervisor.channel import Channel, ChannelError

        ch = Channel(b"k" * 32)

        def run_channel(data: bytes) -> None:
            try:
                ch.open(data.decode("utf-8", "replace"))
            except ChannelError:
                pass

        return run_channel, [ch.seal({"type": "status"}).encode()]
    if name == "siprec":
        from gateway.sip import siprec

        head = "INVITE sip:srs@gw SIP/2.0\r\nContent-Type: multipart/mixed;boundary=b\r\n\r\n"
        corpus = [p.read_bytes() for p in sorted((ROOT / "tests/siprec").rglob("*")) if p.is_file()][:20]

        def run_siprec(data: bytes) -> None:
            text = data.decode("utf-8", "replace")
            verdict = siprec.read_offer(text if text.startswith("INVITE") else head + text)
            assert isinstance(verdict, siprec.RecordingOffer | siprec.Rejection)
            try:
                siprec.parse_metadata(text)
            except siprec.MetadataError:
                pass

        return run_siprec, corpus or [
            b"--b\r\nContent-Type: application/rs-metadata+xml\r\n\r\n<recording/>\r\n--b--"
        ]
    if name == "sdp":
        from gateway.sip import secure

        def run_sdp(data: bytes) -> None:
            text = data.decode("utf-8", "replace")
            for check in (secure.carries_sdes_keys, secure.offers_srtp, secure.hop_is_tls):
                assert isinstance(check(text), bool)

        sdp = (
            "INVITE sip:1177@gw SIP/2.0\r\nVia: SIP/2.0/TLS a\r\nContent-Type: application/sdp\r\n\r\n"
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            "m=audio 4000 RTP/SAVP 0 8 101\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + "A" * 40 + "\r\n"
        )
        return run_sdp, [sdp.encode()]
    if name == "sipmsg":
        from gateway.sip import message

        def run_sipmsg(data: bytes) -> None:
            text = data.decode("utf-8", "replace")
            message.headers(text)
            message.parse_invite(text)
            message.media_count(text)
            try:
                message.parse_config_uri(text)
            except message.UriError:
                pass

        invite = 'INVITE sip:1177@x SIP/2.0\r\nVia: SIP/2.0/UDP a\r\nFrom: "A" <sip:+4670@b>;tag=1\r\n\r\n'
        return run_sipmsg, [invite.encode(), b"sip:helpline@127.0.0.1:5070;transport=tls"]
    raise SystemExit(f"unknown target {name}")


def child(name: str, seconds: int, workdir: Path) -> None:
    import atheris

    with atheris.instrument_imports():
        import gateway.age  # noqa: F401
        import gateway.app.legacy  # noqa: F401
        import gateway.config  # noqa: F401
        import gateway.recording.wav  # noqa: F401
        import gateway.sip.message  # noqa: F401
        import gateway.sip.secure  # noqa: F401
        import gateway.sip.siprec  # noqa: F401
        import gateway.storage.journal  # noqa: F401
        import gateway.supervisor.channel  # noqa: F401
    one, seeds = harness(name)
    corpus = workdir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(seeds):
        (corpus / f"seed-{i}").write_bytes(s)
    atheris.Setup(
        [
            sys.argv[0],
            f"-max_total_time={seconds}",
            f"-artifact_prefix={workdir}/",
            "-max_len=100000",
            str(corpus),
        ],
        one,
    )
    atheris.Fuzz()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60, help="per target")
    ap.add_argument("--target", action="append", choices=TARGETS, help="default: every target")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.seconds, Path(args.workdir))
        return 0
    base = Path(tempfile.mkdtemp(prefix="gw-fuzz-"))
    print("| target | seconds | executions | coverage (edges) | findings |\n|---|---|---|---|---|")
    failed = 0
    for name in args.target or TARGETS:
        work = base / name
        work.mkdir()
        res = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                name,
                "--seconds",
                str(args.seconds),
                "--workdir",
                str(work),
            ],
            cwd=work,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        out = res.stdout + res.stderr
        runs = re.findall(r"Done (\d+) runs", out)
        cov = re.findall(r"cov: (\d+)", out)
        crashes = sorted(p.name for p in work.glob("crash-*"))
        finding = (
            ", ".join(crashes) if crashes else ("none" if res.returncode == 0 else f"exit {res.returncode}")
        )
        if crashes or res.returncode != 0:
            failed += 1
            tail = [line for line in out.splitlines() if "Error" in line or "Traceback" in line][-3:]
            finding += " " + " / ".join(tail)
        print(
            f"| {name} | {args.seconds} | {runs[-1] if runs else '?'} | {cov[-1] if cov else '?'} | {finding} |",
            flush=True,
        )
    print(f"\nworking files: {base}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
