"""Recordings in an S3-compatible object store (issue 10): a real SeaweedFS S3 server on
loopback, the gateway's uploader, and what an operator sees in the bucket and from the CLI."""

from __future__ import annotations

import hashlib
import io
import subprocess
import time
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.app import retention
from gateway.recording.recorder import RecorderEngine
from gateway.storage.rows import RecordingStatus
from gateway.storage.s3 import S3Store, TieredStore
from gateway.storage.store import OBJECT_NAME, ObjectNotFound, StoreError, new_object_name
from tests import s3
from tests.audio import dominant_frequency, split_channels
from tests.calls import CallLab
from tests.gw import GatewayUnderTest, make_gateway, new_call


def use_store(gw: GatewayUnderTest, server: s3.S3Server, bucket: str, lock: str = "off") -> str:
    url = f"s3://{bucket}/calls"
    gw.set("store", "url", url)
    gw.set("store", "endpoint", server.endpoint)
    gw.set("store", "region", "us-east-1")
    gw.set("store", "access_key_id", s3.ACCESS_KEY)
    gw.set("store", "secret_access_key", s3.SECRET_KEY)
    gw.set("store", "object_lock", lock)
    gw.set("store", "upload_interval_s", 1)
    gw.set("store", "upload_max_backoff_s", 3)  # a store back from an outage is used within 3 s
    return url


def store_for(server: s3.S3Server, bucket: str, lock: str = "") -> S3Store:
    return S3Store(
        f"s3://{bucket}/calls",
        endpoint=server.endpoint,
        region="us-east-1",
        access_key_id=s3.ACCESS_KEY,
        secret_access_key=s3.SECRET_KEY,
        lock_mode=lock,
    )


def all_versions(server: s3.S3Server, bucket: str) -> list[str]:
    listing = server.client().list_object_versions(Bucket=bucket)
    return [v["Key"] for v in [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]]


def decrypt_with_age_cli(ciphertext: bytes, key: Path) -> bytes:
    return subprocess.run(
        ["age", "-d", "-i", str(key)], input=ciphertext, capture_output=True, check=True
    ).stdout


def tones(wav_bytes: bytes) -> tuple[float, float]:
    with wave.open(io.BytesIO(wav_bytes)) as w:
        assert w.getnchannels() == 2
        pcm = w.readframes(w.getnframes())
    left, right = split_channels(pcm)
    return dominant_frequency(left), dominant_frequency(right)


def test_the_store_keeps_exactly_what_it_is_given_and_deletes_every_version(s3_server: s3.S3Server) -> None:
    for locked in (False, True):  # a bucket with Object Lock is versioned
        bucket = s3_server.new_bucket(lock=locked)
        store = store_for(s3_server, bucket)
        data = b"age-encryption.org/v1\n" + bytes(range(256)) * 300
        name = new_object_name()
        store.put(name, io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest())
        with store.open(name) as f:
            assert f.read() == data
        assert store.size(name) == len(data) and 0 <= store.age_s(name) < 60
        # The store itself checks the SHA-256: bytes that do not match it are not stored.
        other = new_object_name()
        with pytest.raises(StoreError):
            store.put(other, io.BytesIO(data[:-1] + b"x"), len(data), hashlib.sha256(data).hexdigest())
        assert not store.exists(other)
        # Only the gateway's opaque names under its prefix are its objects.
        s3_server.client().put_object(Bucket=bucket, Key="calls/notes.txt", Body=b"not ours")
        s3_server.client().put_object(Bucket=bucket, Key=f"callsx/{new_object_name()}", Body=b"not ours")
        assert list(store.names()) == [name]
        with pytest.raises(ObjectNotFound):
            store.open(new_object_name())
        with pytest.raises(ObjectNotFound):
            store.open("../notes.txt")
        # Overwritten once (a version), then deleted: no version and no marker is left.
        store.put(name, io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest())
        store.delete(name)
        assert f"calls/{name}" not in all_versions(s3_server, bucket)
        assert not store.exists(name)
        with pytest.raises(ObjectNotFound):
            store.delete(name)


