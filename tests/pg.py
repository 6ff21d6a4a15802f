"""A throwaway PostgreSQL cluster for the tests: initdb and pg_ctl (Debian's postgresql) in a
temporary directory, listening only on a Unix socket there, stopped by its own pg_ctl when the
test session ends. A test that needs it and cannot have it fails; it never skips."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.fail(
            f"PostgreSQL's {name} is not installed: scripts/setup.sh installs the Debian package postgresql"
        )
    return found[-1]


@dataclass
class PgServer:
    base: Path
    socket_dir: Path
    as_user: list[str]  # runuser prefix when the tests run as root (initdb refuses root)
    durable: bool = False  # fsync on (benchmarks); the tests run without it

    def url(self, database: str) -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    def psql(self, database: str, sql: str) -> str:
        res = subprocess.run(
            [
                *self.as_user,
                _bin("psql"),
                "-h",
                str(self.socket_dir),
                "-U",
                "postgres",
                "-d",
                database,
                "-At",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if res.returncode != 0:
            raise RuntimeError(res.stderr)
        return res.stdout

    def new_database(self) -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        self.psql("postgres", f"CREATE DATABASE {name}")
        return self.url(name)

    def halt(self) -> None:
        """Stop the server, keeping its data (an outage)."""
        subprocess.run(
            [*self.as_user, _bin("pg_ctl"), "-D", str(self.base / "data"), "-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )

    def resume(self) -> None:
        _pg_start(self.base, self.socket_dir, self.as_user, self.durable)

    def postmaster_pid(self) -> int:
        return int((self.base / "data" / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.base, ignore_errors=True)


def start(durable: bool = False) -> PgServer:
    """`durable`: fsync on, as in production (benchmarks); tests run with fsync off."""
    initdb = _bin("initdb")
    base = Path(tempfile.mkdtemp(prefix="gw-pg-", dir="/tmp"))
    os.chmod(base, 0o755)
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail(
                "the postgres system user is missing: scripts/setup.sh installs the Debian package postgresql"
            )
        os.chown(base, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, sock = base / "data", base / "sock"
    subprocess.run([*as_user, "mkdir", "-m", "0700", str(sock)], check=True)
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    if os.geteuid() == 0:
        os.chmod(sock, 0o755)
    _pg_start(base, sock, as_user, durable)
    return PgServer(base, sock, as_user, durable)


def _pg_start(base: Path, sock: Path, as_user: list[str], durable: bool = False) -> None:
    res = subprocess.run(
        [
            *as_user,
            _bin("pg_ctl"),
            "-D",
            str(base / "data"),
            "-w",
            "-t",
            "60",
            "-l",
            str(base / "log"),
            "-o",
            f"-c listen_addresses='' -k {sock} -c fsync={'on' if durable else 'off'} -c max_connections=200",
            "start",
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    if res.returncode != 0:
        log = (base / "log").read_text() if (base / "log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {res.stderr}{log[-2000:]}")
