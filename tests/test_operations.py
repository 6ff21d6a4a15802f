"""First-day operations as an administrator meets them: one gateway per data directory, a
status that tells a stopped gateway from a running one, a fresh node that passes its own
exposure audit, and a busy port that stops the start with one line instead of a hang."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from gateway.cli import exitcodes
from tests.calls import ROOT, CallLab
from tests.conftest import require_tool


def gateway_cmd(lab: CallLab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / ".venv/bin/gateway"), "--config", str(lab.gw.config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_one_gateway_per_data_directory_and_an_honest_status(tmp_path: Path) -> None:
    require_tool("kamailio")
    lab = CallLab(tmp_path, workers=1)
    try:
        lab.start_gateway()
        rundir = lab.gw.dir / "run" / "kamailio"
        before = {p.name: p.read_bytes() for p in rundir.iterdir() if p.is_file()}
        second = gateway_cmd(lab, "run")
        assert second.returncode == exitcodes.EXIT_CONFIG, second.stderr
        assert "another `gateway run`" in second.stderr and "Traceback" not in second.stderr
        after = {p.name: p.read_bytes() for p in rundir.iterdir() if p.is_file() and p.name in before}
        assert after == before, "the running node's Kamailio config and lists are untouched"
        st = gateway_cmd(lab, "status", "--json")
        assert st.returncode == 0 and json.loads(st.stdout)["workers"][0]["ready"]
        # A freshly started node passes its own exposure audit (run/ was once created 0755).
        # (The system temp directory of a test machine, where root owns everything, is not
        # this gateway's: an empty one stands in for it.)
        (tmp_path / "empty-tmp").mkdir()
        scan = gateway_cmd(lab, "audit", "--json", "--temp-dir", str(tmp_path / "empty-tmp"))
        assert scan.returncode == 0, scan.stdout
        assert lab.gateway is not None and lab.gateway.stop() == 0
        stopped = gateway_cmd(lab, "status")
        assert stopped.returncode == exitcodes.EXIT_NOT_RUNNING
        assert "no gateway is running" in stopped.stderr and "pid" not in stopped.stdout
    finally:
        lab.close()


def test_a_single_worker_with_its_port_taken_exits_3_naming_the_setting(tmp_path: Path) -> None:
    lab = CallLab(tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", lab.sip_port))
        res = gateway_cmd(lab, "run")  # it used to hang here for ever, deaf to SIGINT and SIGTERM
    assert res.returncode == exitcodes.EXIT_CONFIG
    lines = [line for line in res.stderr.splitlines() if line.startswith("gateway:")]
    assert len(lines) == 1 and "[sip] listen (UDP)" in lines[0] and f"127.0.0.1:{lab.sip_port}" in lines[0]
    assert "Traceback" not in res.stderr
    lab.close()


def test_a_gateway_without_recipients_says_at_start_that_it_records_nothing(tmp_path: Path) -> None:
    """Issue 28.12 (the start is then refused by a taken port, to keep the test short)."""
    lab = CallLab(tmp_path)
    lab.gw.set("recording", "recipients", [])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", lab.sip_port))
        res = gateway_cmd(lab, "run")
    assert "recipients is empty" in res.stderr and "nothing is recorded" in res.stderr
    lab.close()
