"""The node: Kamailio in front of a worker pool, with real processes, crashes and floods."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from gateway import age
from gateway.storage.rows import RecordingStatus
from tests.audio import dominant_frequency, split_channels
from tests.calls import CallLab
from tests.conftest import require_tool

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _kamailio() -> None:
    require_tool("kamailio")


def test_calls_through_kamailio_survive_a_worker_killed_mid_call(tmp_path: Path) -> None:
    lab = CallLab(tmp_path, workers=2)
    try:
        lab.start_gateway()
        pbx = lab.peer("pbx", "--tone", "1000", "--calls", "2", "--timeout", "40")
        first = lab.peer("caller", "--hangup-after", "12", "--timeout", "30")
        first.wait_for(lambda: first.event("confirmed"))
        second = lab.peer("caller", "--hangup-after", "12", "--timeout", "30")
        gw = lab.gw.open()
        deadline = time.monotonic() + 15
        while len(gw.index.list_recordings()) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        recs = gw.index.list_recordings()
        assert len(recs) == 2 and len({r.writer for r in recs}) == 2, "load spread over both workers"
        time.sleep(4)  # let both recordings seal some chunks
        victim = recs[0]
        pid = int(victim.writer.split(":")[1])
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            st = lab.node_status()
            if any(w["restarts"] == 1 and w["ready"] for w in st["workers"]):
                break
            time.sleep(0.05)
        assert any(w["restarts"] == 1 and w["ready"] for w in lab.node_status()["workers"])
        assert time.monotonic() - killed_at < 2.5, "a replacement serves within about 2 s"
        first.wait_exit()
        second.wait_exit()
        pbx.proc.terminate()
        # The dead worker's call is not counted live for ever (status, metrics, dashboard).
        lab.wait_status(lambda st: st["live_calls"] == 0, 5)
        survivor = gw.index.get_recording(recs[1].id)
        assert survivor.status == RecordingStatus.COMPLETE
        # The killed worker's recording: recovered by the node itself, without an operator (it
        # stayed "recording" until the next start before): truncated, its sealed prefix signed,
        # decryptable up to its last sealed chunk.
        deadline = time.monotonic() + 10
        while (
            gw.index.get_recording(victim.id).status == RecordingStatus.RECORDING
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        row = gw.index.get_recording(victim.id)
        assert row.status == RecordingStatus.TRUNCATED and row.signature
        assert any(
            e.action == "recording.truncated" and e.subject == victim.id for e in gw.index.audit_entries()
        ), [e.action for e in gw.index.audit_entries()]
        with gw.store.open(row.object_name) as f:
            reader = age.AgeReader(f, age.load_identity_file(lab.gw.key), recover=True)
            plain = reader.read_all()
        left, right = split_channels(plain[44:])
        assert len(left) > 8000 and abs(dominant_frequency(right) - 1000) < 5
        assert lab.gateway is not None and lab.gateway.stop() == 0
        # The supervisor anchored the audit log in its log stream as it stopped: the log
        # verifies against what that stream (a journal, a log shipper) kept.
        stream = tmp_path / "gateway-log.jsonl"
        stream.write_text("\n".join(lab.gateway.stderr_lines) + "\n")
        assert lab.gw.run("audit", "verify", "--checkpoint", str(stream)) == 0
    finally:
        lab.close()


@pytest.mark.parametrize("fail_closed", [False, True], ids=["fail-open", "fail-closed"])
def test_no_free_worker(tmp_path: Path, fail_closed: bool) -> None:
    lab = CallLab(tmp_path, workers=1, fail_closed=fail_closed)
    try:
        lab.start_gateway()
        pbx = lab.peer("pbx", "--tone", "1000", "--calls", "3" if not fail_closed else "2", "--timeout", "30")
        callers = [lab.peer("caller", "--hangup-after", "5", "--timeout", "20") for _ in range(2)]
        for c in callers:
            c.wait_for(lambda c=c: c.event("confirmed"))
        third = lab.peer("caller", "--hangup-after", "2", "--timeout", "20")
        gone = third.wait_for(lambda: third.event("disconnected"), 20)
        for c in callers:
            c.wait_exit()
        pbx.wait_exit()
        consents = [e["headers"]["x-recording-consent"] for e in pbx.events() if e["event"] == "incoming"]
        if fail_closed:
            assert gone["code"] == 503 and "unavailable" not in consents
        else:
            assert gone["code"] == 200 and third.event("confirmed") is not None
            assert consents.count("unavailable") == 1, consents
            metrics = scrape(
                lab,
                lambda m: (
                    m.get("gateway_failopen_total") == 1 and m.get("gateway_recordings_saved_total") == 2
                ),
            )
            assert metrics["gateway_calls_started_total"] == 2
            assert metrics['gateway_consent_total{outcome="granted"}'] == 2
            assert metrics["gateway_workers_ready"] == 1 and metrics["gateway_capacity_calls"] == 2
        assert len(lab.gw.open().index.list_recordings()) == 2  # the third call was never recorded
    finally:
        lab.close()


def scrape(lab: CallLab, ready, timeout: float = 10.0) -> dict[str, float]:
    """The node's /metrics as a dict, once `ready(metrics)` holds (or at the timeout)."""
    import re
    import urllib.request

    port = re.search(r'metrics_listen = "127.0.0.1:(\d+)"', lab.gw.config.read_text()).group(1)
    deadline = time.monotonic() + timeout
    while True:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        metrics = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }
        if ready(metrics) or time.monotonic() > deadline:
            return metrics
        time.sleep(0.3)


