from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import age
from tests import pg, s3
from tests.calls import CallLab


@pytest.fixture
def identity() -> age.Identity:
    return age.Identity.generate()


@pytest.fixture
def identity_file(tmp_path: Path) -> tuple[Path, str]:
    """An identity written by the real age-keygen, and its recipient as age-keygen -y prints it."""
    path = tmp_path / "key.txt"
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True
    ).stdout.strip()
    return path, recipient


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: scripts/setup.sh installs it")
    return path


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[CallLab]:
    """A gateway with short prompts, ready to start, on free loopback ports (tests/calls.py)."""
    lab = CallLab(tmp_path)
    yield lab
    lab.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pg.PgServer]:
    """One throwaway PostgreSQL cluster for the whole run (tests/pg.py)."""
    server = pg.start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: pg.PgServer) -> str:
    """A fresh, empty database on it."""
    return pg_server.new_database()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[s3.S3Server]:
    """One SeaweedFS S3 server on loopback for the whole run (tests/s3.py)."""
    server = s3.start()
    yield server
    server.stop()
