"""`gateway audit`: the exposure scan; `audit verify|show|export|checkpoint`: the audit log's
hash chain, its signed checkpoints, and offline verification of an export."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..app import auditlog
from ..errors import ConfigError, GatewayError, InputError, KeyMaterialError
from ..governance.signers import Signers
from ..recording import signing
from ..storage import audit, migrate
from . import actor, open_gateway
from .exitcodes import EXIT_FINDINGS
from .output import printable


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="scan for exposure (default); verify or show the audit log")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--temp-dir",
        action="append",
        type=Path,
        default=None,
        help="a directory to scan whole for plaintext audio (repeatable; default: the system temp "
        "directories, for the gateway user's own files only)",
    )
    p.set_defaults(func=cmd_scan)
    asub = p.add_subparsers(dest="action", required=False, metavar="ACTION")
    scan = asub.add_parser("scan", help="the exposure scan (what `gateway audit` does)")
    scan.add_argument("--json", action="store_true")
    scan.add_argument("--temp-dir", action="append", type=Path, default=None)
    scan.set_defaults(func=cmd_scan)
    vp = asub.add_parser("verify", help="verify the hash chain; name the first broken entry")
    vp.add_argument("--json", action="store_true")
    vp.add_argument(
        "--checkpoint",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="a witness's record of signed checkpoints (syslog file, witness file, journal "
        "export): every head it saw must still be in the log (repeatable)",
    )
    vp.add_argument(
        "--head",
        action="append",
        default=[],
        metavar="HASH",
        help="a head printed by an earlier verify: it must still be in the log (repeatable)",
    )
    vp.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="EXPORT",
        help="verify an export (`gateway audit export`) instead of this gateway's log; "
        "needs no configuration",
    )
    vp.add_argument(
        "--public-key",
        action="append",
        type=Path,
        default=[],
        metavar="PEM",
        help="a node's signing.pub, for checkpoints (repeatable; default: this node's own and every "
        "node's published in the index, or only those in [audit] signers)",
    )
    vp.set_defaults(func=cmd_verify)
    kp = asub.add_parser("signers", help="the nodes' signing keys in the index, and whether each is trusted")
    kp.add_argument("--json", action="store_true")
    kp.set_defaults(func=cmd_signers)
    sp = asub.add_parser("show", help="print the audit log")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_show)
    ep = asub.add_parser(
        "export", help="the audit log as JSON lines anyone can re-verify (`audit verify --from`)"
    )
    ep.add_argument(
        "-o", "--output", default="-", help="file to write (created, never overwritten), or - for stdout"
    )
    ep.add_argument(
        "--tenant",
        metavar="NAME",
        help="one tenant's entries, every other entry sealed (its place in the chain and its "
        "content's digest): the tenant verifies the whole chain against the signed checkpoints "
        "without seeing other tenants' entries",
    )
    ep.set_defaults(func=cmd_export)
    cp = asub.add_parser("checkpoint", help="sign the log's head now and send it to the witnesses; print it")
    cp.set_defaults(func=cmd_checkpoint)


def _entries_from_export(path: Path) -> list[audit.AuditEntry]:
    entries = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            if not isinstance(d, dict):
                raise ValueError("not a JSON object")
            entries.append(audit.AuditEntry.from_json(d))
        except ValueError as e:
            raise InputError(f"{path} line {n}: {e}") from None
    return entries


def cmd_verify(args: argparse.Namespace) -> int:
    given = []
    for path in args.public_key:
        try:
            given.append(signing.load_public(path))
        except (OSError, ValueError) as e:
            raise KeyMaterialError(f"public key {path}: {getattr(e, 'strerror', None) or e}") from None
    archived: list[str] = []  # problems with the chains of nodes migrated into this index
    if args.source is not None:
        entries = _entries_from_export(args.source)
        signers = Signers(None, [], given=given)
    else:
        gw = open_gateway(args)
        entries = gw.index.audit_entries()
        signers = gw.signers(given)
        archived = migrate.check_archives(gw.index)
    checkpoints = []
    for f in args.checkpoint:
        try:
            checkpoints += audit.parse_checkpoints(
                f.read_text(encoding="utf-8", errors="replace").splitlines()
            )
        except OSError as e:
            raise InputError(f"cannot read {f}: {e.strerror}") from None
    if args.checkpoint and not checkpoints:
        raise InputError(f"no audit checkpoint found in {', '.join(map(str, args.checkpoint))}")
    if checkpoints and not signers.by_fingerprint and any(c.signature for c in checkpoints):
        raise ConfigError("signed checkpoints need the nodes' public keys: pass --public-key signing.pub")
    v = audit.verify(entries)
    problem = v.problem or audit.check_checkpoints(entries, checkpoints, signers.lookup)
    for head in args.head:
        problem = problem or audit.check_head(entries, head)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": problem is None and not archived,
                    "entries": v.entries,
                    "head_seq": v.head_seq,
                    "head_hash": v.head_hash,
                    "checkpoints": len(checkpoints),
                    "heads": len(args.head),
                    "problem": problem.__dict__ if problem else None,
                    "sealed": v.sealed,
                    "opaque": v.opaque,
                    "archived_chains": archived,
                }
            )
        )
    elif problem is None:
        print(f"audit log intact: {v.entries} entries, head #{v.head_seq} {v.head_hash}")
        if v.sealed:
            print(
                f"{v.sealed} of them sealed (other tenants'): checked through their digests"
                + (
                    f", except {v.opaque} written before hash version 3 (linked, content not checkable)"
                    if v.opaque
                    else ""
                )
            )
        if checkpoints or args.head:
            print(
                f"every one of {len(checkpoints)} checkpoint(s) and {len(args.head)} recorded head(s) is in it"
            )
        else:
            print(
                "(entries removed from the end, or a log rewritten with new hashes, show only against a "
                "witness: add --checkpoint FILE with the witness's record, or --head HASH)"
            )
    else:
        print(f"audit log BROKEN at entry #{problem.seq} ({problem.kind}): {problem.message}")
    if checkpoints and not args.json:
        for s in signers.unpinned:
            print(
                f"note: trusting node {s.node}'s key {s.fingerprint} from the index (pin it with [audit] signers)"
            )
    for line in archived:
        print(line)
    return 0 if problem is None and not archived else EXIT_FINDINGS


def cmd_signers(args: argparse.Namespace) -> int:
    gw = open_gateway(args)
    signers = gw.signers()
    rows = sorted(signers.by_fingerprint.values(), key=lambda s: (s.node, s.fingerprint))
    missing = sorted(signers.pinned - set(signers.by_fingerprint))
    if args.json:
        print(
            json.dumps(
                {
                    "signers": [
                        {"fingerprint": s.fingerprint, "node": s.node, "trusted": s.trusted, "why": s.why}
                        for s in rows
                    ],
                    "pinned_not_published": missing,
                }
            )
        )
        return 0
    for s in rows:
        print(
            f"{s.fingerprint}  {printable(s.node) or '-':16} {'trusted' if s.trusted else 'NOT TRUSTED'} ({s.why})"
        )
    for fp in missing:
        print(f"{fp}  {'-':16} pinned in [audit] signers, but no node has published it")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    gw = open_gateway(args)
    if args.tenant is not None:  # before the file is made: a refused export leaves nothing
        gw.config.tenancy.require(args.tenant)
    fd = None
    if args.output != "-":
        try:
            fd = os.open(
                args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
        except FileExistsError:
            raise GatewayError(f"{args.output} exists: give a new file") from None
        except OSError as e:
            raise GatewayError(f"cannot write {args.output}: {e.strerror}") from None
    entries = auditlog.export(gw, actor(), "stdout" if fd is None else "file", args.tenant)
    text = "".join(json.dumps(e.as_json(), sort_keys=True, separators=(",", ":")) + "\n" for e in entries)
    if fd is None:
        sys.stdout.write(text)
        return 0
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    print(
        f"wrote {len(entries)} entries to {args.output}; verify with: gateway audit verify --from {args.output}",
        file=sys.stderr,
    )
    return 0


def cmd_checkpoint(args: argparse.Namespace) -> int:
    from ..governance import witness

    gw = open_gateway(args)
    w = witness.Witness(gw.config.witness)
    try:
        cp = witness.checkpoint(gw.index, gw.signing_key(), w)
    finally:
        w.close()
    if cp is None:
        print("the audit log is empty: nothing to checkpoint")
        return 0
    gw.audit_head_at_open = (cp.seq, cp.hash)
    print(cp.line())
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    gw = open_gateway(args)
    for e in gw.index.audit_entries():
        if args.json:
            print(json.dumps(e.__dict__, sort_keys=True))
        else:
            print(
                f"#{e.seq:<5} {printable(e.ts)}  {printable(e.actor):16} {printable(e.action):24} "
                f"{printable(e.subject)}  {json.dumps(e.details, sort_keys=True)}"
            )
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    from ..app import exposure

    # As the running gateway opens its index: a shared index out of reach is a finding, not a
    # failure of the scan.
    gw = open_gateway(args, service=True)
    found = exposure.scan(gw, args.temp_dir)
    findings = [f for f in found if f.kind != exposure.SKIPPED]
    skipped = [f for f in found if f.kind == exposure.SKIPPED]
    if args.json:
        print(
            json.dumps(
                {
                    "ok": not findings,
                    "findings": [f.as_dict() for f in findings],
                    "skipped": [f.as_dict() for f in skipped],
                }
            )
        )
    else:
        for f in findings:
            print(f"[{f.kind}] {printable(f.where)}: {f.problem}\n    fix: {f.fix}")
        if skipped:
            print(
                f"note: {len(skipped)} path(s) in the temporary directories could not be read by this user and were skipped"
            )
        print(f"{len(findings)} finding(s)" if findings else "no exposure found")
    return EXIT_FINDINGS if findings else 0