def test_sources_outside_the_allowlist_get_403(tmp_path: Path) -> None:
    lab = CallLab(tmp_path, workers=1)
    try:
        lab.start_gateway()
        stranger = lab.peer("caller", "--bind", "127.0.0.2", "--timeout", "10")
        assert stranger.wait_for(lambda: stranger.event("disconnected"))["code"] == 403
    finally:
        lab.close()


def test_kamailio_killed_is_restarted_and_calls_go_on(tmp_path: Path) -> None:
    lab = CallLab(tmp_path, workers=1)
    try:
        lab.start_gateway()
        old = lab.node_status()["kamailio"]["pid"]
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while lab.node_status()["kamailio"]["restarts"] < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert lab.node_status()["kamailio"]["restarts"] == 1
        time.sleep(0.5)
        # Kamailio's forked children died with it: nothing of the old process group still runs
        # (a killed orphan may linger as a zombie until it is reaped; it holds no socket).
        survivors = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                state, _, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
                if int(pgrp) == old and state != "Z":
                    survivors.append(stat.parent.name)
            except (OSError, IndexError, ValueError):
                pass
        assert survivors == [], f"orphaned Kamailio processes: {survivors}"
        time.sleep(1)
        pbx = lab.peer("pbx", "--tone", "1000")
        caller = lab.peer("caller", "--hangup-after", "4")
        caller.wait_exit()
        pbx.wait_exit()
        assert pbx.event("incoming")["headers"]["x-recording-consent"] == "granted"
    finally:
        lab.close()


def test_sigterm_drains_calls_in_progress(tmp_path: Path) -> None:
    lab = CallLab(tmp_path, workers=1)
    lab.gw.config.write_text(lab.gw.config.read_text().replace("drain_s = 3", "drain_s = 30"))
    try:
        lab.start_gateway()
        pbx = lab.peer("pbx", "--tone", "1000", "--calls", "2", "--timeout", "30")
        caller = lab.peer("caller", "--hangup-after", "9", "--timeout", "30")
        pbx.wait_for(lambda: pbx.event("confirmed"), 15)
        assert lab.gateway is not None
        os.kill(lab.gateway.target_pid(), signal.SIGTERM)
        # New calls are no longer taken by a worker: fail-open sends them to the PBX unrecorded.
        late = lab.peer("caller", "--timeout", "10", "--hangup-after", "1")
        late.wait_exit()
        caller.wait_exit()
        assert caller.event("disconnected")["connected_s"] > 8.5, "the call in progress ran to its end"
        consents = [e["headers"]["x-recording-consent"] for e in pbx.events() if e["event"] == "incoming"]
        assert consents == ["granted", "unavailable"], consents
        assert lab.gateway.wait_exit(30) == 0
        [rec] = lab.gw.open().index.list_recordings()
        assert rec.status == RecordingStatus.COMPLETE and rec.duration_s > 5
    finally:
        lab.close()


