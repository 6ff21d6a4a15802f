"""Worker events as JSON lines on a Unix socket (format: docs/events.md).

A subscriber connects and first receives a snapshot (the last event of every live call, then
the worker's own last event, started or draining), then every event as it happens. A subscriber that falls behind by more than a bound is
disconnected rather than allowed to slow the worker.

The same socket is the worker's control channel: a subscriber may send one JSON object a line,
`{"req": N, "op": "pause"|"resume"|"stop", "call": ID, "actor": NAME}` (or `{"req": N, "op":
"ping"}`, the supervisor's heartbeat: the reply proves the worker's loop is turning), and receives
`{"type": EventType.CONTROL_RESULT, "req": N, "ok": bool, "error": TEXT}` on its own stream (not
broadcast). Only the gateway's own user can connect (socket 0600 in a 0700 directory).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..callevents import CallState, EventType
from ..storage.spool import ensure_private_dir

log = logging.getLogger(__name__)
MAX_BUFFERED = 1 << 20
MAX_COMMAND = 4096  # bytes in one control line
CONTROL_OPS = ("pause", "resume", "stop", "ping")

# (op, call id, actor) -> None on success, else the error text for the requester
ControlHandler = Callable[[str, str, str], "str | None"]


class EventBus:
    def __init__(self, path: Path, worker_id: str) -> None:
        self.path = path
        self.worker_id = worker_id
        self._clients: set[asyncio.StreamWriter] = set()
        self._live: dict[str, dict[str, Any]] = {}
        # The worker's own last word (started, draining): a subscriber that connects later, such
        # as the supervisor's link after a restart, learns from it whether the worker is ready.
        self._worker: dict[str, Any] | None = None
        self._server: asyncio.AbstractServer | None = None
        self.seq = 0
        self.control: ControlHandler | None = None

    async def start(self) -> None:
        # The socket is created inside a 0700 directory and under a 0077 umask, so that it is
        # never reachable by another user, not even between bind() and a chmod().
        ensure_private_dir(self.path.parent)
        if self.path.exists():
            self.path.unlink()
        old = os.umask(0o077)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for event in list(self._live.values()):
            writer.write(self._line({**event, "snapshot": True}))
        if self._worker is not None:
            writer.write(self._line({**self._worker, "snapshot": True}))
        self._clients.add(writer)
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    break  # EOF: the subscriber left
                except asyncio.LimitOverrunError:
                    log.warning("control line too long; subscriber disconnected")
                    break
                if len(line) > MAX_COMMAND:
                    log.warning("control line too long; subscriber disconnected")
                    break
                writer.write(self._line(self._command(line)))
        finally:
            self._clients.discard(writer)
            writer.close()

    def _command(self, line: bytes) -> dict[str, Any]:
        """Run one control request; the reply goes to the requester only."""
        try:
            cmd = json.loads(line)
            if not isinstance(cmd, dict):
                raise ValueError("not an object")
        except ValueError:
            return {"type": EventType.CONTROL_RESULT, "req": None, "ok": False, "error": "not a JSON object"}
        req = cmd.get("req") if isinstance(cmd.get("req"), int) else None
        op, call, actor = cmd.get("op"), cmd.get("call"), cmd.get("actor")
        if op not in CONTROL_OPS:
            return {"type": EventType.CONTROL_RESULT, "req": req, "ok": False, "error": f"unknown op {op!r}"}
        if op == "ping":
            return {"type": EventType.CONTROL_RESULT, "req": req, "ok": True, "error": None}
        if not isinstance(call, str) or not isinstance(actor, str) or not actor or len(actor) > 200:
            return {
                "type": EventType.CONTROL_RESULT,
                "req": req,
                "ok": False,
                "error": "call and actor are required",
            }
        if self.control is None:
            return {
                "type": EventType.CONTROL_RESULT,
                "req": req,
                "ok": False,
                "error": "this worker takes no commands",
            }
        try:
            error = self.control(op, call, actor)
        except Exception:
            log.exception("control %s on call %s failed", op, call)
            error = "internal error"
        return {"type": EventType.CONTROL_RESULT, "req": req, "ok": error is None, "error": error}

    def _line(self, event: dict[str, Any]) -> bytes:
        return (json.dumps(event, separators=(",", ":"), sort_keys=True) + "\n").encode()

    def publish(self, event: dict[str, Any]) -> None:
        self.seq += 1
        event = {"ts": round(time.time(), 3), "seq": self.seq, "worker": self.worker_id, **event}
        call = event.get("call")
        if event.get("type") in (EventType.WORKER_STARTED, EventType.WORKER_DRAINING):
            self._worker = event
        if call:
            if event.get("state") == CallState.ENDED:
                self._live.pop(call, None)
            else:
                self._live[call] = {**self._live.get(call, {}), **event}
        line = self._line(event)
        for w in list(self._clients):
            if w.transport.get_write_buffer_size() > MAX_BUFFERED:
                log.warning("event subscriber too slow; disconnected")
                self._clients.discard(w)
                w.close()
                continue
            w.write(line)

    async def close(self) -> None:
        for w in list(self._clients):
            w.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self.path.exists():
            self.path.unlink()


def follow(
    path: Path, stop: threading.Event | None = None, connect_timeout_s: float = 10.0
) -> Iterator[dict[str, Any]]:
    """Subscribe to a worker's events (blocking): yields each event until the worker closes
    the socket or `stop` is set. Waits up to `connect_timeout_s` for the socket to appear."""
    sock = socket.socket(socket.AF_UNIX)
    deadline = time.monotonic() + connect_timeout_s
    while True:
        try:
            sock.connect(str(path))
            break
        except OSError:
            if time.monotonic() > deadline:
                sock.close()
                raise
            time.sleep(0.05)
    sock.settimeout(0.2)
    buf = b""
    try:
        while stop is None or not stop.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                if stop is None:
                    return
                continue
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                yield json.loads(line)
    finally:
        sock.close()
