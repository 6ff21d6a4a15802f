"""Erasure by destroying the key (issue 10, item 4): with [recording] key_per_recording each
recording is encrypted to a key of its own, kept only wrapped to the operators; erasing a
recording destroys that key, so a copy that a store under Object Lock must keep is unreadable."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway import age
from gateway.age import format as fmt
from gateway.app import retention
from gateway.recording.recorder import RecorderEngine
from gateway.storage.rows import RecordingStatus
from gateway.storage.s3 import TieredStore
from tests import s3
from tests.gw import make_gateway, new_call
from tests.test_object_store import all_versions, tones, use_store


def test_each_recording_has_its_own_key_and_the_age_cli_opens_it_in_two_steps(tmp_path: Path, capsys) -> None:
    tgw = make_gateway(tmp_path)
    tgw.set("recording", "key_per_recording", True)
    rec_id = tgw.record(seconds=1.5)
    gw = tgw.open()
    row = gw.index.get_recording(rec_id)
    assert row.key_enc is not None
    # The recording itself is encrypted to its own recipient only: the operator's identity
    # does not open it directly ...
    with gw.store.open(row.object_name) as f:
        header = fmt.parse(f)
    assert [s.type for s in header.stanzas] == ["X25519"]
    obj = tgw.dir / "spool" / row.object_name
    direct = subprocess.run(["age", "-d", "-i", str(tgw.key), str(obj)], capture_output=True)
    assert direct.returncode != 0 and b"no identity matched" in direct.stderr
    # ... the gateway CLI opens it (unwrapping the key with the operator's identity) ...
    out = tmp_path / "a.wav"
    assert tgw.run("recordings", "export", rec_id, "-i", str(tgw.key), "-o", str(out)) == 0
    left, right = tones(out.read_bytes())
    assert abs(left - 440) < 5 and abs(right - 1000) < 5
    # ... and so does the age CLI alone, in two steps, from what `recordings fetch` copies.
    capsys.readouterr()
    fetched = tmp_path / "rec.age"
    assert tgw.run("recordings", "fetch", rec_id, "-o", str(fetched)) == 0
    assert "age -d -i YOUR-IDENTITY" in capsys.readouterr().err
    unwrap = subprocess.run(
        ["age", "-d", "-i", str(tgw.key), str(fetched) + ".key"], capture_output=True, check=True
    )
    assert unwrap.stdout.startswith(b"AGE-SECRET-KEY-1")
    wav = subprocess.run(
        ["age", "-d", "-i", "-", str(fetched)], input=unwrap.stdout, capture_output=True, check=True
    ).stdout
    assert abs(tones(wav)[0] - 440) < 5
    actions = [e.action for e in gw.index.audit_entries() if e.subject == rec_id]
    assert "recording.fetched" in actions
    gw.close()


def test_erasure_destroys_the_key_everywhere_in_the_index_file(tmp_path: Path) -> None:
    tgw = make_gateway(tmp_path)
    tgw.set("recording", "key_per_recording", True)
    rec_id = tgw.record(seconds=1.0, number="+46701234567")
    gw = tgw.open()
    wrapped = gw.index.get_recording(rec_id).key_enc
    assert wrapped is not None
    gw.close()
    assert tgw.run("subject", "erase", "--number", "+46701234567", "-i", str(tgw.key)) == 0
    gw = tgw.open()
    row = gw.index.get_recording(rec_id)
    assert row.status == RecordingStatus.DELETED and row.key_enc is None
    [entry] = [e for e in gw.index.audit_entries() if e.action == "recording.deleted"]
    assert entry.details["key_destroyed"] is True
    gw.close()
    # Not in the database file, its free pages or its write-ahead log.
    for path in (tgw.dir / "index.sqlite3", tgw.dir / "index.sqlite3-wal"):
        if path.exists():
            assert wrapped[-64:] not in path.read_bytes(), path


def test_a_withdrawn_recording_loses_its_key(tmp_path: Path) -> None:
    tgw = make_gateway(tmp_path)
    tgw.set("recording", "key_per_recording", True)
    gw = tgw.open()
    engine = RecorderEngine(start_thread=False)
    service = gw.recording_service(engine, actor="test")
    started = service.start(new_call(gw.index, "call-w"))
    assert started is not None
    rec_id, recorder = started
    assert gw.index.get_recording(rec_id).key_enc is not None
    service.withdraw(rec_id, recorder)
    engine.tick()
    recorder.done.result(timeout=5)
    row = gw.index.get_recording(rec_id)
    assert row.status == RecordingStatus.DISCARDED and row.key_enc is None
    gw.close()


def test_under_compliance_lock_erasure_makes_the_kept_copy_unreadable(
    tmp_path: Path, s3_server: s3.S3Server, capsys
) -> None:
    tgw = make_gateway(tmp_path)
    bucket = s3_server.new_bucket(lock=True)
    use_store(tgw, s3_server, bucket, lock="compliance")
    tgw.set("recording", "key_per_recording", True)
    rec_id = tgw.record(seconds=1.0, number="+46701234567")
    gw = tgw.open()
    assert isinstance(gw.store, TieredStore)
    # Its retention ends in 12 s: the store keeps it locked until then.
    row = gw.index.get_recording(rec_id)
    started = datetime.now(UTC) - timedelta(days=90) + timedelta(seconds=12)
    gw.index.update_recording(
        rec_id, started_at=started.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
    uploader = gw.uploader()
    assert uploader is not None and uploader.round() == 1
    assert gw.store.remote.lock_state(row.object_name)["mode"] == "COMPLIANCE"
    capsys.readouterr()
    assert tgw.run("subject", "erase", "--number", "+46701234567", "-i", str(tgw.key)) == 0
    row = gw.index.get_recording(rec_id)
    assert row.status == RecordingStatus.DELETED and row.key_enc is None
    assert retention.KEPT_BY_STORE in (row.error or "")
    assert gw.store.remote.exists(row.object_name), "the store keeps the locked ciphertext"
    [entry] = [e for e in gw.index.audit_entries() if e.action == "recording.deleted"]
    assert entry.details["key_destroyed"] is True and entry.details["object_kept"]
    # What the store keeps opens for nobody: it was encrypted to the destroyed key alone.
    with gw.store.open(row.object_name) as f:
        try:
            age.AgeReader(f, age.load_identity_file(tgw.key)).read_all()
            raise AssertionError("the operator's identity opened an erased recording")
        except age.NoIdentityMatchError:
            pass
    assert tgw.run("recordings", "fetch", rec_id, "-o", str(tmp_path / "x.age")) == 8
    # Once the lock has run out, retention removes the ciphertext too.
    report = retention.run(gw.store, gw.index, retention.Retention(90), "test")
    assert report.removed_later == []
    time.sleep(13)
    report = retention.run(gw.store, gw.index, retention.Retention(90), "test")
    assert report.removed_later == [rec_id]
    assert all_versions(s3_server, bucket) == []
    assert retention.KEPT_BY_STORE not in (gw.index.get_recording(rec_id).error or "")
    gw.close()


def test_compliance_lock_needs_a_key_per_recording(tmp_path: Path, capsys) -> None:
    tgw = make_gateway(tmp_path)
    tgw.set("store", "url", "s3://recordings/gw")
    tgw.set("store", "object_lock", "compliance")
    capsys.readouterr()
    assert tgw.run("status") == 3
    assert "key_per_recording" in capsys.readouterr().err