def test_finished_recordings_move_to_the_bucket_and_export_from_there(
    tmp_path: Path, s3_server: s3.S3Server, capsys
) -> None:
    tgw = make_gateway(tmp_path)
    bucket = s3_server.new_bucket()
    use_store(tgw, s3_server, bucket)
    rec_id = tgw.record(seconds=2.0)
    gw = tgw.open()
    assert isinstance(gw.store, TieredStore)
    # A recording that is still being written stays in the spool.
    live_call = new_call(gw.index, "call-live")
    started = gw.recording_service(RecorderEngine(start_thread=False), actor="test").start(live_call)
    assert started is not None
    live_id, _ = started
    live = gw.index.get_recording(live_id)
    uploader = gw.uploader()
    assert uploader is not None
    assert uploader.round() == 1
    row = gw.index.get_recording(rec_id)
    assert sorted(gw.store.spool.names()) == [live.object_name], "uploaded, then removed locally"
    assert uploader.stats.uploaded == 1 and uploader.stats.pending == 0
    # The bucket holds the opaque name under the prefix, and ciphertext only.
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [f"calls/{row.object_name}"]
    assert OBJECT_NAME.fullmatch(keys[0].removeprefix("calls/"))
    body = s3_server.client().get_object(Bucket=bucket, Key=keys[0])["Body"].read()
    assert body.startswith(b"age-encryption.org/v1\n") and hashlib.sha256(body).hexdigest() == row.sha256
    # The operator's age CLI opens what the bucket holds; the gateway CLI exports and verifies it.
    assert abs(tones(decrypt_with_age_cli(body, tgw.key))[0] - 440) < 5
    out = tmp_path / "a.wav"
    assert tgw.run("recordings", "export", rec_id, "-i", str(tgw.key), "-o", str(out)) == 0
    left, right = tones(out.read_bytes())
    assert abs(left - 440) < 5 and abs(right - 1000) < 5
    capsys.readouterr()
    code = tgw.run("recordings", "verify", rec_id)
    assert code == 0, capsys.readouterr()
    gw.close()


def test_an_unreachable_store_keeps_recordings_in_the_spool_until_it_is_back(
    tmp_path: Path, s3_server: s3.S3Server
) -> None:
    relay = s3.outage_for(s3_server)  # the store as the gateway reaches it: cut and restored
    try:
        tgw = make_gateway(tmp_path)
        bucket = s3_server.new_bucket()
        use_store(tgw, s3_server, bucket)
        tgw.set("store", "endpoint", relay.endpoint)
        rec_id = tgw.record(seconds=1.0)
        gw = tgw.open()
        assert isinstance(gw.store, TieredStore)
        uploader = gw.uploader()
        assert uploader is not None
        name = gw.index.get_recording(rec_id).object_name
        relay.halt()
        assert uploader.round() == 0
        assert uploader.stats.failures == 1 and uploader.stats.last_error
        assert uploader.stats.pending == 1 and uploader.stats.pending_bytes == gw.store.spool.size(name)
        # Still readable (from the spool) while the store is away.
        with gw.store.open(name) as f:
            assert hashlib.sha256(f.read()).hexdigest() == gw.index.get_recording(rec_id).sha256
        relay.resume()
        assert uploader.round() == 1
        assert uploader.stats.failures == 0 and uploader.stats.pending == 0
        assert not gw.store.spool.exists(name) and gw.store.remote.exists(name)
        gw.close()
    finally:
        relay.halt()


def test_a_recording_altered_in_the_spool_is_not_uploaded(tmp_path: Path, s3_server: s3.S3Server) -> None:
    tgw = make_gateway(tmp_path)
    bucket = s3_server.new_bucket()
    use_store(tgw, s3_server, bucket)
    rec_id = tgw.record(seconds=1.0)
    gw = tgw.open()
    assert isinstance(gw.store, TieredStore)
    name = gw.index.get_recording(rec_id).object_name
    path = gw.store.spool.directory / name
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 1
    path.write_bytes(bytes(blob))
    uploader = gw.uploader()
    assert uploader is not None
    assert uploader.round() == 0
    assert uploader.stats.refused == [rec_id]
    assert gw.store.spool.exists(name) and not gw.store.remote.exists(name)
    gw.close()


class _ZeroingStore:
    """What the uploader must not trust: an S3 endpoint that keeps zeros instead of the bytes it
    is sent and says no checksum (the real SeaweedFS client underneath, with the body swapped
    and every checksum dropped on the way)."""

    def __init__(self, client) -> None:
        self._client = client

    def put_object(self, **kw):
        kw.pop("ChecksumSHA256", None)
        kw["Body"] = bytes(kw["ContentLength"])
        return self._client.put_object(**kw)

    def head_object(self, **kw):
        head = self._client.head_object(**kw)
        head.pop("ChecksumSHA256", None)
        return head

    def __getattr__(self, name: str):
        return getattr(self._client, name)


