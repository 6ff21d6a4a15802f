"""Calls that go wrong: unknown route, missing prompts, storage failing mid-call, digit floods."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from gateway.cli import exitcodes, main
from gateway.storage.rows import RecordingStatus
from gateway.telephony.events import follow
from tests.calls import CallLab

pytestmark = pytest.mark.slow


def test_unknown_number_is_refused_with_404(tmp_path: Path) -> None:
    lab = CallLab(tmp_path, extra='\n[[routes]]\nnumber = "112233"\n')
    try:
        lab.start_gateway()
        caller = lab.peer("caller", "--timeout", "10")
        assert caller.wait_for(lambda: caller.event("disconnected"))["code"] == 404
    finally:
        lab.close()


def test_missing_prompts_refuse_to_start(lab: CallLab, capsys: pytest.CaptureFixture[str]) -> None:
    text = lab.gw.config.read_text()
    lab.gw.config.write_text(text.replace(str(lab.gw.dir.parent / "prompts"), str(lab.gw.dir / "nowhere")))
    assert main(["--config", str(lab.gw.config), "run"]) == exitcodes.EXIT_CONFIG
    err = capsys.readouterr().err
    assert "prompts:" in err and "manifest" in err and err.count("\n") == 1


def test_storage_failure_mid_call_keeps_the_call_and_says_so(tmp_path: Path) -> None:
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k,mode=0700", "tmpfs", str(tiny)], check=True)
    lab = CallLab(tmp_path)
    try:
        text = lab.gw.config.read_text().replace('spool_dir = "spool"', f'spool_dir = "{tiny / "spool"}"')
        lab.gw.config.write_text(text)
        lab.start_gateway()
        events = subscribe(lab)
        pbx = lab.peer("pbx", "--tone", "1000")
        caller = lab.peer("caller", "--hangup-after", "12", "--timeout", "30")
        caller.wait_exit()
        pbx.wait_exit()
        assert pbx.event("disconnected")["connected_s"] > 8, "the call went on after storage failed"
        assert lab.gateway is not None and lab.gateway.stop() == 0
        seen = events()
        failed = [e for e in seen if e["type"] == "call.recording" and e["recording"] == "incomplete"]
        assert failed and "storage full" in failed[0]["error"]
        gw = lab.gw.open()
        [rec] = gw.index.list_recordings()
        assert rec.status == RecordingStatus.INCOMPLETE and rec.bytes > 0
    finally:
        lab.close()
        subprocess.run(["umount", "-l", str(tiny)], check=False)


def subscribe(lab: CallLab):
    """Follow the worker's events in a thread; return a function giving the events so far."""
    seen: list[dict] = []
    stop = threading.Event()
    path = lab.gw.dir / "run" / "events.sock"

    def run() -> None:
        for event in follow(path, stop):
            seen.append(event)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(0.3)

    def events() -> list[dict]:
        time.sleep(0.5)
        return list(seen)

    lab.stops.append(stop)
    return events


def test_event_stream_follows_a_call_and_snapshots_live_calls(lab: CallLab) -> None:
    lab.start_gateway()
    early = subscribe(lab)
    pbx = lab.peer("pbx", "--tone", "1000")
    caller = lab.peer("caller", "--hangup-after", "5", "--number", "+46701234567", "--display", "<b>Eve</b>")
    caller.wait_for(lambda: caller.event("confirmed"))
    pbx.wait_for(lambda: pbx.event("confirmed"))
    late = subscribe(lab)  # joins mid-call
    caller.wait_exit()
    pbx.wait_exit()
    seen = early()
    kinds = [(e["type"], e.get("state") or e.get("consent") or e.get("recording")) for e in seen]
    for expected in [
        ("call.started", "notice"),
        ("call.state", "deciding"),
        ("call.consent", "granted"),
        ("call.state", "dialling"),
        ("call.recording", "recording"),
        ("call.state", "bridged"),
        ("call.state", "ended"),
    ]:
        assert expected in kinds, (expected, kinds)
    started = next(e for e in seen if e["type"] == "call.started")
    assert started["caller_masked"].endswith("567") and "46701234" not in json.dumps(seen)
    snap = late()
    assert snap[0]["snapshot"] is True and snap[0]["call"] == started["call"]
    # Then the worker's own last word: it is ready (what a node's supervisor waits for).
    assert snap[1]["snapshot"] is True and snap[1]["type"] == "worker.started" and snap[1]["pid"] > 0
    assert [e["seq"] for e in seen] == sorted(e["seq"] for e in seen)


def test_digit_flood_is_survived(lab: CallLab) -> None:
    lab.start_gateway()
    pbx = lab.peer("pbx", "--tone", "1000")
    flood = ",".join(f"{'5' if i % 2 else '3'}@{0.1 + i * 0.01:.2f}" for i in range(200))
    caller = lab.peer("caller", "--info", "--digits", flood, "--hangup-after", "6")
    caller.wait_exit()
    pbx.wait_exit()
    assert lab.gateway is not None and lab.gateway.stop() == 0
    gw = lab.gw.open()
    [call_id] = [e.subject for e in gw.index.audit_entries() if e.action == "consent.decided"]
    receipt = gw.index.get_consent_receipt(call_id)
    assert receipt["decision"] == "granted"  # 3s and 5s are not the decline key
    assert len(receipt["digits"]) == 64 and receipt["digits_dropped"] > 0  # bounded, and counted
    assert pbx.event("confirmed") is not None
