"""Personal data in the index: caller numbers (and legacy file paths) stored so that the
gateway can find a data subject's rows but never read the value back.

The value itself is age-encrypted to the recording recipients (only the holder of an identity
reads it); a keyed HMAC-SHA256 under a local secret lets `subject find` match a number given
by the operator without the gateway being able to reverse it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Sequence
from pathlib import Path

from .. import age

SECRET_SIZE = 32
_NUMBER_NOISE = re.compile(r"[\s\-().]")


def normalize_number(number: str) -> str:
    """Spacing and punctuation removed, so that '+46 8-123 456' and '+468123456' match."""
    return _NUMBER_NOISE.sub("", number.strip())


def lookup_hash(secret: bytes, value: str) -> str:
    return hmac.new(secret, value.encode("utf-8"), hashlib.sha256).hexdigest()


def number_hash(secret: bytes, number: str) -> str:
    return lookup_hash(secret, "tel:" + normalize_number(number))


def seal_value(value: str, recipients: Sequence[age.Recipient]) -> bytes | None:
    """The value encrypted to `recipients`; None when there is no recipient (nothing is kept)."""
    if not recipients:
        return None
    return age.encrypt(value.encode("utf-8"), recipients)


def create_secret(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(os.urandom(SECRET_SIZE))


def load_secret(path: Path) -> bytes:
    data = path.read_bytes()
    if len(data) != SECRET_SIZE:
        raise ValueError(f"{path}: lookup secret must be {SECRET_SIZE} bytes, found {len(data)}")
    return data