def test_a_store_that_alters_bytes_and_sends_no_checksum_is_caught_before_the_spool_copy_goes(
    tmp_path: Path, s3_server: s3.S3Server
) -> None:
    tgw = make_gateway(tmp_path)
    bucket = s3_server.new_bucket()
    use_store(tgw, s3_server, bucket)
    rec_id = tgw.record(seconds=1.0)
    gw = tgw.open()
    assert isinstance(gw.store, TieredStore)
    name = gw.index.get_recording(rec_id).object_name
    honest = gw.store.remote._s3
    gw.store.remote._s3 = _ZeroingStore(honest)
    uploader = gw.uploader()
    assert uploader is not None
    assert uploader.round() == 0
    assert "stored altered" in uploader.stats.last_error
    assert gw.store.spool.exists(name), "the only good copy must stay in the spool"
    # The same store without the fault: uploaded, read back, and only then the spool copy goes.
    gw.store.remote._s3 = _ZeroingStore(honest)
    gw.store.remote._s3.put_object = honest.put_object
    assert uploader.round() == 1
    assert not gw.store.spool.exists(name)
    assert (
        hashlib.sha256(gw.store.remote.open(name).read()).hexdigest() == gw.index.get_recording(rec_id).sha256
    )
    gw.close()


def test_object_lock_protects_recordings_and_holds_set_the_legal_hold(
    tmp_path: Path, s3_server: s3.S3Server, capsys
) -> None:
    tgw = make_gateway(tmp_path)
    bucket = s3_server.new_bucket(lock=True)
    use_store(tgw, s3_server, bucket, lock="governance")
    rec_id = tgw.record(seconds=1.0, number="+46701234567")
    gw = tgw.open()
    assert isinstance(gw.store, TieredStore)
    uploader = gw.uploader()
    assert uploader is not None and uploader.round() == 1
    row = gw.index.get_recording(rec_id)
    state = gw.store.remote.lock_state(row.object_name)
    expected = datetime.fromisoformat(row.started_at.replace("Z", "+00:00")) + timedelta(days=90)
    assert state["mode"] == "GOVERNANCE" and abs((state["retain_until"] - expected).total_seconds()) < 2
    assert state["legal_hold"] is False
    # A hold sets the object's legal hold; releasing it clears it.
    assert tgw.run("hold", "add", rec_id, "--reason", "complaint 17") == 0
    assert gw.store.remote.lock_state(row.object_name)["legal_hold"] is True
    assert tgw.run("hold", "remove", rec_id, "--reason", "closed") == 0
    assert gw.store.remote.lock_state(row.object_name)["legal_hold"] is False
    # Erasure before the retain-until date: the store refuses, the gateway says so, keeps the
    # number for a later run, audits the refusal, exits 9; nothing is marked deleted.
    capsys.readouterr()
    assert tgw.run("subject", "erase", "--number", "+46701234567", "-i", str(tgw.key)) == 9
    assert "NOT deleted" in capsys.readouterr().out
    assert gw.index.get_recording(rec_id).status == RecordingStatus.COMPLETE
    assert gw.store.remote.exists(row.object_name)
    assert gw.index.get_call(row.call_id).caller_enc
    assert [e for e in gw.index.audit_entries() if e.action == "recording.delete_failed"]
    # Past its date, retention deletes every version.
    report = retention.run(
        gw.store, gw.index, retention.Retention(90), "test", now=expected + timedelta(days=1)
    )
    assert report.failed and not report.deleted  # the lock still runs (its date is the real one)
    gw.close()


def test_retention_deletes_the_bucket_copy_and_every_version(tmp_path: Path, s3_server: s3.S3Server) -> None:
    tgw = make_gateway(tmp_path)
    bucket = s3_server.new_bucket(lock=True)  # versioned, no lock mode set by the gateway
    use_store(tgw, s3_server, bucket)
    rec_id = tgw.record(seconds=1.0)
    gw = tgw.open()
    uploader = gw.uploader()
    assert uploader is not None and uploader.round() == 1
    report = retention.run(
        gw.store, gw.index, retention.Retention(90), "test", now=datetime.now(UTC) + timedelta(days=91)
    )
    assert report.deleted == [rec_id] and not report.failed
    assert all_versions(s3_server, bucket) == []
    assert gw.index.get_recording(rec_id).status == RecordingStatus.DELETED
    gw.close()


