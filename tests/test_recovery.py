"""Crashes and full disks: what was sealed survives and decrypts; nothing else is claimed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from gateway import age
from gateway.age.stream import CHUNK_SIZE
from gateway.cli import exitcodes
from gateway.recording import wav
from gateway.recording.recorder import RecorderEngine
from gateway.storage.rows import RecordingStatus
from tests.audio import dominant_frequency, frames, tone
from tests.gw import GatewayUnderTest, make_gateway, new_call

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tgw(tmp_path: Path) -> GatewayUnderTest:
    return make_gateway(tmp_path)


def test_kill_9_mid_call_leaves_a_truncated_decryptable_recording(
    tgw: GatewayUnderTest, tmp_path: Path
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.recording_child", str(tgw.config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        rec_id = child.stdout.readline().strip()
        assert child.stdout.readline().strip() == "sealed"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    gw = tgw.open()
    assert gw.index.get_recording(rec_id).status == RecordingStatus.RECORDING
    assert tgw.run("recordings", "recover") == 0
    row = gw.index.get_recording(rec_id)
    assert row.status == RecordingStatus.TRUNCATED and row.bytes >= 3 * age.ENCRYPTED_CHUNK_SIZE
    assert "recording.truncated" in [e.action for e in gw.index.audit_entries()]
    # Strictly, the file is truncated; the export recovers every sealed chunk.
    with gw.store.open(row.object_name) as f, pytest.raises(age.TruncatedError):
        age.AgeReader(f, age.load_identity_file(tgw.key)).read_all()
    out = tmp_path / "partial.wav"
    assert tgw.run("recordings", "export", rec_id, "-i", str(tgw.key), "-o", str(out)) == 0
    with wave.open(str(out)) as w:
        n = w.getnframes()
        assert n >= (3 * CHUNK_SIZE - wav.HEADER_SIZE) // 4
        s = np.frombuffer(w.readframes(n), dtype="<i2")
    assert abs(dominant_frequency(s[0::2]) - 440) < 5 and abs(dominant_frequency(s[1::2]) - 1000) < 5
    # The plain age CLI prints the sealed chunks before it reports the missing end.
    res = subprocess.run(
        ["age", "-d", "-i", str(tgw.key), str(gw.config.paths.spool_dir / row.object_name)],
        capture_output=True,
    )
    assert res.returncode != 0 and len(res.stdout) >= 3 * CHUNK_SIZE


def killed_mid_recording(tgw: GatewayUnderTest) -> str:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.recording_child", str(tgw.config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        rec_id = child.stdout.readline().strip()
        assert child.stdout.readline().strip() == "sealed"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    return rec_id


def test_recovery_signs_only_what_the_writer_committed(tgw: GatewayUnderTest, capsys) -> None:
    rec_id = killed_mid_recording(tgw)
    gw = tgw.open()
    committed = gw.index.get_recording(rec_id)
    assert committed.bytes >= 3 * age.ENCRYPTED_CHUNK_SIZE and committed.sha256, (
        "the writer checkpoints as it goes"
    )
    assert tgw.run("recordings", "recover") == 0
    row = gw.index.get_recording(rec_id)
    assert row.status == RecordingStatus.TRUNCATED and row.signature
    assert (row.bytes, row.sha256) == (committed.bytes, committed.sha256)
    capsys.readouterr()
    assert tgw.run("recordings", "verify", rec_id) == 0, capsys.readouterr().out


def test_recovery_cannot_launder_replaced_ciphertext(tgw: GatewayUnderTest, tmp_path: Path, capsys) -> None:
    """Whoever holds the gateway can write a new age file to the public recipients; recovery
    must not sign it as the call's recording."""
    rec_id = killed_mid_recording(tgw)
    gw = tgw.open()
    obj = gw.config.paths.spool_dir / gw.index.get_recording(rec_id).object_name
    forged = age.encrypt(wav.header(8000, 2) + bytes(4 * CHUNK_SIZE), gw.config.recording.recipients)
    obj.write_bytes(forged[: -(len(forged) % age.ENCRYPTED_CHUNK_SIZE) or None])
    assert tgw.run("recordings", "recover") == 0
    row = gw.index.get_recording(rec_id)
    assert (
        row.status == RecordingStatus.TRUNCATED
        and not row.signature
        and "does not match" in (row.error or "")
    )
    assert "recording.checkpoint_mismatch" in [e.action for e in gw.index.audit_entries()]
    capsys.readouterr()
    assert tgw.run("recordings", "verify", rec_id) == exitcodes.EXIT_FINDINGS
    assert f"{rec_id}: unsigned" in capsys.readouterr().out


