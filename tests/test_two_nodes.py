"""Two gateway nodes as one system (issue 10): each a Kamailio and its workers on its own
loopback address, both on one PostgreSQL index and one S3 bucket (SeaweedFS). Calls land on
both; one node's dashboard, in a real browser, shows them all and pauses the other node's call;
`gateway status` lists both nodes; one data-subject request from the other node finds and
erases the caller's recordings from both; the audit chain verifies."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gateway.storage.rows import RecordingStatus
from tests import s3
from tests.calls import CallLab
from tests.conftest import require_tool
from tests.test_dashboard_browser import add_user, field, log_in, wait_field
from tests.test_dashboard_browser import browser as browser  # noqa: F401 (the fixture)
from tests.test_object_store import all_versions, use_store

pytestmark = pytest.mark.slow
NUMBER = "+46701234567"


def test_two_nodes_are_one_system(
    tmp_path: Path, pg_url: str, s3_server: s3.S3Server, browser, capsys
) -> None:  # noqa: F811
    require_tool("kamailio")
    bucket = s3_server.new_bucket()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = CallLab(tmp_path / "a", workers=1, host="127.0.0.2", node="node-a")
    b = CallLab(tmp_path / "b", workers=1, host="127.0.0.3", node="node-b")
    a.gw.share_index(pg_url, b.gw)
    for lab in (a, b):
        use_store(lab.gw, s3_server, bucket)
        lab.gw.set("recording", "recipients", [a.gw.recipient])  # one helpline, one operator key
    try:
        add_user(a, "sam", "supervisor")
        a.start_gateway()
        b.start_gateway()
        context = browser.new_context(viewport={"width": 1400, "height": 700})
        page = context.new_page()
        log_in(page, f"http://127.0.0.1:{a.dash_port}/", "sam")
        page.wait_for_selector("[data-card=nodes] .v:has-text('node-b 1/1')", timeout=15_000)
        # The account and the session are the cluster's: node B's dashboard, in the same
        # browser, is already logged in (the session is found in PostgreSQL by its hash).
        page_b = context.new_page()
        page_b.goto(f"http://127.0.0.1:{b.dash_port}/")
        page_b.wait_for_selector("#status:has-text('Connected: live updates')", timeout=10_000)
        assert not page_b.url.endswith("/login")
        page.bring_to_front()  # a tab in the background gets no animation frames to click in

        pbx_a = a.peer("pbx", "--tone", "1000", "--timeout", "60")
        pbx_b = b.peer("pbx", "--tone", "1000", "--timeout", "60")
        callers = [
            lab.peer("caller", "--number", NUMBER, "--tone", "440", "--hangup-after", "14", "--timeout", "60")
            for lab in (a, b)
        ]
        # A function, not an expression: Playwright evaluates an expression with eval(), which
        # the dashboard's CSP (script-src 'self') refuses once the check has to poll.
        page.wait_for_function(
            "() => document.querySelectorAll('#calls tbody tr[data-call]').length == 2", timeout=15_000
        )
        rows = {
            field(page, tr.get_attribute("data-call"), "node"): tr.get_attribute("data-call")
            for tr in page.query_selector_all("#calls tbody tr[data-call]")
        }
        assert set(rows) == {"node-a", "node-b"}, rows
        for call in rows.values():
            wait_field(page, call, "recording", "recording")
        # Node A's dashboard pauses and resumes the call on node B; B's worker obeys and audits.
        remote = rows["node-b"]
        page.click(f'tr[data-call="{remote}"] button[data-op="pause"]')
        wait_field(page, remote, "recording", "paused", 8_000)
        page.click(f'tr[data-call="{remote}"] button[data-op="resume"]')
        wait_field(page, remote, "recording", "recording", 8_000)
        # `gateway status` on either node lists both.
        capsys.readouterr()
        assert b.gw.run("status", "--json") == 0
        nodes = {n["name"]: n for n in json.loads(capsys.readouterr().out)["nodes"]}
        assert set(nodes) == {"node-a", "node-b"} and all(n["up"] for n in nodes.values())
        assert nodes["node-a"]["listen"].startswith("127.0.0.2:") and nodes["node-b"]["listen"].startswith(
            "127.0.0.3:"
        )
        for c in callers:
            c.wait_exit()
            assert c.event("disconnected")["connected_s"] > 13
        pbx_a.wait_exit()
        pbx_b.wait_exit()
        for call in rows.values():
            wait_field(page, call, "state", "ended", 15_000)
            wait_field(page_b, call, "state", "ended", 15_000)  # B's dashboard saw both calls too
        # Logging out on node B ends the session on node A as well.
        page_b.bring_to_front()
        page_b.click("#logout button")
        page.wait_for_url("**/login", timeout=10_000)
        # Both recordings reach the bucket, and leave both spools.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            any((a.gw.dir / "spool").glob("*.age")) or any((b.gw.dir / "spool").glob("*.age"))
        ):
            time.sleep(0.3)
        assert not any((a.gw.dir / "spool").glob("*.age")) and not any((b.gw.dir / "spool").glob("*.age"))
        assert a.gateway is not None and a.gateway.stop() == 0
        assert b.gateway is not None and b.gateway.stop() == 0

        gw = b.gw.open()
        recs = gw.index.list_recordings()
        assert len(recs) == 2 and all(r.status == RecordingStatus.COMPLETE and r.signature for r in recs)
        assert sorted(r.node or "" for r in recs) == ["node-a", "node-b"], "each listed under its node"
        pauses = [e for e in gw.index.audit_entries() if e.action == "recording.paused"]
        assert len(pauses) == 1 and pauses[0].actor == "dashboard:sam", "audited once, by its node"
        assert len(all_versions(s3_server, bucket)) == 2
        gw.close()
        # One data-subject request, from node B, finds and erases the number's calls on both.
        capsys.readouterr()
        assert b.gw.run("subject", "find", "--number", NUMBER, "-i", str(a.gw.key), "--json") == 0
        found = json.loads(capsys.readouterr().out)
        assert len(found["recordings"]) == 2
        assert b.gw.run("subject", "erase", "--number", NUMBER, "-i", str(a.gw.key)) == 0
        gw = a.gw.open()
        assert [r.status for r in gw.index.list_recordings()] == [
            RecordingStatus.DELETED,
            RecordingStatus.DELETED,
        ]
        assert all_versions(s3_server, bucket) == []
        gw.close()
        assert a.gw.run("audit", "verify") == 0
        assert b.gw.run("audit", "verify") == 0
    except BaseException:
        for lab in (a, b):  # what the nodes said, for the failure report
            if lab.gateway is not None:
                print(f"--- {lab.gw.dir}", *lab.gateway.lines[-60:], sep="\n")
        raise
    finally:
        a.close()
        b.close()
