"""`gateway retention run`, `gateway hold add|remove|list`, `gateway subject find|export|erase`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import age
from ..app import holds, retention
from ..app import subject as requests
from ..app.gateway import Gateway
from ..app.runtime import harden_process
from ..errors import GatewayError, NotFoundError
from ..governance.subject import SubjectRecords
from ..storage import pii
from ..storage.rows import RecordingRow
from . import actor, load_identities, open_gateway
from .exitcodes import EXIT_STORAGE
from .output import printable


def register(sub: argparse._SubParsersAction) -> None:
    rp = sub.add_parser("retention", help="delete recordings past their retention (held ones are kept)")
    rsub = rp.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = rsub.add_parser("run", help="delete expired recordings now")
    run.add_argument("--dry-run", action="store_true", help="list what would be deleted; delete nothing")
    run.add_argument("--tenant", help="only this tenant's recordings (a controller's own run)")
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
        _tenant_option(p)
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
        _tenant_option(q)
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


def _tenant_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tenant",
        help="search only this tenant's calls (a controller's own request); its audit entries "
        "then belong to that tenant's `audit export --tenant`",
    )


def cmd_retention(args: argparse.Namespace) -> int:
    gw = open_gateway(args)
    if args.tenant is not None:
        gw.config.tenancy.require(args.tenant)
    report = retention.run(
        gw.store,
        gw.index,
        retention.Retention.of(gw.config),
        actor(),
        dry_run=args.dry_run,
        tenant=args.tenant,
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


def _targets(gw: Gateway, args: argparse.Namespace) -> tuple[str, list[RecordingRow]]:
    if not args.identity:
        raise GatewayError("--number needs --identity: caller numbers are stored only encrypted")
    found = _search(gw, args)
    if not found.calls:
        raise NotFoundError(f"no calls from {found.searched}")
    return found.label, found.recordings


def cmd_hold(args: argparse.Namespace) -> int:
    if args.id and args.tenant:
        raise GatewayError("--tenant goes with --number: a recording id names its own tenant")
    gw = open_gateway(args)
    if args.hold_action == "add":
        if args.id:
            live = holds.place_on(gw, args.id, args.reason, actor())
        else:
            label, rows = _targets(gw, args)
            live = holds.place(gw, label, rows, args.reason, actor())
        print(f"held {len(live)} recording(s)")
    else:
        if args.id:
            label, rows = args.id, [holds.one_recording(gw, args.id)]
        else:
            label, rows = _targets(gw, args)
        released = holds.release(gw, label, rows, args.reason, actor())
        print(f"released {released} hold(s)")
    return 0


def cmd_hold_list(args: argparse.Namespace) -> int:
    gw = open_gateway(args)
    active = gw.index.active_holds()
    for h in active:
        print(
            f"{printable(h['recording_id'])}  since {printable(h['created_at'])}  "
            f"by {printable(h['actor'])}: {printable(h['reason'])}"
        )
    print(f"{len(active)} active hold(s)")
    return 0


def _search(
    gw: Gateway, args: argparse.Namespace, identities: list[age.AnyIdentity] | None = None
) -> SubjectRecords:
    found = requests.search(gw, identities or load_identities(args.identity), args.number, args.tenant)
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


def cmd_find(args: argparse.Namespace) -> int:
    harden_process()
    gw = open_gateway(args)
    found = _search(gw, args)
    requests.found(gw, found, actor())
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
    harden_process()
    gw = open_gateway(args)
    identities = load_identities(args.identity)  # read once: it may come from stdin
    found = _search(gw, args, identities)
    for p in requests.export(gw, found, identities, args.output, actor()):
        print(p)
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    harden_process()
    gw = open_gateway(args)
    found = _search(gw, args)
    report = requests.erase(gw, found, actor())
    print(f"deleted {len(report.deleted)} recording(s); forgot the number on {report.calls_scrubbed} call(s)")
    for rec_id in report.held:
        print(f"kept {rec_id}: on legal hold (release it with `gateway hold remove {rec_id}` first)")
    for rec_id, error in report.failed.items():
        print(f"NOT deleted {rec_id}: {error}; its call keeps the number so the erasure can be run again")
    return EXIT_STORAGE if report.failed else 0
