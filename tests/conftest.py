from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import age
from gateway.telephony import net
from tests import pg, s3
from tests.calls import CallLab

# The suite runs in parallel (pytest-xdist, scripts/test.sh). Two things keep its runners apart:
# - each runner picks free ports from its own slice of the range (gateway/telephony/net.py), so
#   one runner's server never binds a port another picked and has not bound yet;
# - a test marked `alone` (tshark captures the whole loopback interface and asserts what is not
#   on it; the demo runs a whole node and four phones under strace, where the others' load
#   starves its media) runs while no other test does: it closes a gate to new tests, waits for the running
#   ones to end, and opens the gate when it is done.


def pytest_configure(config: pytest.Config) -> None:
    # Hypothesis keeps its example database and caches under the system temp directory, not in
    # the repository (tests write nowhere else).
    import hypothesis.configuration

    hypothesis.configuration.set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "gateway-hypothesis")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw"):
        count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        os.environ[net.PORTS_ENV] = net.port_slices(count)[int(worker[2:])]


@pytest.fixture(autouse=True)
def _alone_or_together(request: pytest.FixtureRequest) -> Iterator[None]:
    workerinput = getattr(request.config, "workerinput", None)
    if workerinput is None:  # one process: nothing runs beside this test
        yield
        return
    locks = Path(tempfile.gettempdir()) / f"gw-tests-{workerinput['testrunuid']}"
    locks.mkdir(exist_ok=True)
    with open(locks / "gate", "a") as gate, open(locks / "running", "a") as running:
        if request.node.get_closest_marker("alone"):
            fcntl.flock(gate, fcntl.LOCK_EX)
            fcntl.flock(running, fcntl.LOCK_EX)
        else:
            fcntl.flock(gate, fcntl.LOCK_SH)  # waits while an `alone` test holds the gate
            fcntl.flock(gate, fcntl.LOCK_UN)
            fcntl.flock(running, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(running, fcntl.LOCK_UN)
            fcntl.flock(gate, fcntl.LOCK_UN)


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
