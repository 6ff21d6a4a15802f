"""`gateway keygen`: an operator's age identity, on the operator's workstation or an offline
machine (never on the gateway, which holds recipients only). X25519, as age-keygen makes it, or
the hybrid post-quantum MLKEM768-X25519 (`--pq`), which Debian's age (1.1) cannot make."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from .. import age
from ..errors import GatewayError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "keygen",
        help="make an operator's age identity (on a workstation, not the gateway); print its recipient",
        description="Write a new age identity to FILE (0600, never overwritten) in age-keygen's format "
        "and print its recipient, for [recording] recipients. --pq makes a hybrid post-quantum "
        "(MLKEM768-X25519) key: recordings kept for years stay closed to a future quantum computer.",
    )
    p.add_argument(
        "-o", "--output", required=True, type=Path, metavar="FILE", help="the identity file to create"
    )
    p.add_argument("--pq", action="store_true", help="a hybrid post-quantum key (age1pq1..., c2sp.org/age)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    identity: age.AnyIdentity = age.HybridIdentity.generate() if args.pq else age.Identity.generate()
    recipient = str(identity.recipient())
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f"# created: {created}\n# public key: {recipient}\n{identity.encode()}\n"
    try:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise GatewayError(f"{args.output} exists: keygen never overwrites an identity") from None
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text)
    print(f"identity written to {args.output} (0600): keep it off the gateway", file=sys.stderr)
    print(recipient)
    return 0
