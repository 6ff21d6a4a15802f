"""Directories and sockets the gateway creates are private from the first moment."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from gateway.storage.spool import ensure_private_dir
from gateway.telephony.events import EventBus


def mode(p: Path) -> int:
    return stat.S_IMODE(p.lstat().st_mode)


def test_missing_parents_are_created_0700_too(tmp_path: Path) -> None:
    target = tmp_path / "data" / "run" / "kamailio"
    ensure_private_dir(target)
    assert [mode(p) for p in (tmp_path / "data", tmp_path / "data" / "run", target)] == [0o700] * 3


def test_event_socket_is_private_without_any_chmod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The socket must be 0600 as bind() creates it: a chmod afterwards leaves a window in which
    another user can connect (and send control commands)."""
    run = tmp_path / "run"
    run.mkdir(mode=0o755)
    os.chmod(run, 0o755)
    monkeypatch.setattr(os, "chmod", lambda *a, **k: None)
    monkeypatch.setattr(Path, "chmod", lambda *a, **k: None)
    monkeypatch.setattr(os, "fchmod", lambda *a, **k: None, raising=False)

    async def start() -> int:
        bus = EventBus(run / "events.sock", "w0")
        await bus.start()
        try:
            return mode(run / "events.sock")
        finally:
            await bus.close()

    old = os.umask(0o022)
    try:
        sock_mode = asyncio.run(start())
    finally:
        os.umask(old)
    assert sock_mode & 0o077 == 0, f"socket created {sock_mode:04o}"
    # And the directory it lives in is tightened to 0700 before the bind.
    monkeypatch.undo()
    asyncio.run(start())
    assert mode(run) == 0o700
