"""The local spool: a 0700 directory of 0600 files with random names, every append fsynced."""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .store import OBJECT_NAME, ObjectNotFound, ObjectWriter, Store, StoreError, check_name, new_object_name

DIR_MODE = 0o700
FILE_MODE = 0o600


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_private_dir(path: Path) -> None:
    """Create `path` as 0700, or tighten an existing directory to 0700. Missing parents are
    created 0700 too (`mkdir -p` would give them the umask's mode, 0755 as a rule)."""
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass
    if stat.S_IMODE(path.stat().st_mode) != DIR_MODE:
        os.chmod(path, DIR_MODE)


class SpoolWriter(ObjectWriter):
    def __init__(self, directory: Path, name: str) -> None:
        self.name = name
        self._path = directory / name
        self._fd: int | None = os.open(
            self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, FILE_MODE
        )
        self.durable_size = 0
        # The new directory entry must survive a crash too, or the sealed chunks are lost with it.
        fsync_dir(directory)

    def append(self, data: bytes) -> None:
        if self._fd is None:
            raise StoreError("append to a closed object")
        try:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            os.fsync(self._fd)
        except OSError as e:
            # Cut a partial write back to the last durable boundary: a torn chunk in the middle
            # of a file would look like tampering to the reader, and later chunks would be lost.
            try:
                os.ftruncate(self._fd, self.durable_size)
                os.fsync(self._fd)
            except OSError:
                pass
            reason = "storage full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else e.strerror
            raise StoreError(f"spool append failed: {reason}") from e
        self.durable_size += len(data)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class LocalSpool(Store):
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        try:
            ensure_private_dir(self.directory)
        except OSError as e:
            raise StoreError(f"cannot use spool directory {self.directory}: {e.strerror}") from e

    def _path(self, name: str) -> Path:
        return self.directory / check_name(name)

    def create(self) -> SpoolWriter:
        try:
            return SpoolWriter(self.directory, new_object_name())
        except OSError as e:
            raise StoreError(f"cannot create spool file: {e.strerror}") from e

    def open(self, name: str) -> BinaryIO:
        try:
            return open(self._path(name), "rb")
        except FileNotFoundError:
            raise ObjectNotFound(f"no object {name}") from None
        except OSError as e:
            raise StoreError(f"cannot read {name}: {e.strerror}") from e

    def delete(self, name: str) -> None:
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            raise ObjectNotFound(f"no object {name}") from None
        except OSError as e:
            raise StoreError(f"cannot delete {name}: {e.strerror}") from e
        fsync_dir(self.directory)

    def size(self, name: str) -> int:
        try:
            return self._path(name).stat().st_size
        except FileNotFoundError:
            raise ObjectNotFound(f"no object {name}") from None

    def age_s(self, name: str) -> float:
        try:
            return time.time() - self._path(name).stat().st_mtime
        except FileNotFoundError:
            raise ObjectNotFound(f"no object {name}") from None

    def names(self) -> Iterator[str]:
        for entry in os.scandir(self.directory):
            if OBJECT_NAME.fullmatch(entry.name):
                yield entry.name
