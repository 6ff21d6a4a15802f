"""The worker's control channel (docs/events.md, "Commands") against a real worker and a real
call: bad commands get a clear refusal and change nothing; good ones act and are audited. A
caller who withdraws after a supervisor stopped the recording still gets it deleted."""

from __future__ import annotations

import json
import socket
import time

import pytest

from gateway.storage.rows import RecordingStatus
from tests.calls import CallLab

pytestmark = pytest.mark.slow


class Control:
    def __init__(self, lab: CallLab) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(str(lab.gw.dir / "run" / "events.sock"))
        self.sock.settimeout(5)
        self.buf = b""
        self.events: list[dict] = []

    def _lines(self):
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                yield json.loads(line)
            data = self.sock.recv(65536)
            if not data:
                return
            self.buf += data

    def send(self, raw: bytes) -> dict:
        self.sock.sendall(raw)
        for msg in self._lines():
            if msg.get("type") == "control.result":
                return msg
            self.events.append(msg)
        raise AssertionError("the worker closed the channel")

    def command(self, op: str, call: str, req: int = 1) -> dict:
        return self.send(
            json.dumps({"req": req, "op": op, "call": call, "actor": "dashboard:test"}).encode() + b"\n"
        )

    def wait_event(self, pred, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        for e in self.events:
            if pred(e):
                return e
        self.sock.settimeout(timeout)
        for msg in self._lines():
            self.events.append(msg)
            if pred(msg):
                return msg
            if time.monotonic() > deadline:
                break
        raise AssertionError("event not seen")


def test_control_channel_refuses_bad_commands_and_obeys_good_ones(lab: CallLab) -> None:
    lab.start_gateway()
    ctl = Control(lab)
    assert ctl.send(b"not json\n") == {
        "type": "control.result",
        "req": None,
        "ok": False,
        "error": "not a JSON object",
    }
    assert "unknown op" in ctl.send(b'{"req": 2, "op": "delete", "call": "x", "actor": "a"}\n')["error"]
    assert "actor" in ctl.send(b'{"req": 3, "op": "stop", "call": "x"}\n')["error"]
    assert ctl.command("stop", "0000000000000000")["error"] == "no such live call on this worker"

    pbx = lab.peer("pbx", "--tone", "1000")
    caller = lab.peer("caller", "--digits", "*@7,9@7.3", "--hangup-after", "10")
    call = ctl.wait_event(lambda e: e.get("type") == "call.started")["call"]
    refused = ctl.command("pause", call, 5)
    assert refused["req"] == 5 and not refused["ok"] and "not bridged" in refused["error"]
    ctl.wait_event(lambda e: e.get("type") == "call.recording" and e.get("recording") == "recording")
    assert ctl.command("pause", call)["ok"]
    assert ctl.command("pause", call)["error"] == "the recording is already paused"
    assert ctl.command("resume", call)["ok"]
    assert ctl.command("stop", call)["ok"]
    assert "nothing is being recorded" in ctl.command("resume", call)["error"]
    ctl.wait_event(lambda e: e.get("type") == "call.recording" and e.get("recording") == "saved", 3)
    # A line over the bound ends this subscriber's connection, not the worker or the call.
    ctl.sock.sendall(b'{"pad": "' + b"x" * 8000 + b'"}\n')
    ctl.sock.settimeout(3)
    for _ in range(100):  # events in flight may come first; then the end of the stream
        if ctl.sock.recv(65536) == b"":
            break
    else:
        raise AssertionError("the over-long line did not end the connection")
    caller.wait_exit()
    pbx.wait_exit()
    assert lab.gateway.stop() == 0
    gw = lab.gw.open()
    entries = gw.index.audit_entries()
    actions = [(e.action, e.actor) for e in entries if e.actor.startswith("dashboard:")]
    assert actions == [
        ("recording.paused", "dashboard:test"),
        ("recording.resumed", "dashboard:test"),
        ("recording.stopped", "dashboard:test"),
    ]
    # The caller's *9 came after the stop: the saved recording is deleted all the same.
    [rec] = gw.index.list_recordings()
    assert rec.status == RecordingStatus.DELETED
    assert list((lab.gw.dir / "spool").iterdir()) == []
    deleted = [e for e in entries if e.action == "recording.deleted"]
    assert deleted and deleted[0].actor == "caller" and deleted[0].details["reason"] == "consent withdrawn"