def test_recover_leaves_live_recordings_alone(tgw: GatewayUnderTest) -> None:
    gw = tgw.open()
    service = gw.recording_service(RecorderEngine(start_thread=False))
    started = service.start(new_call(gw.index, "live-call"))
    assert started is not None
    assert service.recover() == []
    assert gw.index.get_recording(started[0]).status == RecordingStatus.RECORDING


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 256 KiB tmpfs: a real ENOSPC, not a simulated one."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the full-disk test (needs root): {res.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_marks_incomplete_keeps_sealed_chunks_and_the_call_goes_on(
    tgw: GatewayUnderTest, tiny_disk: Path
) -> None:
    text = tgw.config.read_text().replace('spool_dir = "spool"', f'spool_dir = "{tiny_disk / "spool"}"')
    tgw.config.write_text(text)
    gw = tgw.open()
    engine = RecorderEngine(start_thread=False)
    service = gw.recording_service(engine)
    started = service.start(new_call(gw.index, "full-disk-call"))
    assert started is not None
    rec_id, rec = started
    t = rec._t0
    pushed = 0
    for a, b in zip(frames(tone(440, 12)), frames(tone(1000, 12)), strict=True):  # 768 KB > 256 KiB
        rec.push_frame(0, a, at=t)
        rec.push_frame(1, b, at=t)
        pushed += 2
        t += 0.02
        if pushed % 100 == 0:
            engine.tick(now=t)
    engine.tick(now=t)
    result = rec.done.result(timeout=0)  # the recording ended itself; the pushes never raised
    assert result.status == "incomplete" and "storage full" in (result.error or "")
    row = gw.index.get_recording(rec_id)
    assert row.status == RecordingStatus.INCOMPLETE and "storage full" in row.error
    size = gw.store.size(row.object_name)
    assert size == row.bytes and size > 0
    with gw.store.open(row.object_name) as f:
        reader = age.AgeReader(f, age.load_identity_file(tgw.key), recover=True)
        plain = reader.read_all()
    assert reader.truncated and len(plain) >= 2 * CHUNK_SIZE and len(plain) % CHUNK_SIZE == 0
    assert "recording.incomplete" in [e.action for e in gw.index.audit_entries()]
    assert tgw.run("recordings", "verify") == 0


def test_discard_deletes_the_object_and_audits_it(tgw: GatewayUnderTest) -> None:
    gw = tgw.open()
    engine = RecorderEngine(start_thread=False)
    service = gw.recording_service(engine)
    started = service.start(new_call(gw.index, "withdrawn-call"))
    assert started is not None
    rec_id, rec = started
    for i, (a, b) in enumerate(zip(frames(tone(440, 5)), frames(tone(1000, 5)), strict=True)):
        rec.push_frame(0, a, at=rec._t0 + i * 0.02)
        rec.push_frame(1, b, at=rec._t0 + i * 0.02)
    engine.tick(now=rec._t0 + 5)
    assert rec.stats.bytes_sealed > CHUNK_SIZE
    rec.discard()
    engine.tick()
    rec.done.result(timeout=1)
    assert list(gw.store.names()) == []
    row = gw.index.get_recording(rec_id)
    assert row.status == RecordingStatus.DISCARDED and row.bytes == 0 and row.sha256 is None
    assert [e.action for e in gw.index.audit_entries()][-1] == "recording.discarded"


@pytest.mark.parametrize("call_ends", ["before", "after"], ids=["call-ends-first", "recording-ends-first"])
def test_a_worker_keeps_nothing_of_a_recording_once_its_call_is_over(
    tgw: GatewayUnderTest, call_ends: str
) -> None:
    """What became of a recording is kept only while its call can still withdraw consent (a
    recording a supervisor stopped, then `*9`): a worker that kept every result grew with every
    call it handled."""
    gw = tgw.open()
    engine = RecorderEngine(start_thread=False)
    service = gw.recording_service(engine)
    started = service.start(new_call(gw.index, f"over-{call_ends}"))
    assert started is not None
    rec_id, rec = started
    rec.push_frame(0, frames(tone(440, 1))[0], at=rec._t0)
    rec.finish()
    if call_ends == "before":
        service.call_over(rec_id)
    engine.tick()
    rec.done.result(timeout=1)
    if call_ends == "after":
        assert rec_id in service._results, "its call is still up: a withdrawal may still come"
        service.call_over(rec_id)
    assert (service._results, service._over) == ({}, set())
    assert gw.index.get_recording(rec_id).status == RecordingStatus.COMPLETE
    service.close()