@pytest.mark.slow
def test_a_call_on_one_node_is_exported_from_another(
    tmp_path: Path, pg_url: str, s3_server: s3.S3Server
) -> None:
    """Node A records a real call into the shared PostgreSQL index and bucket; node B, another
    data directory with its own spool, finds and exports it with the operator's key."""
    bucket = s3_server.new_bucket()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    lab = CallLab(tmp_path / "a")
    node_b = make_gateway(tmp_path / "b")
    lab.gw.share_index(pg_url, node_b)
    use_store(lab.gw, s3_server, bucket)
    use_store(node_b, s3_server, bucket)
    try:
        lab.start_gateway()
        pbx = lab.peer("pbx", "--tone", "1000")
        caller = lab.peer("caller", "--tone", "440", "--hangup-after", "5")
        caller.wait_exit()
        pbx.wait_exit()
        spool = lab.gw.dir / "spool"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            any(spool.glob("*.age")) or not all_versions(s3_server, bucket)
        ):
            time.sleep(0.3)
        assert not any(spool.glob("*.age")), "the running gateway uploaded the finished recording"
        assert lab.gateway is not None and lab.gateway.stop() == 0
        assert node_b.run("recordings", "list", "--json") == 0
        gw_b = node_b.open()
        [rec] = gw_b.index.list_recordings()
        assert rec.status == RecordingStatus.COMPLETE and rec.signature
        out = tmp_path / "from-b.wav"
        assert node_b.run("recordings", "export", rec.id, "-i", str(lab.gw.key), "-o", str(out)) == 0
        left, right = tones(out.read_bytes())
        assert abs(left - 440) < 5 and abs(right - 1000) < 5
        # Node B hands out the ciphertext only; the operator's age CLI alone opens it.
        fetched = tmp_path / "from-b.age"
        assert node_b.run("recordings", "fetch", rec.id, "-o", str(fetched)) == 0
        left, right = tones(decrypt_with_age_cli(fetched.read_bytes(), lab.gw.key))
        assert abs(left - 440) < 5 and abs(right - 1000) < 5
        events = [e.action for e in gw_b.index.audit_entries() if e.subject == rec.id]
        assert "recording.exported" in events and "recording.fetched" in events
        gw_b.close()
    finally:
        lab.close()


def test_store_settings_are_checked(tmp_path: Path, capsys) -> None:
    tgw = make_gateway(tmp_path)
    for key, value, message in [
        ("url", "https://bucket/x", "s3://BUCKET"),
        ("url", "s3://a/x", "not an S3 bucket name"),
        ("object_lock", "forever", "object_lock"),
        ("endpoint", "minio:9000", "http:// or https://"),
    ]:
        original = tgw.config.read_text()
        if key != "url":
            tgw.set("store", "url", "s3://recordings/gw")
        tgw.set("store", key, value)
        capsys.readouterr()
        assert tgw.run("status") == 3
        assert message in capsys.readouterr().err
        tgw.config.write_text(original)


@pytest.mark.slow
def test_a_node_records_while_the_store_is_down_and_uploads_when_it_is_back(
    tmp_path: Path, s3_server: s3.S3Server
) -> None:
    """The store is away for a whole call: the call is recorded into the spool, the node's
    metrics and status show the backlog and the unreachable store, and once the store is back
    the uploader (after its back-off) empties the spool."""
    from tests.test_node import scrape

    relay = s3.outage_for(s3_server)  # the store as the node reaches it: cut and restored
    lab = CallLab(tmp_path, workers=1)
    bucket = s3_server.new_bucket()
    use_store(lab.gw, s3_server, bucket)
    lab.gw.set("store", "endpoint", relay.endpoint)
    try:
        lab.start_gateway()
        relay.halt()
        pbx = lab.peer("pbx", "--tone", "1000")
        caller = lab.peer("caller", "--tone", "440", "--hangup-after", "5")
        caller.wait_exit()
        pbx.wait_exit()
        assert caller.event("disconnected")["connected_s"] > 4, "the call went on"
        metrics = scrape(lab, lambda m: m.get("gateway_spool_pending_recordings") == 1, timeout=20)
        assert metrics["gateway_spool_pending_recordings"] == 1 and metrics["gateway_object_store_up"] == 0
        st = lab.node_status()["upload"]
        assert st["failing"] and st["pending"] == 1 and st["error"]
        relay.resume()
        st = lab.wait_status(lambda s: s["upload"]["uploaded"] == 1, timeout=40)["upload"]
        assert st["pending"] == 0 and not st["failing"]
        assert not any((lab.gw.dir / "spool").glob("*.age"))
        assert lab.gateway is not None and lab.gateway.stop() == 0
        gw = lab.gw.open()
        [rec] = gw.index.list_recordings()
        assert rec.status == RecordingStatus.COMPLETE and gw.store.exists(rec.object_name)
        out = tmp_path / "a.wav"
        assert lab.gw.run("recordings", "export", rec.id, "-i", str(lab.gw.key), "-o", str(out)) == 0
        assert abs(tones(out.read_bytes())[0] - 440) < 5
    finally:
        lab.close()
        relay.halt()