def test_supervisor_killed_kamailio_and_workers_go_on_until_the_node_starts_again(tmp_path: Path) -> None:
    """Killed with SIGKILL, the supervisor leaves Kamailio, the fork server and the workers
    serving (a call still goes through); the node's next start ends them (they hold its
    ports) and serves again (issue 28.18)."""
    lab = CallLab(tmp_path, workers=1)
    old: list[int] = []
    try:
        lab.start_gateway()
        st = lab.node_status()
        old = [st["kamailio"]["pid"], st["forkserver"]["pid"], *(w["pid"] for w in st["workers"])]
        assert lab.gateway is not None
        os.kill(lab.gateway.target_pid(), signal.SIGKILL)
        lab.gateway.wait_exit(10)
        pbx = lab.peer("pbx", "--tone", "1000")
        caller = lab.peer("caller", "--hangup-after", "4")
        caller.wait_exit()
        pbx.wait_exit()
        assert pbx.event("incoming")["headers"]["x-recording-consent"] == "granted"
        assert alive(old[0]) and alive(old[-1]), "Kamailio and the worker served the call"
        lab.start_gateway()
        assert not any(alive(pid) for pid in old), "the new run ended the old one's processes"
        assert any("last run was killed" in line for line in lab.gateway.stderr_lines)
        pbx = lab.peer("pbx", "--tone", "1000")
        caller = lab.peer("caller", "--hangup-after", "3")
        caller.wait_exit()
        pbx.wait_exit()
        assert pbx.event("incoming")["headers"]["x-recording-consent"] == "granted"
        lab.stop_gateway()
    finally:
        # If the test failed before the node ended them: stop them, by pid (Kamailio with its
        # own children: its process group).
        for i, pid in enumerate(old):
            if alive(pid):
                (os.killpg if i == 0 else os.kill)(pid, signal.SIGKILL)
        lab.close()


def alive(pid: int) -> bool:
    from gateway.storage.liveness import start_time

    return start_time(pid) is not None


def test_ctrl_c_in_the_terminal_stops_the_whole_node_cleanly(tmp_path: Path) -> None:
    """Ctrl-C reaches every process of the node's process group: the supervisor drains and
    stops the others, nothing says "interrupted", and it exits 0 (issue 28.14)."""
    lab = CallLab(tmp_path, workers=1)
    try:
        lab.start_gateway(prefix=["setsid", "--wait", "--fork"])  # its own process group, as in a terminal
        assert lab.gateway is not None
        st = lab.node_status()
        pids = [st["supervisor_pid"], st["kamailio"]["pid"], st["forkserver"]["pid"], st["workers"][0]["pid"]]
        os.killpg(lab.gateway.target_pid(), signal.SIGINT)
        assert lab.gateway.wait_exit(30) == 0
        time.sleep(1)
        assert not any(alive(pid) for pid in pids)
        assert not any("interrupted" in line for line in lab.gateway.stderr_lines + lab.gateway.lines)
        # A clean start and stop logs no error: an operator's alerting reads the level (Kamailio
        # once logged CRITICAL at every start, failing to raise the core limit the gateway sets
        # to 0).
        errors = [line for line in lab.gateway.stderr_lines if '"level": "error"' in line]
        assert errors == []
    finally:
        lab.close()


def test_rolling_restart_drops_no_call(tmp_path: Path) -> None:
    lab = CallLab(tmp_path, workers=2)
    lab.gw.config.write_text(lab.gw.config.read_text().replace("drain_s = 3", "drain_s = 30"))
    try:
        lab.start_gateway()
        before = {w["index"]: w["pid"] for w in lab.node_status()["workers"]}
        pbx = lab.peer("pbx", "--tone", "1000", "--calls", "2", "--timeout", "40")
        caller = lab.peer("caller", "--hangup-after", "8", "--timeout", "30")
        pbx.wait_for(lambda: pbx.event("confirmed"), 15)
        assert lab.gw.run("workers", "restart") == 0
        caller.wait_exit()
        assert caller.event("disconnected")["connected_s"] > 7.5, "the call was not dropped"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            st = lab.node_status()
            if all(w["rolled"] == 1 and w["ready"] for w in st["workers"]):
                break
            time.sleep(0.2)
        st = lab.node_status()
        assert all(w["rolled"] == 1 and w["ready"] and w["pid"] != before[w["index"]] for w in st["workers"])
        after = lab.peer("caller", "--hangup-after", "3", "--timeout", "20")
        after.wait_exit()
        pbx.wait_exit()
        assert [e["headers"]["x-recording-consent"] for e in pbx.events() if e["event"] == "incoming"] == [
            "granted",
            "granted",
        ]
        assert {r.status for r in lab.gw.open().index.list_recordings()} == {RecordingStatus.COMPLETE}
    finally:
        lab.close()


