"""`gateway audit verify`: check the audit log's hash chain."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from ..errors import EXIT_FINDINGS
from . import open_gateway


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="scan for exposure (default); verify or show the audit log")
    p.add_argument("--json", action="store_true")
    p.add_argument("--temp-dir", action="append", type=Path, default=None,
                   help="temporary directory to scan for plaintext audio (default: the system's)")
    p.set_defaults(func=cmd_scan)
    asub = p.add_subparsers(dest="action", required=False, metavar="ACTION")
    scan = asub.add_parser("scan", help="the exposure scan (what `gateway audit` does)")
    scan.add_argument("--json", action="store_true")
    scan.add_argument("--temp-dir", action="append", type=Path, default=None)
    scan.set_defaults(func=cmd_scan)
    vp = asub.add_parser("verify", help="verify the hash chain; name the first broken entry")
    vp.add_argument("--json", action="store_true")
    vp.set_defaults(func=cmd_verify)
    sp = asub.add_parser("show", help="print the audit log")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_show)


def cmd_verify(args: argparse.Namespace) -> int:
    gw = open_gateway(args)
    v = gw.index.verify_audit()
    if args.json:
        print(json.dumps({"ok": v.ok, "entries": v.entries, "head_seq": v.head_seq, "head_hash": v.head_hash,
                          "problem": v.problem.__dict__ if v.problem else None}))
    elif v.ok:
        print(f"audit log intact: {v.entries} entries, head #{v.head_seq} {v.head_hash}")
        print("(record the head elsewhere: entries removed from the end can only be seen against it)")
    else:
        assert v.problem is not None
        print(f"audit log BROKEN at entry #{v.problem.seq} ({v.problem.kind}): {v.problem.message}")
    return 0 if v.ok else EXIT_FINDINGS


def cmd_show(args: argparse.Namespace) -> int:
    gw = open_gateway(args)
    for e in gw.index.audit_entries():
        if args.json:
            print(json.dumps(e.__dict__, sort_keys=True))
        else:
            print(f"#{e.seq:<5} {e.ts}  {e.actor:16} {e.action:24} {e.subject}  {json.dumps(e.details, sort_keys=True)}")
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    from ..governance import exposure

    gw = open_gateway(args)
    temp_dirs = args.temp_dir if args.temp_dir is not None else [Path(tempfile.gettempdir())]
    findings = exposure.scan(gw, temp_dirs)
    if args.json:
        print(json.dumps({"ok": not findings, "findings": [f.as_dict() for f in findings]}))
    else:
        for f in findings:
            print(f"[{f.kind}] {f.where}: {f.problem}\n    fix: {f.fix}")
        print(f"{len(findings)} finding(s)" if findings else "no exposure found")
    return EXIT_FINDINGS if findings else 0