@pytest.mark.slow
def test_a_node_killed_mid_call_has_its_recording_recovered_and_uploaded_when_it_restarts(
    tmp_path: Path, pg_url: str, s3_server: s3.S3Server
) -> None:
    """The whole node (supervisor, Kamailio, workers) is SIGKILLed during a recorded call. Its
    replacement, started on the same data directory, marks the recording truncated (signing
    only what the writer had checkpointed) and uploads it; it decrypts up to its last chunk."""
    import os
    import signal

    bucket = s3_server.new_bucket()
    lab = CallLab(tmp_path, workers=1, node="node-k")
    lab.gw.share_index(pg_url)
    use_store(lab.gw, s3_server, bucket)
    try:
        lab.start_gateway()
        pbx = lab.peer("pbx", "--tone", "1000", "--timeout", "60")
        caller = lab.peer("caller", "--tone", "440", "--hangup-after", "30", "--timeout", "60")
        pbx.wait_for(lambda: pbx.event("confirmed"), 15)
        time.sleep(4)  # some sealed chunks
        st = lab.node_status()
        assert lab.gateway is not None
        os.kill(lab.gateway.target_pid(), signal.SIGKILL)
        for w in st["workers"]:
            os.kill(w["pid"], signal.SIGKILL)
        os.killpg(st["kamailio"]["pid"], signal.SIGKILL)
        lab.gateway.proc.wait(timeout=10)
        caller.proc.terminate()
        pbx.proc.terminate()
        gw = lab.gw.open()
        [rec] = gw.index.list_recordings()
        assert (
            rec.status == RecordingStatus.RECORDING
            and rec.writer
            and rec.writer.split(":")[0].endswith("/node-k")
        )
        gw.close()
        lab.start_gateway()  # the replacement
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all_versions(s3_server, bucket):
            time.sleep(0.3)
        gw = lab.gw.open()
        row = gw.index.get_recording(rec.id)
        assert row.status == RecordingStatus.TRUNCATED and row.signature
        assert (
            gw.store.remote.exists(row.object_name) and not (lab.gw.dir / "spool" / row.object_name).exists()
        )  # type: ignore[attr-defined]
        out = tmp_path / "a.wav"
        assert lab.gw.run("recordings", "export", rec.id, "-i", str(lab.gw.key), "-o", str(out)) == 0
        left, right = tones(out.read_bytes())
        assert abs(left - 440) < 5 and abs(right - 1000) < 5
        gw.close()
    finally:
        lab.close()


def test_a_store_out_of_reach_shows_before_any_recording_waits_for_it(
    tmp_path: Path, s3_server: s3.S3Server
) -> None:
    """Issue 28.11: with nothing to upload, the uploader checks the bucket, so `gateway status`
    and gateway_object_store_up say the store is down from the first round."""
    from gateway.telephony.net import free_port

    tgw = make_gateway(tmp_path)
    use_store(tgw, s3_server, s3_server.new_bucket())
    tgw.set("store", "endpoint", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    gw = tgw.open()
    uploader = gw.uploader()
    assert uploader is not None
    assert uploader.round() == 0
    assert uploader.stats.failures == 1 and "object store" in uploader.stats.last_error
    gw.close()
    tgw.set("store", "endpoint", s3_server.endpoint)
    gw = tgw.open()
    uploader = gw.uploader()
    assert uploader.round() == 0 and uploader.stats.failures == 0
    gw.close()


def test_store_create_bucket_makes_it_with_object_lock_and_check_says_so(
    tmp_path: Path, s3_server: s3.S3Server, capsys
) -> None:
    """Issue 28.9: a command makes the bucket, locked when [store] object_lock says so (a bucket
    gets Object Lock only when it is made); `store check` refuses an unlocked one."""
    import uuid

    from gateway.cli import exitcodes

    tgw = make_gateway(tmp_path)
    use_store(tgw, s3_server, "new-" + uuid.uuid4().hex[:12], lock="governance")
    assert tgw.run("store", "check") == exitcodes.EXIT_STORAGE  # not made yet
    capsys.readouterr()
    assert tgw.run("store", "create-bucket") == 0
    assert "made bucket" in capsys.readouterr().out
    assert tgw.run("store", "create-bucket") == 0
    out = capsys.readouterr().out
    assert "already there" in out and "Object Lock enabled" in out
    use_store(tgw, s3_server, s3_server.new_bucket(lock=False), lock="governance")
    assert tgw.run("store", "check") == exitcodes.EXIT_STORAGE
    assert "has no Object Lock" in capsys.readouterr().err