def test_malformed_and_flooding_sources_do_not_disturb_calls(tmp_path: Path) -> None:
    """Garbage, a wrong Content-Length, an oversized header and a flood from an allowlisted
    trunk: each gets nothing or an error, the flooding source is banned, and a call in
    progress keeps going."""
    import socket

    lab = CallLab(tmp_path, workers=1)
    lab.gw.config.write_text(lab.gw.config.read_text().replace("trunks = []", 'trunks = ["127.0.0.3"]'))
    try:
        lab.start_gateway()
        pbx = lab.peer("pbx", "--tone", "1000", "--timeout", "40")
        caller = lab.peer("caller", "--hangup-after", "10", "--timeout", "30")
        pbx.wait_for(lambda: pbx.event("confirmed"), 15)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.3", 0))
        s.settimeout(0.3)
        target = ("127.0.0.1", lab.sip_port)

        def options(i: int, extra: str = "", length: int = 0) -> bytes:
            return (
                f"OPTIONS sip:frontdoor@127.0.0.1:{lab.sip_port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.3:{s.getsockname()[1]};branch=z9hG4bK{i}\r\n"
                f"From: <sip:flood@127.0.0.3>;tag={i}\r\nTo: <sip:frontdoor@127.0.0.1>\r\n"
                f"Call-ID: flood-{i}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n{extra}"
                f"Content-Length: {length}\r\n\r\n"
            ).encode()

        def reply() -> bytes:
            try:
                return s.recv(65536)
            except TimeoutError:
                return b""

        s.sendto(b"\x00\xffnot sip at all", target)
        assert reply() == b"", "garbage gets no answer"
        s.sendto(options(1, length=500), target)  # claims a body it does not have
        assert reply().startswith(b"SIP/2.0 400 Content-Length"), "a clear error"
        s.sendto(options(2, extra="X-Big: " + "a" * 60000 + "\r\n"), target)
        big = reply()
        assert big == b"" or big.startswith(b"SIP/2.0 513"), big[:80]  # [sip] max_message_bytes
        s.sendto(options(3), target)
        assert reply().startswith(b"SIP/2.0 200"), "a well-formed request is answered"
        answered = 0
        for i in range(400):  # a flood
            s.sendto(options(100 + i), target)
        try:
            while True:
                s.recv(4096)
                answered += 1
        except TimeoutError:
            pass
        assert answered < 300, "pike stopped answering the flood"
        s.sendto(options(9999), target)
        try:
            s.recv(4096)
            banned = False
        except TimeoutError:
            banned = True
        assert banned, "the flooding source is banned"
        caller.wait_exit()
        pbx.wait_exit()
        assert caller.event("disconnected")["connected_s"] > 9.5, "the call in progress was not affected"
        assert lab.gateway is not None and lab.gateway.proc.poll() is None
    finally:
        lab.close()


def test_a_hung_worker_is_killed_and_replaced_while_calls_go_to_the_other(tmp_path: Path) -> None:
    """A worker that stops answering (SIGSTOP: its loop no longer turns, so neither SIP OPTIONS
    nor the supervisor's heartbeat get an answer) is taken out, killed and replaced; a call
    placed meanwhile is answered by the other worker and recorded."""
    lab = CallLab(tmp_path, workers=2)
    try:
        lab.start_gateway()
        victim = lab.node_status()["workers"][0]
        os.kill(victim["pid"], signal.SIGSTOP)
        stopped_at = time.monotonic()
        pbx = lab.peer("pbx", "--tone", "1000", "--calls", "1", "--timeout", "40")
        caller = lab.peer("caller", "--hangup-after", "4", "--timeout", "30")
        caller.wait_exit()
        assert caller.event("disconnected")["connected_s"] > 3.5, (
            "answered and bridged despite the hung worker"
        )
        w = lab.wait_status(lambda st: st["workers"][0]["hung"] == 1 and st["workers"][0]["ready"], 20)[
            "workers"
        ][0]
        assert w["pid"] != victim["pid"], w
        assert time.monotonic() - stopped_at < 20
        with pytest.raises(ProcessLookupError):
            os.kill(victim["pid"], 0)  # killed, not left stopped
        assert any("hung (its loop no longer runs)" in line for line in lab.gateway.stderr_lines)
        pbx.wait_exit()
        assert lab.gateway.stop() == 0
        assert [r.status for r in lab.gw.open().index.list_recordings()] == [RecordingStatus.COMPLETE]
    finally:
        lab.close()


