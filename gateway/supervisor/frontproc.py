"""Kamailio as a child of the node: started in a process group of its own, restarted when it
dies (the whole group killed first), and told over its control socket which workers take calls
and how many calls failed open. What it runs is the rendered configuration (kamailio.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import time
from collections import deque
from collections.abc import Callable

from ..errors import ConfigError
from ..telephony.tlsfiles import check_pair
from .forkserver import end_process
from .kamailio import FrontDoor

log = logging.getLogger(__name__)
kamailio_log = logging.getLogger("gateway.kamailio")

START_S = 20.0  # a loaded machine (a node's workers starting beside it) can take seconds


# Kamailio's own errors may quote a request's URI or header (a parse error prints what it could
# not parse): a caller's number in it is masked before the line reaches the node's log, which
# holds no caller numbers. Addresses and ports (runs of up to five digits) are kept.
_NUMBER = re.compile(r"\+?\d(?:-?\d){5,}")


def redact(line: str) -> str:
    return _NUMBER.sub("[number]", line)


_HEAD = re.compile(r"\s*\d+\(\d+\) ([A-Z]+):")  # " 0(1234) WARNING: <script>: ..."
_LEVELS = {
    "ALERT": logging.ERROR,
    "BUG": logging.ERROR,
    "CRITICAL": logging.ERROR,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "NOTICE": logging.INFO,
    "INFO": logging.INFO,
}


def _level(line: str) -> int:
    """The level of one of Kamailio's stderr lines: its warnings (the script's refusals, floods
    banned) and errors reach the node's log as such; a line of no known level is debug."""
    head = _HEAD.match(line)
    return _LEVELS.get(head.group(1), logging.DEBUG) if head else logging.DEBUG


class KamailioProcess:
    def __init__(self, front: FrontDoor, on_started: Callable[[], None] = lambda: None) -> None:
        self.front = front
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.failopen = 0  # calls sent to the PBX unrecorded (or refused), as Kamailio counts them
        self._on_started = on_started  # the node records its children (leftovers.py)
        self._last: deque[str] = deque(maxlen=8)  # its last error lines, for a failed start
        self._reader: asyncio.Task[None] | None = None
        self._stopping = False  # asked to stop: its teardown's complaints are not errors

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def exited(self) -> bool:
        return self.proc is not None and self.proc.returncode is not None

    async def start(self) -> None:
        self._stopping = False
        # Its own process group: Kamailio forks workers, and if its main process is killed they
        # live on holding the SIP socket. The whole group is killed before a restart.
        self.proc = await asyncio.create_subprocess_exec(
            *self.front.command(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self._on_started()
        self._last.clear()
        assert self.proc.stderr is not None
        self._reader = asyncio.create_task(self._forward(self.proc.stderr))
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                break
            if (self.front.rundir / "kamailio_ctl").exists():
                try:
                    await asyncio.to_thread(self.front.rpc, "core.version")
                    return
                except RuntimeError:
                    pass
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # its last lines
        said = "; ".join(self._last) or "nothing on stderr"
        if self.proc.returncode is not None:
            raise RuntimeError(f"Kamailio exited with {self.proc.returncode} at start: {said}")
        raise RuntimeError(f"Kamailio did not answer its control socket within {START_S:.0f} s: {said}")

    async def _forward(self, stream: asyncio.StreamReader) -> None:
        """Kamailio logs to stderr (-E): its lines go to the node's log, by their level."""
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line past the reader's limit: dropped, the next one read
                continue
            if not line:
                return
            raw = line.decode(errors="replace").rstrip()
            level = _level(raw)  # before masking: a pid of six digits or more would be masked too
            text = redact(raw)
            if self._stopping and level >= logging.ERROR:
                # Its processes go in no set order when it stops, and one whose peer went first
                # says so at CRITICAL ("receive_fd(): EOF on 9", seen in CI): kept, as a warning,
                # so that an operator's alerting on errors is not woken by a clean stop.
                level, text = logging.WARNING, f"while stopping: {text}"
            if level >= logging.ERROR:
                self._last.append(text)
            kamailio_log.log(level, "%s", text)

    async def restart(self, worker_ports: list[int]) -> None:
        """After it died: what is left of its group killed, its lists rewritten, started anew.
        The caller adds the ready workers to its dispatcher again."""
        assert self.proc is not None
        log.error("Kamailio exited (%s); restarting it", self.proc.returncode)
        self.kill_group()
        self.restarts += 1
        self.front.write([("127.0.0.1", port) for port in worker_ports])
        await self.start()

    async def stop(self) -> None:
        self._stopping = True
        if self.proc is not None:
            await end_process(self.proc, 10)
        self.kill_group()
        if self._reader is not None:  # ends when the group's last process closes stderr
            try:
                await asyncio.wait_for(self._reader, 5)
            except TimeoutError:
                self._reader.cancel()

    def kill_group(self) -> None:
        """Kill whatever is left of Kamailio's process group (its forked children)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    async def add_worker(self, index: int, port: int, calls: int) -> bool:
        """Kamailio sends the worker calls from now on; False (logged) if it refused."""
        try:
            await asyncio.to_thread(self.front.add_worker, "127.0.0.1", port, f"w{index}", calls)
        except RuntimeError as e:
            log.error("worker %d: cannot add it to Kamailio: %s", index, e)
            return False
        return True

    async def remove_worker(self, index: int, port: int) -> None:
        try:
            await asyncio.to_thread(self.front.remove_worker, "127.0.0.1", port)
        except RuntimeError as e:
            log.warning("removing worker %d from Kamailio: %s", index, e)

    def read_failopen(self) -> int:
        """Kamailio's fail-open count (kept as it was while Kamailio has none or restarts)."""
        try:
            out = self.front.rpc("htable.get", "stats", "failopen")
        except RuntimeError:
            return self.failopen
        for token in out.replace(",", " ").split():
            if token.isdigit():
                self.failopen = int(token)
                break
        return self.failopen

    def reload_tls(self) -> None:
        """SIGHUP: the front door takes the operator's certificate and key again (and the
        authorities' files) without dropping a call or a connection. A pair that does not load
        is refused with a log line, and the certificate in use stays."""
        if self.front.tls is None:
            log.info("SIGHUP: no [sip] tls_listen, nothing to reload")
            return
        t = self.front.tls
        try:
            check_pair(t.cert, t.key, "[sip] tls_cert/tls_key")
            self.front.write_tls()
            self.front.rpc("tls.reload")
        except (ConfigError, OSError, RuntimeError) as e:
            log.error("SIGHUP: TLS certificate not reloaded, the previous one stays: %s", e)
            return
        log.info("SIGHUP: TLS certificate reloaded from %s", t.cert)
