"""Shared state across nodes (issue 10): the gateway on a PostgreSQL index, with real calls."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from gateway import age
from gateway.storage.rows import RecordingStatus
from tests import pg
from tests.audio import dominant_frequency, split_channels
from tests.calls import CallLab

pytestmark = pytest.mark.slow


def test_a_gateway_on_postgresql_records_and_governs_its_calls(tmp_path: Path, pg_url: str, capsys) -> None:
    lab = CallLab(tmp_path)
    lab.gw.config.write_text(lab.gw.config.read_text().replace('url = ""', f'url = "{pg_url}"', 1))
    try:
        lab.start_gateway()
        pbx = lab.peer("pbx", "--tone", "1000")
        caller = lab.peer("caller", "--tone", "440", "--hangup-after", "5", "--number", "+46701234567")
        caller.wait_exit()
        pbx.wait_exit()
        assert lab.gateway is not None and lab.gateway.stop() == 0
        gw = lab.gw.open()
        assert type(gw.index).__name__ == "PgIndex"
        [rec] = gw.index.list_recordings()
        assert rec.status == RecordingStatus.COMPLETE and rec.signature
        with gw.store.open(rec.object_name) as f:
            plain = age.AgeReader(f, age.load_identity_file(lab.gw.key)).read_all()
        left, right = split_channels(plain[44:])
        assert abs(dominant_frequency(left) - 440) < 5 and abs(dominant_frequency(right) - 1000) < 5
        # The CLI works on the shared index: subject request, verification, the audit chain.
        capsys.readouterr()
        assert lab.gw.run("subject", "find", "--number", "+46701234567", "-i", str(lab.gw.key), "--json") == 0
        assert [r["id"] for r in json.loads(capsys.readouterr().out)["recordings"]] == [rec.id]
        assert lab.gw.run("recordings", "verify") == 0
        assert lab.gw.run("audit", "verify") == 0
        # Nothing of the call went to the local SQLite file.
        local = sqlite3.connect(lab.gw.dir / "index.sqlite3")
        assert local.execute("SELECT COUNT(*) FROM calls").fetchone() == (0,)
        local.close()
    finally:
        lab.close()


def test_the_index_going_away_mid_call_loses_nothing(tmp_path: Path, capsys) -> None:
    """PostgreSQL stops during a call: the call goes on and is recorded, the worker keeps its
    index writes in a local journal (`gateway audit` says so), and replays them in order when
    the database is back: the recording is complete and signed, the chain verifies."""
    server = pg.start()  # its own cluster: this test stops it
    lab = CallLab(tmp_path)
    lab.gw.config.write_text(
        lab.gw.config.read_text().replace('url = ""', f'url = "{server.new_database()}"', 1)
    )
    try:
        lab.start_gateway()
        pbx = lab.peer("pbx", "--tone", "1000")
        caller = lab.peer("caller", "--tone", "440", "--hangup-after", "8", "--number", "+46701234567")
        pbx.wait_for(lambda: pbx.event("confirmed"), 15)
        server.halt()  # the database goes away, mid-call
        caller.wait_exit()
        pbx.wait_exit()
        assert caller.event("disconnected")["connected_s"] > 7, "the call went on"
        time.sleep(1.5)  # the recording is finalised (into the journal)
        journal = lab.gw.dir / "journal"
        assert any(journal.glob("*.jsonl")), "the index writes went to the journal"
        capsys.readouterr()
        assert lab.gw.run("audit", "--json", "--temp-dir", str(tmp_path / "none")) == 1
        kinds = {f["kind"] for f in json.loads(capsys.readouterr().out)["findings"]}
        assert {"index-journal", "index-unreachable"} <= kinds
        server.resume()
        deadline = time.monotonic() + 20
        while any(journal.glob("*.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(journal.glob("*.jsonl")), "replayed once the database was back"
        assert lab.gateway is not None and lab.gateway.stop() == 0
        gw = lab.gw.open()
        [rec] = gw.index.list_recordings()
        assert rec.status == RecordingStatus.COMPLETE and rec.signature, rec
        with gw.store.open(rec.object_name) as f:
            plain = age.AgeReader(f, age.load_identity_file(lab.gw.key)).read_all()
        left, _ = split_channels(plain[44:])
        assert len(left) / 8000 > 5 and abs(dominant_frequency(left) - 440) < 5
        assert gw.index.get_call(rec.call_id).ended_at is not None
        assert gw.index.get_consent_receipt(rec.call_id)["decision"] == "granted"
        entries = gw.index.audit_entries()
        assert [e for e in entries if e.action == "recording.complete" and "journal" in e.details]
        assert lab.gw.run("audit", "verify") == 0
    finally:
        lab.close()
        server.stop()


@pytest.mark.parametrize("trouble", ["database down", "login refused"])
def test_a_node_starts_and_records_while_the_database_is_away_or_refuses_it(
    tmp_path: Path, pg_server: pg.PgServer, trouble: str, capsys
) -> None:
    """Issue 28.1: the node starts (Kamailio, workers, the dashboard answering 503), takes a call,
    records it into the spool and keeps its index writes in the journal."""
    import http.cookiejar
    import re
    import urllib.error
    import urllib.parse
    import urllib.request

    from gateway.storage import journal

    lab = CallLab(tmp_path, workers=1)
    if trouble == "database down":
        url = f"postgresql://postgres@/gateway?host={tmp_path}&connect_timeout=1"  # no server there
    else:
        url = pg_server.new_database().replace("postgresql://postgres@", "postgresql://nobody@")
    lab.gw.share_index(url)
    try:
        lab.start_gateway()
        pbx = lab.peer("pbx", "--tone", "1000")
        caller = lab.peer("caller", "--tone", "440", "--hangup-after", "4")
        caller.wait_exit()
        pbx.wait_exit()
        assert pbx.event("incoming")["headers"]["x-recording-consent"] == "granted"
        # The dashboard is up; a login cannot be checked and says so (503), it does not crash.
        base = f"http://127.0.0.1:{lab.dash_port}"
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        form = opener.open(f"{base}/login", timeout=10).read().decode()
        token = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
        data = urllib.parse.urlencode({"csrf": token, "name": "sam", "password": "x" * 12}).encode()
        request = urllib.request.Request(f"{base}/login", data=data, headers={"Origin": base})
        with pytest.raises(urllib.error.HTTPError) as e:
            opener.open(request, timeout=10)
        assert e.value.code == 503
        # `gateway status` tells the operator the index is away and what waits for it.
        capsys.readouterr()
        assert lab.gw.run("status", "--json") == 0
        index = json.loads(capsys.readouterr().out)["index"]
        assert index["shared"] and not index["reachable"] and index["journal_waiting"] > 0, index
        assert lab.gw.run("status") == 0
        assert "index: UNREACHABLE" in capsys.readouterr().out
        lab.stop_gateway()
        assert list((lab.gw.dir / "spool").glob("*.age")), "the recording is in the spool"
        assert journal.backlog(lab.gw.dir / "journal") > 0, "its index rows wait in the journal"
        assert not any("Traceback" in line for line in lab.gateway.stderr_lines), "\n".join(
            lab.gateway.stderr_lines
        )
    finally:
        lab.close()