def test_the_pool_grows_to_keep_spare_capacity_and_shrinks_when_idle(tmp_path: Path) -> None:
    lab = CallLab(tmp_path, workers=1)
    text = lab.gw.config.read_text()
    lab.gw.config.write_text(
        text.replace("max_workers = 0", "max_workers = 3").replace("idle_retire_s = 60", "idle_retire_s = 2")
    )
    try:
        lab.start_gateway()
        assert len(lab.node_status()["workers"]) == 1
        pbx = lab.peer("pbx", "--tone", "1000", "--calls", "2", "--timeout", "60")
        first = lab.peer("caller", "--hangup-after", "10", "--timeout", "40")
        first.wait_for(lambda: first.event("confirmed"), 15)
        # One call on the only worker leaves 1 free call, short of the 2 spare: a second worker.
        st = lab.wait_status(lambda s: len(s["workers"]) == 2 and all(w["ready"] for w in s["workers"]))
        assert st["pool"]["grown"] == 1 and st["capacity_calls"] == 4
        second = lab.peer(
            "caller", "--hangup-after", "4", "--timeout", "40"
        )  # served while the first goes on
        second.wait_exit()
        assert second.event("disconnected")["connected_s"] > 3.5
        first.wait_exit()
        pbx.wait_exit()
        # Both calls over: the grown worker is idle, 2 spare without it, so it retires.
        st = lab.wait_status(lambda s: len(s["workers"]) == 1 and s["pool"]["retired"] >= 1, 20)
        assert st["workers"][0]["index"] == 0 and st["workers"][0]["ready"]
        assert lab.gateway.stop() == 0
        assert {r.status for r in lab.gw.open().index.list_recordings()} == {RecordingStatus.COMPLETE}
    finally:
        lab.close()


def test_a_busy_port_refuses_the_start_naming_the_setting(tmp_path: Path) -> None:
    import socket
    import subprocess

    from tests.calls import ROOT

    lab = CallLab(tmp_path, workers=2)
    cmd = [str(ROOT / ".venv/bin/gateway"), "--config", str(lab.gw.config), "run"]
    try:
        for host, port, kind, setting in (
            ("127.0.0.1", lab.sip_port, socket.SOCK_DGRAM, "[sip] listen (UDP)"),
            (
                "127.0.0.1",
                lab.gw.open().config.node.worker_base_port + 1,
                socket.SOCK_STREAM,
                "[node] worker_base_port (worker 1)",
            ),
        ):
            with socket.socket(socket.AF_INET, kind) as squatter:
                squatter.bind((host, port))
                if kind == socket.SOCK_STREAM:
                    squatter.listen()
                res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            assert res.returncode == 3, res.stderr[-2000:]
            assert (
                setting in res.stderr and f"127.0.0.1:{port}" in res.stderr and "Traceback" not in res.stderr
            )
        # Nothing was left running: no Kamailio, no worker of this gateway.
        ours = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if str(lab.gw.dir).encode() in (proc / "cmdline").read_bytes():
                    ours.append(proc.name)
            except OSError:
                pass
        assert ours == []
    finally:
        lab.close()


