"""Where ciphertext lives. The spool is the embedded default; an S3 backend implements the same.

Only ciphertext ever passes through a Store. Object names are opaque and random: nothing in a
name or path derives from a time, a number or a call.
"""

from __future__ import annotations

import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import BinaryIO

OBJECT_NAME = re.compile(r"^[0-9a-f]{32}\.age$")


class StoreError(Exception):
    """The store failed (disk full, permissions, unreachable)."""


class ObjectNotFound(StoreError):
    pass


def new_object_name() -> str:
    """128 random bits, hex, with the `.age` suffix that tells an operator what tool opens it."""
    return secrets.token_hex(16) + ".age"


def check_name(name: str) -> str:
    if not OBJECT_NAME.fullmatch(name):
        raise ObjectNotFound(f"not a store object name: {name!r}")
    return name


class ObjectWriter(ABC):
    """An object being written. `append` returns once the bytes are durable."""

    name: str

    @abstractmethod
    def append(self, data: bytes) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


class Store(ABC):
    @abstractmethod
    def create(self) -> ObjectWriter:
        """A new, empty object with a fresh random name."""

    @abstractmethod
    def open(self, name: str) -> BinaryIO: ...

    def open_from(self, name: str, start: int) -> BinaryIO:
        """The object from byte `start` on (a ranged read; the base version skips what is before)."""
        f = self.open(name)
        try:
            if f.seekable():
                f.seek(start)
            else:
                left = start
                while left > 0:
                    skipped = len(f.read(min(left, 1 << 20)))
                    if not skipped:
                        break
                    left -= skipped
        except BaseException:
            f.close()
            raise
        return f

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove an object; ObjectNotFound if it does not exist."""

    @abstractmethod
    def size(self, name: str) -> int: ...

    @abstractmethod
    def age_s(self, name: str) -> float:
        """Seconds since the object was last written."""

    @abstractmethod
    def names(self) -> Iterator[str]:
        """Every object name. For recovery and self-audit only: never exposed over a network."""

    def local_names(self) -> Iterator[str]:
        """The objects this host wrote and still holds (where a crash can leave an orphan)."""
        return self.names()

    def exists(self, name: str) -> bool:
        try:
            self.size(name)
        except ObjectNotFound:
            return False
        return True
