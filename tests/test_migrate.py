"""`gateway migrate` (issue 10, item 8): an embedded node (SQLite index, local spool, accounts
in secrets/) moved into a real PostgreSQL index and a real S3 bucket, resumably."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.accounts.users import UserStore
from gateway.storage.rows import RecordingStatus
from gateway.telephony.net import free_port
from tests import s3
from tests.gw import make_gateway
from tests.test_object_store import all_versions, tones, use_store

NUMBER = "+46701234567"
PASSWORD = "correct horse battery"


def test_an_embedded_node_moves_into_postgresql_and_s3_and_can_resume(
    tmp_path: Path, pg_url: str, s3_server: s3.S3Server, capsys
) -> None:
    tgw = make_gateway(tmp_path)
    first = tgw.record(seconds=1.0, number=NUMBER)
    second = tgw.record(seconds=1.0)
    gw = tgw.open()
    call = gw.index.get_recording(first).call_id
    assert call is not None
    gw.index.put_consent_receipt(call, {"decision": "granted", "digits": []})
    gw.close()
    assert tgw.run("hold", "add", second, "--reason", "complaint 17") == 0
    users = UserStore(tgw.dir / "secrets" / "users.sqlite3")
    users.add("alice", "admin", PASSWORD)
    users.add("nora", "supervisor", PASSWORD, "north")
    users.close()
    embedded_entries = len(tgw.open().index.audit_entries())

    # The node's configuration now names the shared index and the bucket; the store is not
    # reachable yet (a wrong port): everything but the uploads is done, and it says so.
    bucket = s3_server.new_bucket()
    tgw.set("index", "url", pg_url)
    use_store(tgw, s3_server, bucket)
    tgw.set("store", "endpoint", f"http://127.0.0.1:{free_port()}")
    capsys.readouterr()
    assert tgw.run("migrate") == 9
    out = capsys.readouterr().out
    assert "2 recording(s)" in out and "run gateway migrate again later" in out
    gw = tgw.open()
    assert type(gw.index).__name__ == "PgIndex"
    assert {r.id for r in gw.index.list_recordings()} == {first, second}
    assert len(list((tgw.dir / "spool").glob("*.age"))) == 2
    gw.close()

    # Resumed once the store answers: the recordings move, nothing is duplicated.
    tgw.set("store", "endpoint", s3_server.endpoint)
    capsys.readouterr()
    assert tgw.run("migrate") == 0, capsys.readouterr().out
    assert "2 uploaded" in capsys.readouterr().out
    assert len(all_versions(s3_server, bucket)) == 2 and not list((tgw.dir / "spool").glob("*.age"))
    assert tgw.run("migrate") == 0  # a third run changes nothing
    gw = tgw.open()
    assert len(gw.index.list_recordings()) == 2
    assert [h["reason"] for h in gw.index.active_holds(second)] == ["complaint 17"]
    assert gw.index.get_consent_receipt(call)["decision"] == "granted"
    bound = [e for e in gw.index.audit_entries() if e.action == "index.migrated_from"]
    assert len(bound) == 1 and bound[0].details["entries"] >= embedded_entries
    # The account logs in from the shared index; the old chain is archived and verified.
    assert gw.user_store().authenticate("alice", PASSWORD).user is not None
    assert gw.user_store().get("nora").tenants == {"north"}, "a user's scope moves with them"
    capsys.readouterr()
    assert tgw.run("audit", "verify", "--json") == 0
    assert json.loads(capsys.readouterr().out)["archived_chains"] == []
    # Everything works from the shared state: a subject request, an export from the bucket.
    assert tgw.run("subject", "find", "--number", NUMBER, "-i", str(tgw.key), "--json") == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)["recordings"]] == [first]
    out_wav = tmp_path / "first.wav"
    assert tgw.run("recordings", "export", first, "-i", str(tgw.key), "-o", str(out_wav)) == 0
    assert abs(tones(out_wav.read_bytes())[0] - 440) < 5
    assert gw.index.get_recording(first).status == RecordingStatus.COMPLETE

    # An archived chain edited in the database is caught.
    shared = gw.shared_index()
    assert shared is not None
    shared.query("UPDATE audit_archive SET line = replace(line, 'complaint 17', 'complaint 18') WHERE n >= 0")
    capsys.readouterr()
    assert tgw.run("audit", "verify") == 1
    assert "differs from what index.migrated_from bound" in capsys.readouterr().out
    gw.close()


def test_migrate_needs_a_shared_index_in_the_configuration(tmp_path: Path, capsys) -> None:
    tgw = make_gateway(tmp_path)
    capsys.readouterr()
    assert tgw.run("migrate") == 3
    assert "[index] url" in capsys.readouterr().err
