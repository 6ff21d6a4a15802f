"""deploy/README.md's "The first two nodes", run as written (issue 28.9): the least-privilege
database, the trial store, two nodes installed on one host with their own users, ports and
data directories, one account, both nodes started. Then a call through node A is recorded into
the locked bucket, and node B lists both nodes and verifies node A's recording."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gateway.telephony.net import free_port, free_port_run
from tests import pg
from tests.calls import ROOT, Proc
from tests.conftest import require_tool
from tests.test_deploy import _reachable_by_others

pytestmark = pytest.mark.slow


def recipe() -> str:
    text = (ROOT / "deploy" / "README.md").read_text()
    after = text.split("<!-- recipe: first-two-nodes -->", 1)[1]
    block = re.search(r"```sh\n(.*?)```", after, re.S)
    assert block is not None, "the recipe's shell block"
    return block.group(1)


def status(data: Path) -> dict:
    return json.loads((data / "run" / "node.json").read_text())


def test_the_first_two_nodes_recipe_runs_as_written(
    tmp_path: Path, pg_server: pg.PgServer, identity_file: tuple[Path, str]
) -> None:
    for tool in ("useradd", "userdel", "runuser", "kamailio", "psql"):
        require_tool(tool)
    if os.geteuid() != 0:
        pytest.fail("the recipe runs as root, as an administrator does (CI runs as root)")
    tag = str(os.getpid() % 100000)
    base = Path(f"/tmp/cg-recipe-{tag}")
    base.mkdir(mode=0o755)
    users = (f"cga{tag}", f"cgb{tag}")
    restore = _reachable_by_others(ROOT) + _reachable_by_others(
        Path(os.path.realpath(ROOT / ".venv/bin/python"))
    )
    _, recipient = identity_file
    pbx_port, sip_a, sip_b = free_port(), free_port(), free_port()
    weed = dict(zip(("master", "volume", "filer", "s3"), range(free_port_run(8), 1 << 16, 2), strict=False))
    env = {
        **os.environ,
        "RECIPIENT": recipient,
        "PBX": f"sip:helpline@127.0.0.1:{pbx_port}",
        "PGHOST": str(pg_server.socket_dir),
        "DB": f"gw_recipe_{tag}",
        "DATA_ROOT": str(base),
        "USER_A": users[0],
        "USER_B": users[1],
        "SIP_A": f"127.0.0.2:{sip_a}",
        "SIP_B": f"127.0.0.3:{sip_b}",
        "DASH_A": f"127.0.0.1:{free_port()}",
        "DASH_B": f"127.0.0.1:{free_port()}",
        "METRICS_A": f"127.0.0.1:{free_port()}",
        "METRICS_B": f"127.0.0.1:{free_port()}",
        "WORKERS_A": str(free_port_run(2)),
        "WORKERS_B": str(free_port_run(2)),
        "RTP_A": str(free_port_run(100)),  # pjsua skips a port in use within its range
        "RTP_B": str(free_port_run(100)),
        "S3_PORT": str(weed["s3"]),
        "SEAWEEDFS_FLAGS": " ".join(
            [
                f"-master.port={weed['master']}",
                f"-volume.port={weed['volume']}",
                f"-filer.port={weed['filer']}",
            ]
            + [f"-{k}.port.grpc={v + 1}" for k, v in weed.items()]
            + ["-volume.max=40", "-master.volumeSizeLimitMB=16"]
        ),
        "ADMIN_PASSWORD": "a long admin password",
    }
    procs: list[Proc] = []
    data_a, data_b = base / "gateway-a", base / "gateway-b"
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", recipe()],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "signing key fingerprint" in done.stdout and "made bucket recordings" in done.stdout
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if all(
                    status(d)["workers"] and all(w["ready"] for w in status(d)["workers"])
                    for d in (data_a, data_b)
                ):
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.3)
        else:
            logs = [(base / f"gateway-{n}.log").read_text()[-2000:] for n in "ab"]
            raise AssertionError(f"nodes not ready: {logs}")

        python = str(ROOT / ".venv/bin/python")
        pbx = Proc(
            [
                python,
                "-m",
                "simphone.phone",
                "pbx",
                "--port",
                str(pbx_port),
                "--tone",
                "1000",
                "--timeout",
                "60",
            ]
        )
        procs.append(pbx)
        pbx.wait_for(lambda: pbx.event("ready"))
        caller = Proc([python, "-m", "simphone.phone", "caller", "--port", str(free_port()), "--target",
                       f"sip:1177@127.0.0.2:{sip_a}", "--tone", "440", "--hangup-after", "16", "--timeout", "60"])  # fmt: skip
        procs.append(caller)
        caller.wait_exit(60)
        pbx.wait_exit(30)
        assert pbx.event("incoming")["headers"]["x-recording-consent"] == "granted"

        as_b = ["runuser", "-u", users[1], "--", "env", "PGPASSWORD=x", "AWS_ACCESS_KEY_ID=gateway",
                f"AWS_SECRET_ACCESS_KEY={secret(base)}", str(ROOT / ".venv/bin/gateway"), "--config",
                str(data_b / "gateway.toml")]  # fmt: skip
        deadline = time.monotonic() + 60  # node A uploads the finished recording to the bucket
        rows: list[dict] = []
        while time.monotonic() < deadline:
            listed = subprocess.run(
                [*as_b, "recordings", "list", "--json"], capture_output=True, text=True, cwd=ROOT
            )
            rows = json.loads(listed.stdout or "[]")
            if (
                rows
                and all(r["status"] == "complete" for r in rows)
                and not list((data_a / "spool").glob("*.age"))
            ):
                break
            time.sleep(1)
        assert len(rows) == 1 and rows[0]["status"] == "complete", rows
        st = subprocess.run([*as_b, "status", "--json"], capture_output=True, text=True, cwd=ROOT)
        nodes = {n["name"]: n for n in json.loads(st.stdout)["nodes"]}
        assert set(nodes) == {"node-a", "node-b"} and all(n["up"] for n in nodes.values()), st.stdout
        verify = subprocess.run([*as_b, "recordings", "verify"], capture_output=True, text=True, cwd=ROOT)
        assert verify.returncode == 0 and "1 recording(s) checked, 0 problem(s)" in verify.stdout, (
            verify.stdout
        )
        signers = subprocess.run([*as_b, "audit", "signers"], capture_output=True, text=True, cwd=ROOT)
        assert signers.stdout.count("trusted") == 2, signers.stdout
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.proc.kill()
        for user in users:
            subprocess.run(["pkill", "-TERM", "-u", user], capture_output=True)
        time.sleep(2)
        for user in users:
            subprocess.run(["pkill", "-KILL", "-u", user], capture_output=True)
            subprocess.run(["userdel", user], capture_output=True)
            subprocess.run(["groupdel", user], capture_output=True)
        for pid in _started_under(base):  # the trial store, run as root by the recipe
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)
        for d, mode in reversed(restore):
            os.chmod(d, mode)


def secret(base: Path) -> str:
    """The store credential the recipe made (in the trial store's identity file)."""
    return json.loads((base / "seaweedfs" / "s3.json").read_text())["identities"][0]["credentials"][0][
        "secretKey"
    ]


def _started_under(base: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(base).encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids
