"""`gateway recordings list|export|verify`."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from ..app import exports, rewrap
from ..app.runtime import harden_process
from ..errors import NotFoundError
from ..recording.verify import verify_all
from ..storage import index as ix
from ..storage.index import NotFound
from ..storage.rows import STATUSES, RecordingRow
from . import actor, load_identities, open_gateway
from .exitcodes import EXIT_FINDINGS

PUBLIC_FIELDS = (
    "id",
    "status",
    "origin",
    "started_at",
    "finished_at",
    "duration_s",
    "bytes",
    "media_type",
    "route",
    "tenant",
    "call_id",
    "sha256",
    "error",
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recordings", help="list, export (decrypt) and verify recordings")
    rsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    lp = rsub.add_parser("list", help="recordings' metadata (never audio)")
    lp.add_argument("--json", action="store_true")
    lp.add_argument("--status", choices=STATUSES)
    lp.set_defaults(func=cmd_list)
    ep = rsub.add_parser("export", help="decrypt one recording with your identity file")
    ep.add_argument("id")
    ep.add_argument(
        "--identity", "-i", required=True, help="age identity file (as age-keygen writes), or - for stdin"
    )
    ep.add_argument("-o", "--output", required=True, help="file (.wav, .mp3, .opus, .ogg) or - for stdout")
    ep.add_argument(
        "--recover", action="store_true", help="export every intact chunk of a recording that lacks its end"
    )
    ep.add_argument("--force", action="store_true", help="overwrite the output file")
    ep.set_defaults(func=cmd_export)
    fp = rsub.add_parser(
        "fetch",
        help="copy one recording's ciphertext (and its wrapped key, if it has one) for the age CLI",
    )
    fp.add_argument("id")
    fp.add_argument("-o", "--output", required=True, help="new file for the age ciphertext")
    fp.set_defaults(func=cmd_fetch)
    vp = rsub.add_parser("verify", help="check files, hashes and structure (no key needed)")
    vp.add_argument("id", nargs="?")
    vp.set_defaults(func=cmd_verify)
    cp = rsub.add_parser("recover", help="mark recordings of crashed writers truncated (safe while running)")
    cp.set_defaults(func=cmd_recover)
    wp = rsub.add_parser(
        "rewrap",
        help="re-encrypt stored recordings to [recording] recipients (e.g. new post-quantum keys)",
        description="Give every finished recording the identity opens a new header, wrapped to the "
        "recipients now in [recording] recipients: the audio is never decrypted (only each file key "
        "is, in memory), the sealed payload is copied into a new object, the old one deleted, the "
        "index signed again and each recording audited. Resumable: run it again after an interruption; "
        "what is done already no longer opens with the old identity and is passed over.",
    )
    wp.add_argument("id", nargs="?", help="one recording (default: all)")
    wp.add_argument(
        "--identity",
        "-i",
        required=True,
        help="the identity the recordings are encrypted to now, or - for stdin",
    )
    wp.set_defaults(func=cmd_rewrap)


def _get(index: ix.Index, rec_id: str) -> RecordingRow:
    try:
        return index.get_recording(rec_id)
    except NotFound:
        raise NotFoundError(f"no recording {rec_id}") from None


def cmd_list(args: argparse.Namespace) -> int:
    gw = open_gateway(args)
    rows = gw.index.list_recordings(args.status)
    if args.json:
        json.dump([{k: asdict(r)[k] for k in PUBLIC_FIELDS} for r in rows], sys.stdout, indent=2)
        print()
        return 0
    if not rows:
        print("no recordings")
        return 0
    tenants = bool(gw.config.tenancy.listed) or any(r.tenant for r in rows)
    head = f"{'ID':16}  {'STARTED (UTC)':24}  {'STATUS':10}  {'DURATION':>9}  {'SIZE':>10}  ORIGIN"
    print(head + ("  TENANT" if tenants else ""))
    for r in rows:
        dur = f"{r.duration_s:.1f}s" if r.duration_s is not None else "-"
        line = f"{r.id:16}  {r.started_at:24}  {r.status:10}  {dur:>9}  {r.bytes:>10}  {r.origin}"
        print(f"{line:<{len(head)}}  {r.tenant or '-'}" if tenants else line)
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """The stored age file as it is (no key needed, nothing decrypted), and for a recording with
    a key of its own that key, wrapped to the operators, beside it (OUTPUT.key): what the age
    CLI needs to open it without the gateway."""
    gw = open_gateway(args)
    row = exports.recording(gw, args.id, "fetch")
    outputs = exports.fetch(gw, row, args.output, actor())
    print(f"wrote {args.output} (age ciphertext, {row.bytes} bytes)", file=sys.stderr)
    if len(outputs) == 2:
        print(
            f"wrote {outputs[1]} (the recording's own key, age-encrypted to the operators); open with:\n"
            f"  age -d -i YOUR-IDENTITY {outputs[1]} | age -d -i - -o recording.wav {args.output}",
            file=sys.stderr,
        )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    harden_process()
    gw = open_gateway(args)
    row = exports.recording(gw, args.id, "export")
    identities = load_identities(args.identity)
    done = exports.export(gw, row, identities, args.output, actor(), force=args.force, recover=args.recover)
    note = " (truncated: the end of the recording was never written)" if done.truncated else ""
    if args.output != "-":
        print(f"wrote {args.output}: {done.bytes_out} bytes{note}", file=sys.stderr)
    elif note:
        print(f"gateway: warning: recording {row.id}{note}", file=sys.stderr)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    gw = open_gateway(args)
    if args.id:
        _get(gw.index, args.id)
    signers = gw.signers()
    checked, findings = verify_all(gw.store, gw.index, args.id, signers.lookup)
    if not signers.by_fingerprint:
        print("note: no signing key here or in the index: signatures not checked")
    for s in signers.unpinned:
        print(
            f"note: trusting node {s.node}'s key {s.fingerprint} from the index (pin it with [audit] signers)"
        )
    for f in findings:
        print(f"{f.recording}: {f.problem}")
    print(f"{checked} recording(s) checked, {len(findings)} problem(s)")
    return EXIT_FINDINGS if findings else 0


def cmd_recover(args: argparse.Namespace) -> int:
    gw = open_gateway(args)
    service = gw.recording_service(None, actor=actor())
    recovered = service.recover()
    for rec_id in recovered:
        row = gw.index.get_recording(rec_id)
        print(f"{rec_id}: {row.status} ({row.bytes} bytes sealed): {row.error}")
    print(f"{len(recovered)} recording(s) recovered")
    return 0


def cmd_rewrap(args: argparse.Namespace) -> int:
    harden_process()  # file keys pass through memory
    identities = load_identities(args.identity)
    gw = open_gateway(args)
    rows = [_get(gw.index, args.id)] if args.id else gw.index.list_recordings()
    report = rewrap.rewrap(gw, rows, identities, actor(), lambda rec_id: print(f"{rec_id}: rewrapped"))
    print(
        f"{report.rewrapped} recording(s) rewrapped, {report.passed} passed over "
        "(already rewrapped, or not this identity's)"
    )
    print(
        f"{report.calls_resealed} call(s) with sealed numbers re-encrypted, {report.calls_passed} passed over"
    )
    return 0
