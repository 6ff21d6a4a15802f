"""deploy/: the documented install, as an administrator runs it on a fresh host (as root): a
throwaway system user, deploy/install.sh (useradd, `gateway init` as that user through runuser),
a dashboard account added as that user, then `gateway run` as that user (what the systemd unit
does), a recorded call, and nothing in the data directory owned by root."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from gateway import age
from gateway.config import load
from gateway.storage import index as ix
from gateway.storage.rows import RecordingStatus
from gateway.telephony.net import free_port, free_port_run
from tests.audio import dominant_frequency, split_channels
from tests.calls import ROOT, Proc
from tests.conftest import require_tool
from tests.prompts_fixture import write_prompts

pytestmark = pytest.mark.slow


def _reachable_by_others(path: Path) -> list[tuple[Path, int]]:
    """Give every directory above `path` the search bit for others (a checkout or a pyenv
    under /root is 0700); returns what to restore afterwards."""
    changed = []
    for d in [path, *path.parents]:
        if d.is_dir():
            mode = stat.S_IMODE(d.stat().st_mode)
            if not mode & 0o001:
                os.chmod(d, mode | 0o001)
                changed.append((d, mode))
    return changed


def test_the_documented_install_runs_a_node_as_its_own_user(tmp_path: Path) -> None:
    for tool in ("useradd", "userdel", "runuser", "kamailio"):
        require_tool(tool)
    if os.geteuid() != 0:
        pytest.fail("the install test needs root, as the install does (CI runs as root)")
    user = f"cgtest{os.getpid() % 100000}"
    base = Path(f"/tmp/cg-deploy-{os.getpid()}")  # outside pytest's 0700 tmp tree: the user must reach it
    base.mkdir(mode=0o755)
    data = base / "data"
    restore = _reachable_by_others(ROOT) + _reachable_by_others(
        Path(os.path.realpath(ROOT / ".venv/bin/python"))
    )
    key = tmp_path / "operator-key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    sip, pbx_port = free_port(), free_port()
    procs: list[Proc] = []
    try:
        res = subprocess.run(
            [
                "bash",
                str(ROOT / "deploy/install.sh"),
                "--no-systemd",
                "--user",
                user,
                "--data-dir",
                str(data),
                "--sip-listen",
                f"127.0.0.1:{sip}",
                "--pbx",
                f"sip:helpline@127.0.0.1:{pbx_port}",
                "--workers",
                "1",
                "--recipient",
                recipient,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        assert f"runuser -u {user} --" in res.stdout
        st = data.stat()
        assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid != 0
        # Ports free for this run, and the short test prompts (placed where the user can read them).
        prompts = write_prompts(base / "prompts")
        config = data / "gateway.toml"
        text = (
            config.read_text()
            .replace("worker_base_port = 5100", f"worker_base_port = {free_port_run(1)}")
            .replace('metrics_listen = "127.0.0.1:9464"', f'metrics_listen = "127.0.0.1:{free_port()}"')
            .replace('listen = "127.0.0.1:8080"', f'listen = "127.0.0.1:{free_port()}"')
            .replace('dir = ""', f'dir = "{prompts}"')
            .replace("grace_s = 3.0", "grace_s = 1.0")
            .replace("rtp_port = 40000", f"rtp_port = {free_port_run(100)}")
            .replace("rtp_port_range = 1000", "rtp_port_range = 100")
            .replace("drain_s = 300", "drain_s = 3")
        )
        config.write_text(text)  # rewritten in place: still the user's file
        gateway = [str(ROOT / ".venv/bin/gateway"), "--config", str(config)]
        as_user = ["runuser", "-u", user, "--"]
        # Root is refused (it would leave root-owned files the service cannot open) ...
        refused = subprocess.run(
            [*gateway, "user", "add", "ada", "--role", "admin"],
            input="a long password\n",
            capture_output=True,
            text=True,
        )
        assert refused.returncode == 3 and f"runuser -u {user} --" in refused.stderr
        # ... the documented command, as the user, works.
        added = subprocess.run(
            [*as_user, *gateway, "user", "add", "ada", "--role", "admin"],
            input="a long password\n",
            capture_output=True,
            text=True,
        )
        assert added.returncode == 0, added.stderr
        node = Proc([*gateway, "-v", "run"], prefix=as_user)
        procs.append(node)
        node.wait_for(lambda: any("listening for SIP" in line for line in node.lines), 40)
        pbx = Proc(
            [
                str(ROOT / ".venv/bin/python"),
                "-m",
                "simphone.phone",
                "pbx",
                "--port",
                str(pbx_port),
                "--tone",
                "1000",
            ]
        )
        procs.append(pbx)
        pbx.wait_for(lambda: pbx.event("ready"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                status = json.loads((data / "run" / "node.json").read_text())
                if status["workers"] and all(w["ready"] for w in status["workers"]):
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        caller = Proc(
            [
                str(ROOT / ".venv/bin/python"),
                "-m",
                "simphone.phone",
                "caller",
                "--port",
                str(free_port()),
                "--target",
                f"sip:1177@127.0.0.1:{sip}",
                "--tone",
                "440",
                "--hangup-after",
                "6",
            ]
        )
        procs.append(caller)
        caller.wait_exit(40)
        pbx.wait_exit(20)
        assert node.stop() == 0, node.stderr_lines[-10:]
        # Everything in the data directory belongs to the service user.
        roots = [str(p) for p in data.rglob("*") if p.lstat().st_uid == 0]
        assert roots == []
        cfg = load(config)
        index = ix.SqliteIndex(cfg.paths.index)
        [rec] = index.list_recordings()
        assert rec.status == RecordingStatus.COMPLETE
        with open(cfg.paths.spool_dir / rec.object_name, "rb") as f:
            plain = age.AgeReader(f, age.load_identity_file(key)).read_all()
        index.close()
        left, right = split_channels(plain[44:])
        assert abs(dominant_frequency(left) - 440) < 5 and abs(dominant_frequency(right) - 1000) < 5
        # The exposure audit as the service user, over a temp directory others write to: another
        # user's symbolic link (which fs.protected_symlinks refuses to follow) and a directory it
        # may not enter are skipped with a note, not a failure (issue 28.5).
        shared_tmp = base / "tmp"
        shared_tmp.mkdir()
        shared_tmp.chmod(0o1777)
        (shared_tmp / "private").mkdir(mode=0o700)
        link = shared_tmp / "their-link"
        link.symlink_to("/etc/hostname")
        os.lchown(link, 65534, 65534)  # nobody's
        scan = subprocess.run(
            [*as_user, "env", f"TMPDIR={shared_tmp}", *gateway, "audit", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        report = json.loads(scan.stdout)
        assert scan.returncode == 0 and report["ok"], scan.stdout + scan.stderr
        assert str(shared_tmp / "private") in [f["where"] for f in report["skipped"]]
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.proc.terminate()
                try:
                    p.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.proc.kill()
        # Whatever the user still runs (a Kamailio left behind by a failed stop) goes with it.
        subprocess.run(["pkill", "-KILL", "-u", user], capture_output=True)
        subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["groupdel", user], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
        for d, mode in reversed(restore):
            os.chmod(d, mode)


def test_the_unit_lets_the_drain_happen() -> None:
    """systemd must give the supervisor the whole drain: SIGTERM to it alone, and a stop timeout
    above the drain bound the configuration it ships with allows."""
    unit = (ROOT / "deploy/consent-gateway.service").read_text()
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#")
    )
    example = (ROOT / "deploy/gateway.toml.example").read_text()
    drain = float(next(line.split("=")[1] for line in example.splitlines() if line.startswith("drain_s")))
    assert settings["KillMode"] == "mixed" and settings["KillSignal"] == "SIGTERM"
    assert float(settings["TimeoutStopSec"]) > drain
    assert settings["LimitCORE"] == "0" and settings["MemorySwapMax"] == "0"


def test_install_says_what_to_do_without_systemd_or_when_the_user_cannot_run_the_gateway(
    tmp_path: Path, identity_file: tuple[Path, str]
) -> None:
    """Issue 28.3, 28.4, 28.16: on a host not booted with systemd the install goes on without a
    unit and says how to start the gateway; where the service user cannot run the checkout's
    .venv (an interpreter under root's home), it stops and says how to fix it; the data
    directory gets no shell dotfiles."""
    for tool in ("useradd", "userdel", "runuser"):
        require_tool(tool)
    if os.geteuid() != 0:
        pytest.fail("the install test needs root, as the install does (CI runs as root)")
    user = f"cgins{os.getpid() % 100000}"
    base = Path(f"/tmp/cg-install-{os.getpid()}")
    base.mkdir(mode=0o755)
    # A checkout whose .venv runs an interpreter in a directory only root may enter.
    private = base / "root-home"
    private.mkdir(mode=0o700)
    (private / "venv").symlink_to(ROOT / ".venv")
    fake = base / "repo"
    (fake / "deploy").mkdir(parents=True)
    (fake / ".venv/bin").mkdir(parents=True)
    shutil.copy(ROOT / "deploy/install.sh", fake / "deploy/install.sh")
    gateway = fake / ".venv/bin/gateway"
    gateway.write_text(f'#!/bin/sh\nexec {private}/venv/bin/python -m gateway "$@"\n')
    gateway.chmod(0o755)
    for d in (fake, fake / "deploy", fake / ".venv", fake / ".venv/bin"):
        d.chmod(0o755)
    restore = _reachable_by_others(ROOT) + _reachable_by_others(
        Path(os.path.realpath(ROOT / ".venv/bin/python"))
    )
    env = {**os.environ, "SYSTEMD_RUN_DIR": str(base / "no-systemd-here"), "PYTHONPATH": str(ROOT)}
    _, recipient = identity_file

    def install() -> subprocess.CompletedProcess[str]:
        args = ["--user", user, "--data-dir", str(base / "data"), "--recipient", recipient]
        return subprocess.run(
            ["bash", str(fake / "deploy/install.sh"), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    try:
        res = install()
        assert res.returncode == 1, res.stdout + res.stderr
        assert f"the user {user} cannot run {gateway}" in res.stderr and "rm -rf" in res.stderr
        assert "not booted with systemd" in res.stderr
        assert not (base / "data" / "gateway.toml").exists()
        assert [p.name for p in (base / "data").iterdir()] == [], "no dotfiles from /etc/skel"
        # The interpreter made reachable (what setup.sh's system Python gives): the install runs.
        private.chmod(0o755)
        res = install()
        assert res.returncode == 0, res.stdout + res.stderr
        assert "not booted with systemd" in res.stderr
        assert f"runuser -u {user} -- {gateway} --config {base / 'data'}/gateway.toml run" in res.stdout
        assert not any(p.name.startswith(".") for p in (base / "data").iterdir())
    finally:
        subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["groupdel", user], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
        for d, mode in reversed(restore):
            os.chmod(d, mode)
