"""`gateway recordings rewrap` (issue 23, item 4): recordings made for X25519 operators move to
new post-quantum keys without their audio being decrypted, on the spool and in the S3 store,
with a key per recording too; a store outage stops the run, and running it again finishes.
Afterwards the old identity opens nothing and the new one everything, the signatures verify and
every move is audited."""

from __future__ import annotations

import io
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from gateway import age
from gateway.age import format as fmt
from gateway.cli import exitcodes, main
from gateway.recording import keys
from gateway.storage.rows import RecordingStatus
from tests import s3
from tests.audio import dominant_frequency
from tests.gw import make_gateway
from tests.test_object_store import all_versions, use_store

pytestmark = pytest.mark.slow


def test_rewrap_moves_recordings_to_new_keys_and_resumes_after_an_outage(
    tmp_path: Path, s3_server: s3.S3Server, capsys
) -> None:
    tgw = make_gateway(tmp_path)
    bucket = s3_server.new_bucket()
    relay = s3.outage_for(s3_server)
    use_store(tgw, s3_server, bucket)
    tgw.set("store", "endpoint", relay.endpoint)
    in_bucket = [tgw.record(1, number="+46701234567"), tgw.record(1)]
    gw = tgw.open()
    assert gw.uploader().round() == 2
    gw.close()
    in_spool = [tgw.record(1)]
    tgw.set("recording", "key_per_recording", True)
    in_spool.append(tgw.record(1))
    recs = in_bucket + in_spool
    old_key = tgw.key
    new_key = tmp_path / "operator-pq.txt"
    capsys.readouterr()
    assert main(["keygen", "--pq", "-o", str(new_key)]) == 0
    tgw.set("recording", "recipients", [capsys.readouterr().out.strip()])

    # One recording first; then the store goes away and the run stops at the first recording
    # in the bucket; then it comes back and the run finishes.
    assert tgw.run("recordings", "rewrap", recs[2], "-i", str(old_key)) == 0
    relay.halt()
    assert tgw.run("recordings", "rewrap", "-i", str(old_key)) == exitcodes.EXIT_STORAGE
    assert "run rewrap again" in capsys.readouterr().err
    relay.resume()
    assert tgw.run("recordings", "rewrap", "-i", str(old_key)) == 0
    out = capsys.readouterr().out
    assert "3 recording(s) rewrapped, 1 passed over" in out

    gw = tgw.open()
    old, new = age.load_identity_file(old_key), age.load_identity_file(new_key)
    for rec_id in recs:
        row = gw.index.get_recording(rec_id)
        assert row.status == RecordingStatus.COMPLETE
        with gw.store.open(row.object_name) as f:
            sealed = f.read()
        assert [s.type for s in fmt.parse(io.BytesIO(sealed)).stanzas] == ["mlkem768x25519"]
        with pytest.raises(age.NoIdentityMatchError):
            age.decrypt(sealed, keys.identities_for(row.key_enc, old))
        plain = age.decrypt(sealed, keys.identities_for(row.key_enc, new))
        with wave.open(io.BytesIO(plain)) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        assert abs(dominant_frequency(pcm[0::2]) - 440) < 5 and abs(dominant_frequency(pcm[1::2]) - 1000) < 5
    names = {gw.index.get_recording(r).object_name for r in recs}
    entries = [e for e in gw.index.audit_entries() if e.action == "recording.rewrapped"]
    assert sorted(e.subject for e in entries) == sorted(recs)
    assert all(e.details["post_quantum"] and e.details["old_object_removed"] for e in entries)
    gw.close()
    # Every new object is in the bucket, and nothing of the old ones is left anywhere.
    assert {k.split("/")[-1] for k in all_versions(s3_server, bucket)} == names
    assert not list((tgw.dir / "spool").glob("*.age"))
    assert tgw.run("recordings", "verify") == 0
    assert tgw.run("audit", "verify") == 0
    # The caller's number moved with the recordings: the new identity finds the subject, the
    # old one no longer does.
    capsys.readouterr()
    assert tgw.run("subject", "find", "--number", "+46701234567", "-i", str(new_key), "--json") == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)["recordings"]] == [recs[0]]
    code = tgw.run("subject", "find", "--number", "+46701234567", "-i", str(old_key), "--json")
    found = capsys.readouterr()
    assert code != 0 or json.loads(found.out)["recordings"] == [], found
