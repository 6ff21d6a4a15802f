"""Two gateway nodes as one system (issue 10): each a Kamailio and its workers on its own
loopback address, both on one PostgreSQL index and one S3 bucket (SeaweedFS). Calls land on
both; one node's dashboard, in a real browser, shows them all and pauses the other node's call;
`gateway status` lists both nodes; one data-subject request from the other node finds and
erases the caller's recordings from both; the audit chain verifies.

The system has two tenants (issue 27): node A's call is north's, node B's is south's, each
recorded to its own tenant's key and the national escrow key (the operator's here). A supervisor
scoped to north, on node B's dashboard, sees north's call (on node A) and never south's (on
their own node), even in the WebSocket frames; they pause north's call across nodes, and a pause
of south's answers as for a call that does not exist. North's audit export, taken on node B,
verifies against a signed checkpoint and holds no entry of south's."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from gateway.storage.rows import RecordingStatus
from tests import s3
from tests.calls import ROOT, CallLab
from tests.conftest import require_tool
from tests.test_dashboard_browser import PASSWORD, add_user, field, log_in, wait_field
from tests.test_dashboard_browser import browser as browser  # noqa: F401 (the fixture)
from tests.test_object_store import all_versions, use_store
from tests.test_tenants import keypair, opens, tenants_toml, with_tenants

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
    north_key, north_recipient = keypair(tmp_path, "north")
    south_key, south_recipient = keypair(tmp_path, "south")
    tenants = {  # the operator's key is the national escrow: it opens both tenants' recordings
        "north": {"recipients": [north_recipient], "escrow": [a.gw.recipient]},
        "south": {"recipients": [south_recipient], "escrow": [a.gw.recipient]},
    }
    for lab in (a, b):
        use_store(lab.gw, s3_server, bucket)
        with_tenants(lab.gw.config, tenants_toml(tenants, {"1177": "north", "1188": "south"}))
    try:
        add_user(a, "sam", "supervisor")
        subprocess.run(
            [str(ROOT / ".venv/bin/gateway"), "--config", str(a.gw.config), "user", "add", "nora",
             "--role", "supervisor", "--scope", "north"],
            input=PASSWORD + "\n", text=True, check=True, capture_output=True,
        )  # fmt: skip
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

        # North's supervisor, in a browser of their own, on node B's dashboard.
        nora = browser.new_context().new_page()
        frames: list[str] = []
        nora.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(str(payload))))
        log_in(nora, f"http://127.0.0.1:{b.dash_port}/", "nora")
        pbx_a = a.peer("pbx", "--tone", "1000", "--timeout", "60")
        pbx_b = b.peer("pbx", "--tone", "1000", "--timeout", "60")
        callers = [  # north's number on node A, south's on node B
            lab.peer("caller", "--number", NUMBER, "--tone", "440", "--hangup-after", "14", "--timeout", "60",
                     "--target", f"sip:{dialled}@{lab.host}:{lab.sip_port}")
            for lab, dialled in ((a, "1177"), (b, "1188"))
        ]  # fmt: skip
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
        # North's supervisor on node B: north's call (node A's) alone; it pauses that call across
        # the nodes, and south's call, on node B itself, answers as one that does not exist.
        north_call, south_call = rows["node-a"], rows["node-b"]
        nora.bring_to_front()
        wait_field(nora, north_call, "recording", "recording")
        assert len(nora.query_selector_all("#calls tbody tr[data-call]")) == 1
        answers = nora.evaluate(
            """async (calls) => {
                const csrf = document.querySelector('meta[name=csrf]').content;
                const out = [];
                for (const [call, op] of calls) {
                    const r = await fetch(`/api/calls/${call}/${op}`, {method: 'POST', headers: {'X-CSRF-Token': csrf}});
                    out.push([r.status, await r.text()]);
                }
                return out;
            }""",
            [[south_call, "pause"], ["ffffffffffffffff", "pause"], [north_call, "pause"]],
        )
        assert answers[0] == answers[1] and answers[0][0] == 404 and answers[2][0] == 200, answers
        wait_field(nora, north_call, "recording", "paused", 8_000)
        nora.click(f'tr[data-call="{north_call}"] button[data-op="resume"]')
        wait_field(nora, north_call, "recording", "recording", 8_000)
        page.bring_to_front()
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
        pauses = [(e.actor, e.tenant) for e in gw.index.audit_entries() if e.action == "recording.paused"]
        assert pauses == [("dashboard:sam", "south"), ("dashboard:nora", "north")], "once each, by its node"
        assert len(all_versions(s3_server, bucket)) == 2
        # Each tenant's key opens its own recording alone; the escrow (operator) key opens both.
        mine = {r.tenant: r.id for r in recs}
        assert {r.node: r.tenant for r in recs} == {"node-a": "north", "node-b": "south"}
        assert opens(gw, mine["north"], north_key) and not opens(gw, mine["south"], north_key)
        assert opens(gw, mine["south"], south_key) and not opens(gw, mine["north"], south_key)
        assert all(opens(gw, r.id, a.gw.key) for r in recs)
        gw.close()
        assert not [f for f in frames if south_call in f], "no frame to north's supervisor named south's call"
        assert any(north_call in f for f in frames)
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
        # North's own evidence, exported on node B: its entries whole (from both nodes), south's
        # sealed, verifying against a checkpoint node B signs.
        capsys.readouterr()
        assert b.gw.run("audit", "checkpoint") == 0
        witness = tmp_path / "witness.log"
        witness.write_text(capsys.readouterr().out)
        out = tmp_path / "north.jsonl"
        assert b.gw.run("audit", "export", "--tenant", "north", "-o", str(out)) == 0
        text = out.read_text()
        assert mine["north"] in text and mine["south"] not in text and south_call not in text
        shown = [json.loads(line) for line in text.splitlines() if '"sealed"' not in line]
        assert {"recording.paused", "recording.deleted"} <= {d["action"] for d in shown}
        assert all(d["details"].get("tenant") == "north" for d in shown if d["action"] != "audit.exported")
        capsys.readouterr()
        pubs = [x for lab in (a, b) for x in ("--public-key", str(lab.gw.dir / "secrets" / "signing.pub"))]
        assert (
            b.gw.run("audit", "verify", "--json", "--from", str(out), *pubs, "--checkpoint", str(witness))
            == 0
        )
        verdict = json.loads(capsys.readouterr().out)
        assert verdict["ok"] and verdict["checkpoints"] == 1 and verdict["sealed"] > 0
    except BaseException:
        for lab in (a, b):  # what the nodes said, for the failure report
            if lab.gateway is not None:
                print(f"--- {lab.gw.dir}", *lab.gateway.lines[-60:], sep="\n")
        raise
    finally:
        a.close()
        b.close()
