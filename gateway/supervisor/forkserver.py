"""A node's workers, forked from one parent that has already imported what a worker needs.

A worker's memory is mostly its imports (pjsua2's bindings, numpy, cryptography, the gateway;
about 25 MB of private pages each, BENCHMARKS.md), because the stock pjsua2 wheel holds two
calls per process and a node runs tens of workers. The fork server imports all of that once,
loads the configuration and decodes the prompts; each worker
is a fork of it and shares those pages copy-on-write (a worker whose configuration file
changed since reads it again). pjsua's library is created in the worker, after the fork: the
fork server never starts it (nor any thread).

    supervisor ──(socketpair: JSON lines, a pipe per worker passed with SCM_RIGHTS)── fork server
                                                                                       └─ workers

The supervisor asks for a worker by index; the fork server forks, the child runs exactly what
`gateway worker --index N` runs (telephony/process.py, no command line parsed), with its stdout
on a pipe the supervisor drains; it says it is ready on its event link. The fork
server reaps its children and reports their exit codes; the supervisor also watches each
worker through a pidfd, so a worker is seen to end even if the fork server is gone. Signals go
from the supervisor to the worker directly. The fork server ends when the supervisor does;
its workers go on (as they do when a supervisor is killed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import signal
import socket
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_MESSAGE = 4096


class ForkedProcess:
    """A worker forked by the fork server, with the parts of asyncio.subprocess.Process the
    supervisor uses: pid, returncode, stdout, terminate, kill, wait."""

    def __init__(self, pid: int, stdout: asyncio.StreamReader) -> None:
        self.pid = pid
        self.stdout = stdout
        self.returncode: int | None = None
        self._done = asyncio.get_running_loop().create_future()
        self._pidfd: int | None = None

    def watch(self, reported: dict[int, int]) -> None:
        """Notice the end of the process through a pidfd (we are not its parent)."""
        loop = asyncio.get_running_loop()
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:  # gone already
            self._ended(reported)
            return
        loop.add_reader(self._pidfd, self._ended, reported)

    def _ended(self, reported: dict[int, int]) -> None:
        loop = asyncio.get_running_loop()
        if self._pidfd is not None:
            loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        # The fork server's report of the exit code may come a moment after the pidfd.
        loop.call_later(0.2, self._settle, reported)

    def _settle(self, reported: dict[int, int]) -> None:
        self.set_returncode(reported.pop(self.pid, 255))

    def set_returncode(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
        if not self._done.done():
            self._done.set_result(self.returncode)

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        return int(await asyncio.shield(self._done))


class ForkServer:
    """The supervisor's end: starts the fork server and asks it for workers."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.proc: asyncio.subprocess.Process | None = None
        self._sock: socket.socket | None = None
        self._pending: dict[int, asyncio.Future[int]] = {}  # worker index -> pid
        self._reported: dict[int, int] = {}  # pid -> exit code, from the fork server
        self._children: dict[int, ForkedProcess] = {}
        self._buffer = b""
        self.restarts = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "--config",
            str(self.config_path),
            "forkserver",
            "--fd",
            str(theirs.fileno()),
            pass_fds=[theirs.fileno()],
            stdout=asyncio.subprocess.DEVNULL,
            stderr=None,
        )
        theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._buffer = b""
        asyncio.get_running_loop().add_reader(ours.fileno(), self._readable)
        # Ready once it has imported what a worker needs and says so.
        ready = asyncio.get_running_loop().create_future()
        self._pending[-1] = ready
        try:
            await asyncio.wait_for(ready, 60)
        except TimeoutError:
            raise RuntimeError("the fork server did not start (see its log lines)") from None
        log.info("fork server %d ready: workers share its imports", self.proc.pid)

    def _readable(self) -> None:
        assert self._sock is not None
        try:
            data = self._sock.recv(MAX_MESSAGE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._closed()
            return
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            try:
                msg = json.loads(line)
            except ValueError:
                log.warning("fork server: unreadable message %r", line[:80])
                continue
            self._message(msg)

    def _message(self, msg: dict[str, Any]) -> None:
        if "ready" in msg:
            fut = self._pending.pop(-1, None)
            if fut is not None and not fut.done():
                fut.set_result(0)
        elif "forked" in msg:
            fut = self._pending.pop(int(msg["forked"]), None)
            if fut is not None and not fut.done():
                if msg.get("pid"):
                    fut.set_result(int(msg["pid"]))
                else:
                    fut.set_exception(RuntimeError(f"fork failed: {msg.get('error')}"))
        elif "exited" in msg:
            pid, code = int(msg["exited"]), int(msg["code"])
            child = self._children.pop(pid, None)
            if child is not None:
                child.set_returncode(code)
            else:
                self._reported[pid] = code

    def _closed(self) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(RuntimeError("the fork server went away"))
        self._pending.clear()

    async def fork(self, index: int) -> ForkedProcess:
        """A new worker `index`; its stdout is readable on the returned process."""
        if self._sock is None or not self.alive:
            log.error("fork server gone; starting it again")
            self.restarts += 1
            await self.stop()
            await self.start()
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        r, w = os.pipe()
        fut: asyncio.Future[int] = loop.create_future()
        self._pending[index] = fut
        try:
            socket.send_fds(self._sock, [json.dumps({"fork": index}).encode() + b"\n"], [w])
        finally:
            os.close(w)
        try:
            pid = await asyncio.wait_for(fut, 30)
        except BaseException:
            os.close(r)
            raise
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(r, "rb", 0))
        child = ForkedProcess(pid, reader)
        self._children[pid] = child
        if pid in self._reported:  # it has already ended
            child.set_returncode(self._reported.pop(pid))
        else:
            child.watch(self._reported)
        return child

    async def stop(self) -> None:
        """End the fork server (its workers, if any are left, go on)."""
        self._closed()
        if self.proc is not None:
            await end_process(self.proc, 10)


