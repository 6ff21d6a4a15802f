"""`gateway retention run`, `gateway hold add|remove|list`, `gateway subject find|export|erase`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import age
from ..app import retention
from ..app.gateway import Gateway
from ..errors import GatewayError, NotFoundError
from ..governance import subject
from ..storage import index as ix
from ..storage import pii
from ..storage.index import NotFound
from . import actor, harden_process, load_identities, open_gateway
from .exitcodes import EXIT_STORAGE
from .output import printable


def register(sub: argparse._SubParsersAction) -> None:
    rp = sub.add_parser("retention", help="delete recordings past their retention (held ones are kept)")
    rsub = rp.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = rsub.add_parser("run", help="delete expired recordings now")
    run.add_argument("--dry-run", action="store_true", help="list what would be deleted; delete nothing")
    run.set_defaults(func=cmd_retention)

    hp = sub.add_parser("hold", help="legal holds: exempt recordings from retention and erasure")
    hsub = hp.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, helptext in (("add", "place a hold"), ("remove", "release holds")):
        p = hsub.add_parser(name, help=helptext)
        target = p.add_mutually_exclusive_group(required=True)
        target.add_argument("id", nargs="?", help="recording id")
        target.add_argument("--number", help="every recording of this caller number (needs --identity)")
        p.add_argument(
            "--identity", "-i", help="age identity file, or - for stdin: numbers are stored only encrypted"
        )
        p.add_argument("--reason", required=True)
        p.set_defaults(func=cmd_hold, hold_action=name)
    lp = hsub.add_parser("list", help="active holds")
    lp.set_defaults(func=cmd_hold_list)

    sp = sub.add_parser("subject", help="data-subject requests by caller number")
    ssub = sp.add_subparsers(dest="action", required=True, metavar="ACTION")
    f = ssub.add_parser("find", help="the calls and recordings of a number")
    e = ssub.add_parser("export", help="decrypt a subject's recordings and receipts (access request)")
    x = ssub.add_parser("erase", help="delete a subject's recordings and forget their number")
    for q in (f, e, x):
        q.add_argument(
            "--number",
            required=True,
            help="international (+46...) or, with [numbers] country_code, national form",
        )
        q.add_argument(
            "--identity",
            "-i",
            required=True,
            help="age identity file, or - for stdin: the stored numbers are decrypted to find the subject's",
        )
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=cmd_find)
    e.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        help="new directory to write into (created 0700; an existing one must be empty and 0700)",
    )
    e.set_defaults(func=cmd_export)
    x.set_defaults(func=cmd_erase)


def cmd_retention(args: argparse.Namespace) -> int:
    gw = open_gateway(args)
    report = retention.run(
        gw.store, gw.index, gw.config.recording.retention_days, actor(), dry_run=args.dry_run
    )
    verb = "would delete" if args.dry_run else "deleted"
    for rec_id in report.deleted:
        print(f"{verb} {rec_id}")
    for rec_id in report.held:
        print(f"kept {rec_id}: on legal hold")
    for rec_id in report.missing:
        print(f"{rec_id}: object was already missing; marked deleted")
    for rec_id, error in report.failed.items():
        print(f"NOT deleted {rec_id}: {error}")
    print(f"{verb} {len(report.deleted)}, kept {len(report.held)} on hold, {len(report.failed)} failed")
    return EXIT_STORAGE if report.failed else 0


def _targets(gw: Gateway, args: argparse.Namespace) -> tuple[str, list[ix.RecordingRow]]:
    if args.id:
        try:
            row = gw.index.get_recording(args.id)
        except NotFound:
            raise NotFoundError(f"no recording {args.id}") from None
        return row.id, [row]
    if not args.identity:
        raise GatewayError("--number needs --identity: caller numbers are stored only encrypted")
    found = _search(gw, args)
    if not found.calls:
        raise NotFoundError(f"no calls from {found.searched}")
    return found.label, found.recordings


def cmd_hold(args: argparse.Namespace) -> int:
    gw = open_gateway(args)
    label, rows = _targets(gw, args)
    who = actor()
    if args.hold_action == "add":
        gone = [r for r in rows if r.status in (ix.DELETED, ix.DISCARDED)]
        if args.id and gone:
            raise NotFoundError(f"recording {args.id} was {gone[0].status}: nothing left to hold")
        live = [r for r in rows if r not in gone]
        for r in live:
            gw.index.add_hold(r.id, args.reason, who)
            gw.set_legal_hold(r.id, r.object_name, True)
        gw.index.append_audit(
            who, "hold.added", label, {"recordings": [r.id for r in live], "reason": args.reason}
        )
        print(f"held {len(live)} recording(s)")
    else:
        released = 0
        for r in rows:
            n = gw.index.release_holds(r.id, args.reason, who)
            released += n
            if n and not gw.index.active_holds(r.id):
                gw.set_legal_hold(r.id, r.object_name, False)
        gw.index.append_audit(
            who,
            "hold.removed",
            label,
            {"recordings": [r.id for r in rows], "reason": args.reason, "released": released},
        )
        print(f"released {released} hold(s)")
    return 0


def cmd_hold_list(args: argparse.Namespace) -> int:
    gw = open_gateway(args)
    holds = gw.index.active_holds()
    for h in holds:
        print(
            f"{printable(h['recording_id'])}  since {printable(h['created_at'])}  "
            f"by {printable(h['actor'])}: {printable(h['reason'])}"
        )
    print(f"{len(holds)} active hold(s)")
    return 0


def _search(gw: Gateway, args: argparse.Namespace) -> subject.SubjectRecords:
    identities = load_identities(args.identity)
    try:
        found = subject.find(gw.index, identities, args.number, gw.config.numbering)
    except pii.NumberError as e:
        raise GatewayError(str(e)) from None
    stripped = pii.strip_number(args.number)
    how = f"searched for {found.searched}" + (f" (given as {stripped})" if stripped != found.searched else "")
    print(f"{how}: {found.numbers_checked} stored number(s) checked", file=sys.stderr)
    if found.numbers_unreadable:
        print(
            f"gateway: warning: {found.numbers_unreadable} stored number(s) are not encrypted to this "
            "identity and were not searched: repeat with the identity of every recipient the gateway "
            "has had",
            file=sys.stderr,
        )
    return found


def _find(args: argparse.Namespace) -> tuple[Gateway, subject.SubjectRecords]:
    harden_process()
    gw = open_gateway(args)
    found = _search(gw, args)
    if not found.calls:
        gw.index.append_audit(actor(), "subject.found", found.label, {"calls": 0, "recordings": 0})
        raise NotFoundError(f"no calls from {found.searched}")
    return gw, found


def cmd_find(args: argparse.Namespace) -> int:
    gw, found = _find(args)
    gw.index.append_audit(
        actor(),
        "subject.found",
        found.label,
        {"calls": len(found.calls), "recordings": len(found.recordings)},
    )
    print(f"audit log: {found.label} (requests are never logged by number)", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {
                    "calls": [c.id for c in found.calls],
                    "recordings": [
                        {
                            "id": r.id,
                            "status": r.status,
                            "started_at": r.started_at,
                            "held": bool(gw.index.active_holds(r.id)),
                        }
                        for r in found.recordings
                    ],
                }
            )
        )
        return 0
    for c in found.calls:
        recs = [r for r in found.recordings if r.call_id == c.id]
        print(
            f"call {c.id}  {c.started_at}  route {c.route}  recordings: "
            + (
                ", ".join(
                    f"{r.id} ({r.status}{', held' if gw.index.active_holds(r.id) else ''})" for r in recs
                )
                or "none"
            )
        )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    gw, found = _find(args)
    identities = load_identities(args.identity)
    who = actor()
    try:
        written = subject.export(gw.store, gw.index, found, identities, args.output)
    except (subject.ExportDirError, OSError, age.AgeError) as e:
        gw.index.append_audit(
            who,
            "subject.export_failed",
            found.label,
            {"recordings": [r.id for r in found.recordings], "error": e.__class__.__name__},
        )
        if isinstance(e, subject.ExportDirError):
            raise GatewayError(str(e)) from None
        if isinstance(e, OSError):
            raise GatewayError(f"cannot write {args.output}: {e.strerror}; nothing was left there") from None
        raise
    gw.index.append_audit(
        who,
        "subject.exported",
        found.label,
        {"recordings": [r.id for r in found.recordings], "calls": len(found.calls), "files": len(written)},
    )
    for p in written:
        print(p)
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    gw, found = _find(args)
    report = subject.erase(gw.store, gw.index, found, actor())
    print(f"deleted {len(report.deleted)} recording(s); forgot the number on {report.calls_scrubbed} call(s)")
    for rec_id in report.held:
        print(f"kept {rec_id}: on legal hold (release it with `gateway hold remove {rec_id}` first)")
    for rec_id, error in report.failed.items():
        print(f"NOT deleted {rec_id}: {error}; its call keeps the number so the erasure can be run again")
    return EXIT_STORAGE if report.failed else 0
