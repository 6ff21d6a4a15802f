"""What proves that an INVITE reached a node's worker through the node's own front door.

Workers listen on loopback, where any local process can reach them. The front door (Kamailio)
removes every `X-Gateway-Door` header a request arrives with and adds its own, with a key the
supervisor makes at each start (in the node's private run directory) and the source address the
request came from, only on the branches it relays to the node's workers. A worker of a node
takes an INVITE only with exactly one such header carrying that key; a recording session only
if that source is one of the recording clients as well. Pure: messages in, verdicts out.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

HEADER = "X-Gateway-Door"
KEY_FILE = "door.key"
_HEADER_LINE = re.compile(rf"^{HEADER}[ \t]*:[ \t]*(.*)$", re.IGNORECASE | re.MULTILINE)
_KEY = re.compile(r"^[0-9a-f]{32}$")


class DoorError(ValueError):
    """The request did not come through this node's front door."""


@dataclass(frozen=True)
class Relayed:
    source: str  # the address the front door received the request from


def new_key() -> str:
    return secrets.token_hex(16)


def write_key(run_dir: Path, key: str) -> None:
    """Keep this start's key in the node's run directory (0600), where its workers read it."""
    path = run_dir / KEY_FILE
    tmp = path.with_suffix(".new")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    tmp.replace(path)


def read_key(run_dir: Path) -> str:
    """The key the node's supervisor made; DoorError if it is missing or malformed."""
    try:
        key = (run_dir / KEY_FILE).read_text().strip()
    except OSError as e:
        raise DoorError(f"no front-door key in {run_dir}: {e.strerror}") from None
    if not _KEY.fullmatch(key):
        raise DoorError(f"the front-door key in {run_dir} is malformed")
    return key


def header_value(key: str, source: str) -> str:
    return f"{key};src={source}"


def check(message: str, key: str) -> Relayed:
    """The front door's word on an INVITE (its source), or DoorError saying why there is none."""
    head = message.replace("\r\n", "\n").partition("\n\n")[0]
    values = _HEADER_LINE.findall(head)
    if len(values) != 1:
        raise DoorError(f"{len(values)} {HEADER} headers (exactly one expected)")
    token, _, params = values[0].strip().partition(";")
    if not hmac.compare_digest(token.strip().encode(), key.encode()):
        raise DoorError(f"a {HEADER} header with another key")
    m = re.search(r"(?:^|;)\s*src=([^;\s]+)", params)
    if m is None:
        raise DoorError(f"a {HEADER} header without the source address")
    return Relayed(m.group(1))
