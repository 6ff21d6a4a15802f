"""Shared state across nodes (issue 10): the gateway on a PostgreSQL index, with real calls."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from gateway import age
from gateway.storage import index as ix
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
        assert rec.status == ix.COMPLETE and rec.signature
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
        assert rec.status == ix.COMPLETE and rec.signature, rec
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
