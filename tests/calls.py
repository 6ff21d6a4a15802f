"""Processes for call tests: a real `gateway run` and pjsua2 peers, on loopback, by pid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from gateway.telephony.net import free_port, free_port_run
from tests.gw import GatewayUnderTest, make_gateway
from tests.prompts_fixture import write_prompts

ROOT = Path(__file__).resolve().parent.parent


class Proc:
    """A child process whose stdout JSON lines (or text lines) are collected by a thread."""

    def __init__(
        self, cmd: list[str], env: dict[str, str] | None = None, prefix: list[str] | None = None
    ) -> None:
        self.wrapped = bool(prefix)
        self.proc = subprocess.Popen(
            (prefix or []) + cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr_lines), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in list(self.lines):
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def event(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.events() if e.get("event") == name), None)

    def wait_for(self, predicate: Any, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.proc.poll() is not None:
                value = predicate()
                if value:
                    return value
                raise AssertionError(f"process exited {self.proc.returncode}: {self.stderr_lines[-5:]}")
            time.sleep(0.05)
        raise AssertionError(f"timed out; stdout {self.lines[-5:]} stderr {self.stderr_lines[-5:]}")

    def wait_exit(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"did not exit; stderr {self.stderr_lines[-5:]}") from None

    def target_pid(self) -> int:
        """The pid of the command itself: under a prefix (strace), the prefix's child."""
        if not self.wrapped:
            return self.proc.pid
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return int(children[0])

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.kill(self.target_pid(), signal.SIGTERM)
        rc = self.wait_exit()
        for t in self._threads:
            t.join(timeout=5)
        return rc


class CallLab:
    """A gateway under test with short prompts, plus helpers to start peers against it."""

    def __init__(
        self,
        tmp: Path,
        *,
        mode: str = "opt-out",
        extra: str = "",
        workers: int = 0,
        fail_closed: bool = False,
        host: str = "127.0.0.1",
        node: str = "",
    ) -> None:
        self.gw: GatewayUnderTest = make_gateway(tmp)
        self.host = host  # where SIP from callers arrives (a node on its own loopback address)
        self.sip_port, self.pbx_port, self.dash_port = free_port(), free_port(), free_port()
        prompts = write_prompts(tmp / "prompts")
        text = self.gw.config.read_text()
        text = (
            text.replace('listen = "127.0.0.1:5060"', f'listen = "{host}:{self.sip_port}"')
            .replace('uri = "sip:helpline@127.0.0.1:5070"', f'uri = "sip:helpline@127.0.0.1:{self.pbx_port}"')
            .replace('dir = ""', f'dir = "{prompts}"')
            .replace("grace_s = 3.0", "grace_s = 1.0")
            .replace('mode = "opt-out"', f'mode = "{mode}"')
            .replace("rtp_port = 40000", f"rtp_port = {free_port_run(100)}")
            .replace("rtp_port_range = 1000", "rtp_port_range = 100")
            .replace("drain_s = 300", "drain_s = 3")
        )
        if workers:
            base = free_port_run(workers)
            text = (
                text.replace("kamailio = false", "kamailio = true")
                .replace("workers = 2", f"workers = {workers}")
                .replace("worker_base_port = 5100", f"worker_base_port = {base}")
                .replace("fail_closed = false", f"fail_closed = {'true' if fail_closed else 'false'}")
                .replace('metrics_listen = "127.0.0.1:9464"', f'metrics_listen = "127.0.0.1:{free_port()}"')
                .replace('listen = "127.0.0.1:8080"', f'listen = "127.0.0.1:{self.dash_port}"')
            )
        self.gw.config.write_text(text + extra)
        if node:
            self.gw.set("node", "name", node)
        self.procs: list[Proc] = []
        self.stops: list[threading.Event] = []  # event followers to stop at close
        self.gateway: Proc | None = None

    def start_gateway(self, prefix: list[str] | None = None) -> Proc:
        self.gateway = Proc(
            [str(ROOT / ".venv/bin/gateway"), "--config", str(self.gw.config), "-v", "run"], prefix=prefix
        )
        self.procs.append(self.gateway)
        self.gateway.wait_for(lambda: any("listening for SIP" in line for line in self.gateway.lines), 30)
        if "kamailio = true" in self.gw.config.read_text():
            self.wait_node_ready()
        return self.gateway

    def node_status(self) -> dict[str, Any]:
        return json.loads((self.gw.dir / "run" / "node.json").read_text())

    def wait_status(self, predicate: Any, timeout: float = 15.0) -> dict[str, Any]:
        """The node status once `predicate(status)` holds; fails with the last status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.node_status()
            if predicate(st):
                return st
            time.sleep(0.2)
        raise AssertionError(self.node_status())

    def wait_node_ready(self, timeout: float = 20.0) -> dict[str, Any]:
        """The node's status once every worker is ready; fails with the last status and the
        gateway's last log lines (a start that fails once in many runs must say why)."""
        deadline = time.monotonic() + timeout
        st: Any = None
        while time.monotonic() < deadline:
            try:
                st = self.node_status()
                if st["workers"] and all(w["ready"] for w in st["workers"]):
                    return st
            except (OSError, ValueError) as e:
                st = f"no status: {e}"
            time.sleep(0.1)
        logs = self.gateway.stderr_lines[-25:] if self.gateway is not None else []
        raise AssertionError("node not ready\nstatus: {}\nlast log lines:\n{}".format(st, "\n".join(logs)))

    def peer(self, role: str, *args: str) -> Proc:
        port = self.pbx_port if role == "pbx" else free_port()
        cmd = [sys.executable, "-m", "simphone.phone", role, "--port", str(port), *args]
        if role == "caller" and "--target" not in args:
            cmd += ["--target", f"sip:1177@{self.host}:{self.sip_port}"]
        p = Proc(cmd)
        self.procs.append(p)
        p.wait_for(lambda: p.event("ready"))
        return p

    def stop_gateway(self) -> None:
        """Stop the gateway and check that it stopped cleanly (exit 0, no pjsua assertion)."""
        assert self.gateway is not None
        rc = self.gateway.stop()
        assert rc == 0, self.gateway.stderr_lines[-10:]
        assert not any("Assertion" in line for line in self.gateway.stderr_lines)

    def one_call(
        self, *caller_args: str, pbx_args: tuple[str, ...] = ("--tone", "1000")
    ) -> tuple[Proc, Proc]:
        """The gateway started, one call from a caller with `caller_args` to a PBX with
        `pbx_args`, both peers gone and the gateway stopped cleanly: (caller, pbx)."""
        self.start_gateway()
        pbx = self.peer("pbx", *pbx_args)
        caller = self.peer("caller", *caller_args)
        caller.wait_exit()
        pbx.wait_exit()
        self.stop_gateway()
        return caller, pbx

    def decrypt(self, rec: Any) -> tuple[Any, Any]:
        """A recording's two channels (caller, helpline), decrypted with the operator's key."""
        from gateway import age
        from tests.audio import split_channels

        with self.gw.open().store.open(rec.object_name) as f:
            plain = age.AgeReader(f, age.load_identity_file(self.gw.key)).read_all()
        return split_channels(plain[44:])

    def close(self) -> None:
        for stop in self.stops:
            stop.set()
        for p in reversed(self.procs):
            if p.proc.poll() is None:
                try:
                    os.kill(p.target_pid(), signal.SIGTERM)
                except (OSError, IndexError, ValueError):
                    p.proc.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.proc.kill()