def test_a_run_directory_too_deep_for_kamailio_refuses_the_start_naming_the_setting(tmp_path: Path) -> None:
    """Kamailio's control socket sits in the run directory; a path past its limit used to end in
    "Kamailio did not start" with the reason only in Kamailio's discarded stderr."""
    import subprocess

    from tests.calls import ROOT

    lab = CallLab(tmp_path, workers=1)
    deep = tmp_path / ("d" * 60) / ("e" * 40) / "run"
    lab.gw.set("calls", "event_socket", str(deep / "gw.sock"))
    try:
        res = subprocess.run(
            [str(ROOT / ".venv/bin/gateway"), "--config", str(lab.gw.config), "run"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 3, res.stderr[-2000:]
        assert "[calls] event_socket" in res.stderr and "too deep" in res.stderr, res.stderr[-2000:]
        assert "Traceback" not in res.stderr
    finally:
        lab.close()


def test_calls_overflow_to_a_peer_node_before_failing_open(tmp_path: Path) -> None:
    """Two nodes on loopback, each with one worker (two calls), each listing the other as a
    peer. Of five concurrent calls to node A, two are recorded by A, two overflow to B and are
    recorded there, and the fifth, which B cannot take either, comes back as 503 (B never
    sends a peer's call on) and A fails it open to the PBX, marked unavailable."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = CallLab(tmp_path / "a", workers=1)
    b = CallLab(tmp_path / "b", workers=1)
    b.gw.config.write_text(
        b.gw.config.read_text().replace("peers = []", f'peers = ["127.0.0.1:{a.sip_port}"]')
    )
    a.gw.config.write_text(
        a.gw.config.read_text().replace("peers = []", f'peers = ["127.0.0.1:{b.sip_port}"]')
    )
    try:
        b.start_gateway()
        a.start_gateway()
        # Each node has its own PBX here (one pjsua process takes at most 4 calls).
        pbx = a.peer("pbx", "--tone", "1000", "--calls", "3", "--timeout", "60")
        pbx_b = b.peer("pbx", "--tone", "1000", "--calls", "2", "--timeout", "60")
        callers = []
        for _ in range(5):
            c = a.peer("caller", "--hangup-after", "9", "--timeout", "40")
            c.wait_for(lambda c=c: c.event("confirmed"), 15)
            callers.append(c)
        for c in callers:
            c.wait_exit()
            assert c.event("disconnected")["connected_s"] > 8.5
        pbx.wait_exit()
        pbx_b.wait_exit()
        consents = [e["headers"]["x-recording-consent"] for e in pbx.events() if e["event"] == "incoming"]
        assert sorted(consents) == ["granted"] * 2 + ["unavailable"], consents
        consents = [e["headers"]["x-recording-consent"] for e in pbx_b.events() if e["event"] == "incoming"]
        assert consents == ["granted"] * 2, consents
        assert a.node_status()["failopen"] == 1 and b.node_status()["failopen"] == 0
        assert a.gateway.stop() == 0 and b.gateway.stop() == 0
        assert [r.status for r in a.gw.open().index.list_recordings()] == [RecordingStatus.COMPLETE] * 2
        assert [r.status for r in b.gw.open().index.list_recordings()] == [RecordingStatus.COMPLETE] * 2
    finally:
        a.close()
        b.close()


def test_the_front_door_limits_hostile_requests(tmp_path: Path) -> None:
    """An oversized request gets 513, an INVITE with an absurd SDP 488 (too large at the front
    door, too many media streams at the worker), and a trunk may have only so many INVITEs
    unconfirmed at once: the rest get 503 while a real call from elsewhere is recorded."""
    import socket

    lab = CallLab(tmp_path, workers=2)
    text = (
        lab.gw.config.read_text()
        .replace("trunks = []", 'trunks = ["127.0.0.3"]')
        .replace("max_unconfirmed_invites = 8", "max_unconfirmed_invites = 2")
    )
    lab.gw.config.write_text(text)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        lab.start_gateway()
        s.bind(("127.0.0.3", 0))
        s.settimeout(5)
        me = s.getsockname()[1]

        def invite(call: str, media: int = 1, pad: int = 0) -> None:
            sdp = "v=0\r\no=x 1 1 IN IP4 127.0.0.3\r\ns=-\r\nc=IN IP4 127.0.0.3\r\nt=0 0\r\n" + "".join(
                f"m=audio {30000 + 2 * i} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n" for i in range(media)
            )
            msg = (
                f"INVITE sip:1177@127.0.0.1:{lab.sip_port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.3:{me};branch=z9hG4bK{call}\r\n"
                f"From: <sip:+4687000000@127.0.0.3>;tag={call}\r\nTo: <sip:1177@127.0.0.1>\r\n"
                f"Call-ID: {call}\r\nCSeq: 1 INVITE\r\nContact: <sip:x@127.0.0.3:{me}>\r\nMax-Forwards: 70\r\n"
                + (f"X-Pad: {'p' * pad}\r\n" if pad else "")
                + f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}"
            )
            s.sendto(msg.encode(), ("127.0.0.1", lab.sip_port))

        def final(call: str) -> int:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                data = s.recv(65536).decode(errors="replace")
                if f"Call-ID: {call}" in data and not data.startswith("SIP/2.0 1"):
                    return int(data.split(" ", 2)[1])
            raise AssertionError(f"no final answer to {call}")

        invite("big", pad=9000)
        assert final("big") == 513
        invite("fat-sdp", media=90)  # a body larger than max_sdp_bytes
        assert final("fat-sdp") == 488
        invite("many-media", media=20)  # small, but more streams than a call has
        assert final("many-media") == 488
        # Two INVITEs answered and never ACKed from this trunk; the third is refused at once.
        invite("noack-1")
        invite("noack-2")
        assert {final("noack-1"), final("noack-2")} == {200}
        invite("noack-3")
        assert final("noack-3") == 503
        # A real call from another source goes through and is recorded.
        pbx = lab.peer("pbx", "--tone", "1000")
        caller = lab.peer("caller", "--hangup-after", "4", "--timeout", "30")
        caller.wait_exit(40)
        pbx.wait_exit()
        assert caller.event("confirmed") is not None
        assert lab.gateway is not None and lab.gateway.stop() == 0
        gw = lab.gw.open()
        assert RecordingStatus.COMPLETE in [r.status for r in gw.index.list_recordings()]
    finally:
        s.close()
        lab.close()


def _ppid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(pid)


def test_workers_are_forks_of_the_fork_server_and_outlive_it(tmp_path: Path) -> None:
    """[node] fork_workers: the workers share the fork server's imports. A fork server that
    dies takes no worker or call with it; the next worker needed starts a new one."""
    lab = CallLab(tmp_path, workers=2)
    try:
        lab.start_gateway()
        st = lab.node_status()
        forks = st["forkserver"]["pid"]
        assert [_ppid(w["pid"]) for w in st["workers"]] == [forks, forks]
        os.kill(forks, signal.SIGKILL)
        pbx = lab.peer("pbx", "--tone", "1000")
        caller = lab.peer("caller", "--tone", "440", "--hangup-after", "4")
        caller.wait_exit()
        pbx.wait_exit()
        assert caller.event("disconnected")["connected_s"] > 3, "the workers served on"
        victim = st["workers"][0]["pid"]
        os.kill(victim, signal.SIGKILL)
        st = lab.wait_status(lambda s: s["workers"][0]["restarts"] == 1 and s["workers"][0]["ready"], 20)
        assert st["forkserver"]["restarts"] == 1 and st["forkserver"]["pid"] != forks
        assert _ppid(st["workers"][0]["pid"]) == st["forkserver"]["pid"]
        lab.stop_gateway()
        [rec] = lab.gw.open().index.list_recordings()
        assert rec.status == RecordingStatus.COMPLETE
    finally:
        lab.close()


def test_a_nodes_worker_dials_the_pbx_and_takes_media_on_the_nodes_address(tmp_path: Path) -> None:
    """A node's workers take SIP from their front door on loopback, but a socket bound to
    loopback cannot reach another host: the PBX leg leaves from the node's own address
    ([sip] listen), and both legs' media are offered there. Here the node is 127.0.0.2."""
    lab = CallLab(tmp_path, workers=1, host="127.0.0.2")
    try:
        lab.start_gateway()
        pbx = lab.peer("pbx", "--tone", "1000")
        caller = lab.peer("caller", "--tone", "440", "--hangup-after", "5")
        caller.wait_exit()
        pbx.wait_exit()
        incoming = pbx.event("incoming")
        assert incoming["source"].startswith("127.0.0.2:") and incoming["media"] == "127.0.0.2", incoming
        assert incoming["headers"]["x-recording-consent"] == "granted"
        lab.stop_gateway()
        [rec] = lab.gw.open().index.list_recordings()
        left, right = lab.decrypt(rec)
        assert abs(dominant_frequency(left) - 440) < 5 and abs(dominant_frequency(right) - 1000) < 5
    finally:
        lab.close()


def test_retention_runs_once_per_node_in_the_supervisor(tmp_path: Path) -> None:
    """Retention is the node's duty, not each worker's: one run at start, by the supervisor,
    however many workers there are (app/duties.py)."""
    import json
    from datetime import UTC, datetime, timedelta

    lab = CallLab(tmp_path, workers=2)
    try:
        then = (datetime.now(UTC) - timedelta(days=100)).isoformat(timespec="milliseconds")
        old, held = lab.gw.record(1), lab.gw.record(1)
        gw = lab.gw.open()
        for rec in (old, held):
            gw.index.update_recording(rec, started_at=then.replace("+00:00", "Z"))
        assert lab.gw.run("hold", "add", held, "--reason", "complaint") == 0
        lab.start_gateway()
        supervisor = lab.node_status()["supervisor_pid"]
        deadline = time.monotonic() + 15
        while gw.index.get_recording(old).status != RecordingStatus.DELETED and time.monotonic() < deadline:
            time.sleep(0.2)
        assert gw.index.get_recording(old).status == RecordingStatus.DELETED
        assert gw.index.get_recording(held).status == RecordingStatus.COMPLETE
        time.sleep(3)  # long enough for every worker to have started and run what it runs
        assert all(w["ready"] for w in lab.node_status()["workers"])
        runs = [json.loads(line) for line in lab.gateway.stderr_lines if '"retention: ' in line]
        assert [r["pid"] for r in runs] == [supervisor], runs
        assert "deleted 1, kept 1 on hold" in runs[0]["msg"]
    finally:
        lab.close()


def test_an_index_held_locked_stalls_and_drops_no_call(tmp_path: Path) -> None:
    """The SQLite index held locked for 15 s (a long transaction: a large retention purge, an
    operator's sqlite3 shell) while a call is recorded and another arrives: the call in
    progress goes on and keeps every frame of its recording, the new call is answered by the
    worker (not failed open past it), no worker is taken for hung or slow, and what was written
    meanwhile reaches the index once it is free.

    Before, the worker's loop waited on the database (up to 30 s) behind the recorder engine's
    checkpoint: the new call failed open unrecorded, and a loop that waits on a lock uses no CPU,
    which the supervisor takes for a hung worker and kills, calls and all."""
    import sqlite3

    lab = CallLab(tmp_path, workers=1)
    try:
        lab.start_gateway()
        pbx = lab.peer("pbx", "--tone", "1000", "--calls", "2", "--timeout", "90")
        first = lab.peer("caller", "--hangup-after", "30", "--timeout", "60")
        pbx.wait_for(lambda: pbx.event("confirmed"), 15)
        time.sleep(2)  # recording: its chunks are being sealed and checkpointed
        holder = sqlite3.connect(lab.gw.open().config.paths.index, timeout=5, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # the database's one write lock, held
        locked_at = time.monotonic()
        try:
            second = lab.peer("caller", "--hangup-after", "6", "--timeout", "40")
            second.wait_for(lambda: second.event("confirmed"), 40)
            answered_in = time.monotonic() - locked_at
            seen = []
            while time.monotonic() - locked_at < 15:
                seen.append(lab.node_status())
                time.sleep(0.5)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert answered_in < 8, f"the second call waited {answered_in:.1f} s"
        assert all(st["failopen"] == 0 for st in seen), "no call went past the worker unrecorded"
        assert not any(w["hung"] or w["slow"] for st in seen for w in st["workers"]), seen[-1]
        first.wait_exit(60)
        second.wait_exit(30)
        assert first.event("disconnected")["connected_s"] > 29, "the call in progress was not dropped"
        assert second.event("disconnected")["connected_s"] > 5.5
        pbx.wait_exit(30)
        lab.stop_gateway()
        assert any("locked by another writer" in line for line in lab.gateway.stderr_lines)
        gw = lab.gw.open()
        recs = sorted(gw.index.list_recordings(), key=lambda r: r.started_at)
        assert [r.status for r in recs] == [RecordingStatus.COMPLETE] * 2, recs
        for rec, caller in zip(recs, (first, second), strict=True):
            caller_ch, helpline_ch = lab.decrypt(rec)
            assert dominant_frequency(helpline_ch) == pytest.approx(1000, abs=20)
            connected = caller.event("disconnected")["connected_s"]  # the notice, then recorded
            assert connected - 4 < len(helpline_ch) / 8000 <= connected, "nothing missing in the middle"
        done = [e for e in gw.index.audit_entries() if e.action == "recording.complete"]
        assert [e.details["frames_overflowed"] for e in done] == [0, 0], "the recorder never waited"
        assert lab.gw.run("recordings", "verify") == 0, "both signed, the journalled one once replayed"
    finally:
        lab.close()