async def end_process(proc: asyncio.subprocess.Process | ForkedProcess, grace_s: float) -> None:
    """SIGTERM, and SIGKILL if it has not ended within `grace_s`."""
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), grace_s)
    except TimeoutError:
        proc.kill()


# -- the fork server's own process -------------------------------------------------------------


def _send(sock: socket.socket, msg: dict[str, Any]) -> None:
    sock.sendall(json.dumps(msg).encode() + b"\n")


def _worker(index: int, config_path: str, out: int | None) -> int:
    """In the forked child: become worker `index` of the pool, stdout on the supervisor's pipe."""
    if out is not None:
        os.dup2(out, 1)
        os.close(out)
    from ..telephony.process import pool_worker

    try:
        return pool_worker(config_path, index)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        return 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()


def serve(fd: int, config_path: str) -> int:
    """Import what a worker needs, then fork a worker for each request until the supervisor
    closes its end. Single-threaded, and pjsua's library is never created here."""
    import gc

    from ..config import preload
    from ..telephony import (
        process,  # noqa: F401  (pjsua2, numpy, cryptography, the gateway: what a worker runs)
        prompts,
    )

    try:  # decoded once here, shared by every worker (prompts.load finds them decoded)
        prompts.load_for_routes(preload(config_path))
    except Exception as e:  # the worker reports a bad configuration or prompt set itself
        print(f"fork server: prompts not preloaded: {e}", file=sys.stderr)
    sock = socket.socket(fileno=fd)
    # SIGTERM from the supervisor ends the fork server cleanly; its workers (which reset the
    # handler as soon as they are forked) are not signalled by it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    gc.collect()
    gc.freeze()  # what is imported now stays shared: the collector no longer writes to it
    _send(sock, {"ready": os.getpid()})
    buffer = b""
    while True:
        readable, _, _ = select.select([sock], [], [], 0.2)
        if readable:
            msg, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 4)
            if not msg:
                for extra in fds:
                    os.close(extra)
                # Exiting already: a SIGTERM from the supervisor as it stops must not raise
                # SystemExit inside the interpreter's own shutdown (a traceback on stderr).
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                return 0  # the supervisor is gone: so is the fork server, not its workers
            buffer += msg
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                out = fds.pop(0) if fds else None
                index = int(request["fork"])
                try:
                    pid = os.fork()
                except OSError as e:
                    _send(sock, {"forked": index, "error": str(e)})
                    continue
                if pid == 0:  # the worker
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    sock.close()
                    for other in fds:  # the pipes of workers asked for in the same message
                        os.close(other)
                    os._exit(_worker(index, config_path, out))
                if out is not None:
                    os.close(out)
                _send(sock, {"forked": index, "pid": pid})
        while True:  # reap: report every ended worker's exit code
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            _send(sock, {"exited": pid, "code": os.waitstatus_to_exitcode(status)})
