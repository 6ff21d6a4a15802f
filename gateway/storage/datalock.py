"""One running gateway per data directory.

`gateway run` holds an exclusive lock on `DATA_DIR/gateway.lock` (a POSIX record lock, with
its pid written inside) for as long as it runs. A second `gateway run` on the same directory
is refused before it touches anything: it would overwrite the first one's Kamailio config and
empty its dispatcher list. `gateway status` uses the same lock to tell a running gateway from
a status file left behind by one that stopped.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

LOCK_NAME = "gateway.lock"


class DataDirBusy(Exception):
    """Another process holds the lock; `pid` is the holder (None if unknown)."""

    def __init__(self, path: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"another `gateway run` ({who}) is using {path.parent}: stop it first "
            "(two gateways on one data directory would overwrite each other's state)"
        )
        self.pid = pid


def _holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text.isdigit() else None
    except (OSError, ValueError):
        return None


def acquire(data_dir: Path) -> int:
    """Lock the data directory for this process; returns the descriptor to keep open (the lock
    goes with it, and with the process). DataDirBusy if another process holds it."""
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        pid = _holder(fd)
        os.close(fd)
        if e.errno in (errno.EAGAIN, errno.EACCES):
            raise DataDirBusy(path, pid) from None
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def holder(data_dir: Path) -> int | None:
    """The pid of the running gateway on `data_dir` (-1 if it cannot be read), or None if none
    runs. Never call it in the process that holds the lock: closing any descriptor of the file
    releases a process's POSIX locks."""
    path = data_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES):
                return _holder(fd) or -1
            raise
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
