"""Shared state across nodes (issue 10): the gateway on a PostgreSQL index, with real calls."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from gateway import age
from gateway.storage import index as ix
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
