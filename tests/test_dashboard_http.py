"""The dashboard over HTTP: logins, sessions, CSRF, roles, lockout, headers, and what it never
serves. The application is the real one (build_app) on a loopback port; the node behind it is
replaced by a status dict and a recorded command list (the real worker control channel is
exercised by the browser test and tests/test_control.py)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import ClientSession, CookieJar, WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer

from gateway.accounts.sessions import Session
from gateway.accounts.users import UserStore
from gateway.config import DashboardConfig
from gateway.dashboard.app import Dashboard, build_app
from gateway.storage.index import SqliteIndex
from gateway.storage.rows import RecordingRow
from tests.tlscerts import TestCA

PASSWORD = "correct horse battery"


class Lab:
    def __init__(self, tmp: Path) -> None:
        self.index = SqliteIndex(tmp / "index.sqlite3", create=True)
        self.users = UserStore(tmp / "secrets" / "users.sqlite3", lockout_after=3, lockout_s=600)
        for name, role in (("vera", "viewer"), ("sam", "supervisor"), ("aud", "auditor"), ("ada", "admin")):
            self.users.add(name, role, PASSWORD)
        self.commands: list[tuple[str, str, str]] = []
        (tmp / "spool").mkdir()
        (tmp / "spool" / "0123456789abcdef").write_bytes(b"age-encryption.org/v1\n...")

        async def command(op: str, call: str, session: Session) -> str | None:
            self.commands.append((op, call, session.actor))
            return None

        self.dash = Dashboard(
            DashboardConfig(idle_timeout_s=60),
            self.users,
            self.index,
            spool_dir=tmp / "spool",
            node_status=lambda: {
                "workers": [{"index": 0, "ready": True, "restarts": 0}],
                "capacity_calls": 2,
                "failopen": 0,
            },
            command=command,
        )
        self.dash.backoff_s = 0.01


@pytest_asyncio.fixture
async def lab(tmp_path: Path) -> AsyncIterator[tuple[Lab, TestClient]]:
    lab = Lab(tmp_path)
    client = TestClient(TestServer(build_app(lab.dash), host="127.0.0.1"))
    await client.start_server()
    yield lab, client
    await client.close()
    lab.index.close()
    lab.users.close()


async def login(client: TestClient, name: str, password: str = PASSWORD) -> Any:
    page = await client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', await page.text()).group(1)
    return await client.post(
        "/login", data={"csrf": token, "name": name, "password": password}, allow_redirects=False
    )


async def csrf_of(client: TestClient) -> str:
    page = await (await client.get("/")).text()
    return re.search(r'<meta name="csrf" content="([^"]+)"', page).group(1)


def started(call: str = "c0ffee0000000001", display: str = "Anna") -> dict[str, Any]:
    return {
        "type": "call.started",
        "call": call,
        "ts": 1.0,
        "seq": 1,
        "worker": "h:1",
        "state": "notice",
        "route": "1177",
        "mode": "opt-out",
        "caller_display": display,
        "caller_masked": "*********567",
    }


@pytest.mark.asyncio
async def test_no_session_leads_to_the_login_form(lab: tuple[Lab, TestClient]) -> None:
    _, client = lab
    r = await client.get("/", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/login"
    r = await client.get("/api/audit")
    assert r.status == 401
    r = await client.get("/login")
    assert r.status == 200 and 'type="password"' in await r.text()


@pytest.mark.asyncio
async def test_login_sets_a_strict_httponly_session_and_logout_ends_it(lab: tuple[Lab, TestClient]) -> None:
    lab_, client = lab
    r = await login(client, "vera")
    assert r.status == 303 and r.headers["Location"] == "/"
    cookie = next(v for k, v in r.headers.items() if k == "Set-Cookie" and v.startswith("gw_session="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    page = await client.get("/")
    assert page.status == 200 and 'content="viewer"' in await page.text()
    assert any(e.action == "dashboard.login" and e.subject == "vera" for e in lab_.index.audit_entries())
    token = await csrf_of(client)
    r = await client.post("/logout", data={"csrf": "wrong"}, allow_redirects=False)
    assert r.status == 403
    r = await client.post("/logout", data={"csrf": token}, allow_redirects=False)
    assert r.status == 303
    assert (await client.get("/", allow_redirects=False)).status == 303


@pytest.mark.asyncio
async def test_login_form_without_its_token_is_refused(lab: tuple[Lab, TestClient]) -> None:
    _, client = lab
    r = await client.post("/login", data={"name": "vera", "password": PASSWORD}, allow_redirects=False)
    assert r.status == 403 and "form expired" in await r.text()


@pytest.mark.asyncio
async def test_repeated_bad_passwords_lock_the_account_even_against_the_right_one(
    lab: tuple[Lab, TestClient],
) -> None:
    lab_, client = lab
    for _ in range(3):
        r = await login(client, "sam", "wrong password!")
        assert r.status == 401
    assert "locked" in await r.text()
    r = await login(client, "sam")  # the right password, too late
    assert r.status == 401 and "locked" in await r.text()
    assert lab_.users.get("sam").locked_until > 0
    assert any(e.action == "dashboard.locked" for e in lab_.index.audit_entries())
    # An unknown name locks the same way, so the lockout does not tell which names exist.
    for _ in range(3):
        r = await login(client, "nobody", "wrong password!")
    assert r.status == 401 and "locked" in await r.text()
    lab_.users.unlock("sam")
    assert (await login(client, "sam")).status == 303


@pytest.mark.asyncio
async def test_names_typed_at_the_login_form_never_reach_the_audit_log(
    lab: tuple[Lab, TestClient], capsys, monkeypatch
) -> None:
    lab_, client = lab
    before = len(lab_.index.audit_entries())
    hostile = "\x1b]0;pwned\x07\x1b[2Jroot"
    for name in [hostile] * 4 + [f"guess{i}" for i in range(3) for _ in range(4)]:
        assert (await login(client, name, "wrong password!")).status == 401
    # Locked, both: the invented names and the escape sequence, but not one audit entry for
    # them (only an account's lockout is audited), and the raw name is in no login record.
    assert len(lab_.index.audit_entries()) == before
    rows, _ = lab_.users._q("SELECT name FROM logins")
    assert all("\x1b" not in r[0] for r in rows)
    # An account's lockout is audited, and however an entry's text got there, `audit show`
    # prints its control characters as escapes.
    for _ in range(4):
        await login(client, "sam", "wrong password!")
    assert [e.actor for e in lab_.index.audit_entries()[before:]] == ["dashboard:sam"]
    lab_.index.append_audit(f"dashboard:{hostile}", "dashboard.locked", hostile)
    from gateway.cli import audit as audit_cli

    class Args:
        json = False

    monkeypatch.setattr(audit_cli, "open_gateway", lambda args: type("G", (), {"index": lab_.index})())
    capsys.readouterr()
    assert audit_cli.cmd_show(Args()) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b]0;pwned\\x07" in out


@pytest.mark.asyncio
async def test_actions_need_the_csrf_token_and_the_supervisor_role(lab: tuple[Lab, TestClient]) -> None:
    lab_, client = lab
    lab_.dash.on_event(started(), 0)
    await login(client, "sam")
    token = await csrf_of(client)
    r = await client.post("/api/calls/c0ffee0000000001/stop")
    assert r.status == 403 and "CSRF" in (await r.json())["error"]
    r = await client.post("/api/calls/c0ffee0000000001/stop", headers={"X-CSRF-Token": "x" * 43})
    assert r.status == 403
    r = await client.post(
        "/api/calls/c0ffee0000000001/stop", headers={"X-CSRF-Token": token, "Origin": "http://evil.example"}
    )
    assert r.status == 403
    r = await client.post("/api/calls/c0ffee0000000001/stop", headers={"X-CSRF-Token": token})
    assert r.status == 200, await r.text()
    assert lab_.commands == [("stop", "c0ffee0000000001", "dashboard:sam")]
    r = await client.post("/api/calls/ffffffffffffffff/pause", headers={"X-CSRF-Token": token})
    assert r.status == 404
    # A viewer sees the live view but may not act.
    viewer = TestClient(TestServer(build_app(lab_.dash), host="127.0.0.1"))
    await viewer.start_server()
    try:
        await login(viewer, "vera")
        r = await viewer.post(
            "/api/calls/c0ffee0000000001/stop", headers={"X-CSRF-Token": await csrf_of(viewer)}
        )
        assert r.status == 403 and "viewer" in (await r.json())["error"]
        assert (await viewer.get("/api/audit")).status == 403
        assert (await viewer.get("/api/users")).status == 403
    finally:
        await viewer.close()
    assert len(lab_.commands) == 1


@pytest.mark.asyncio
async def test_auditor_reads_the_chain_and_metadata_never_audio(lab: tuple[Lab, TestClient]) -> None:
    lab_, client = lab
    await login(client, "aud")
    a = await (await client.get("/api/audit")).json()
    assert a["chain"]["ok"] is True and a["entries"][0]["action"] == "dashboard.login"
    r = await client.get("/api/recordings")
    assert r.status == 200 and r.content_type == "application/json"
    assert (await client.get("/api/calls/x/stop")).status == 405
    # Tamper with an entry: the auditor sees the chain broken and where.
    lab_.index._db.execute("UPDATE audit SET actor = 'someone else' WHERE seq = 1")
    a = await (await client.get("/api/audit")).json()
    assert a["chain"]["ok"] is False and a["chain"]["problem"]["seq"] == 1


@pytest.mark.asyncio
async def test_nothing_is_served_from_the_data_directories(lab: tuple[Lab, TestClient]) -> None:
    _, client = lab
    await login(client, "ada")
    for path in (
        "/static/../secrets/users.sqlite3",
        "/static/%2e%2e/secrets/users.sqlite3",
        "/static/",
        "/static",
        "/spool/0123456789abcdef",
        "/static/..%2f..%2fgateway.toml",
        "/../index.sqlite3",
        "/static/app.js/..%2f..%2fusers.py",
        "/recordings",
        "/api/recordings/x/audio",
    ):
        r = await client.get(path, allow_redirects=False)
        assert r.status in (404, 405), (path, r.status)
        assert b"age-encryption" not in await r.read()
    assert (await client.get("/static/app.js")).status == 200


@pytest.mark.asyncio
async def test_every_response_carries_the_security_headers(lab: tuple[Lab, TestClient]) -> None:
    _, client = lab
    for path in ("/login", "/nowhere", "/static/app.css"):
        r = await client.get(path)
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Referrer-Policy"] == "same-origin" and r.headers["Cache-Control"] == "no-store"


@pytest.mark.asyncio
async def test_websocket_needs_a_session_and_the_same_origin(lab: tuple[Lab, TestClient]) -> None:
    lab_, client = lab
    url = client.make_url("/ws")
    async with ClientSession() as anonymous:
        with pytest.raises(WSServerHandshakeError) as e:
            await anonymous.ws_connect(url, origin=str(client.make_url("")).rstrip("/"))
        assert e.value.status == 401
    await login(client, "vera")
    with pytest.raises(WSServerHandshakeError) as e:
        await client.ws_connect("/ws", origin="http://evil.example")
    assert e.value.status == 403
    origin = f"http://{client.host}:{client.port}"
    lab_.dash.on_event(started(display="<img src=x onerror=alert(1)>"), 0)
    async with client.ws_connect("/ws", origin=origin) as ws:
        snap = json.loads((await ws.receive()).data)
        assert (
            snap["t"] == "snapshot" and snap["calls"][0]["caller_display"] == "<img src=x onerror=alert(1)>"
        )
        assert "link" not in snap["calls"][0] and "46701234" not in json.dumps(snap)
        lab_.dash.on_event(
            {"type": "call.consent", "call": "c0ffee0000000001", "ts": 2.0, "consent": "granted"}, 0
        )
        update = json.loads((await ws.receive(timeout=2)).data)
        assert update["t"] == "call" and update["call"]["consent"] == "granted"


@pytest.mark.asyncio
async def test_admin_manages_users_and_a_removed_user_loses_the_session(lab: tuple[Lab, TestClient]) -> None:
    lab_, client = lab
    other = TestClient(TestServer(build_app(lab_.dash), host="127.0.0.1"))
    await other.start_server()
    try:
        await login(other, "vera")
        assert (await other.get("/", allow_redirects=False)).status == 200
        await login(client, "ada")
        token = await csrf_of(client)
        r = await client.post(
            "/api/users",
            json={"name": "nina", "role": "supervisor", "password": "short"},
            headers={"X-CSRF-Token": token},
        )
        assert r.status == 400 and "10" in (await r.json())["error"]
        r = await client.post(
            "/api/users",
            json={"name": "nina", "role": "supervisor", "password": PASSWORD},
            headers={"X-CSRF-Token": token},
        )
        assert r.status == 200 and lab_.users.get("nina").role == "supervisor"
        r = await client.post("/api/users/ada/remove", headers={"X-CSRF-Token": token})
        assert r.status == 400
        r = await client.post("/api/users/vera/remove", headers={"X-CSRF-Token": token})
        assert r.status == 200
        assert (await other.get("/", allow_redirects=False)).status == 303  # vera is gone
        actions = [e.action for e in lab_.index.audit_entries()]
        assert "user.added" in actions and "user.removed" in actions
    finally:
        await other.close()


def test_a_network_address_without_tls_is_refused(tmp_path: Path) -> None:
    from gateway import config as cfg
    from gateway.errors import ConfigError

    path = tmp_path / "gateway.toml"
    path.write_text(
        cfg.render(
            data_dir=tmp_path,
            recipients=[],
            sip_listen="127.0.0.1:5060",
            pbx_uri="sip:a@127.0.0.1:5070",
            mode="opt-out",
        ).replace('listen = "127.0.0.1:8080"', 'listen = "0.0.0.0:8443"')
    )
    with pytest.raises(ConfigError, match="not a loopback address.*tls_cert"):
        cfg.load(path)


@pytest.mark.asyncio
async def test_under_tls_cookies_are_secure_host_only_and_hsts_is_sent(tmp_path: Path) -> None:
    import ssl

    from gateway.dashboard.app import serve
    from gateway.telephony.net import free_port

    lab = Lab(tmp_path)
    ca = TestCA(tmp_path / "ca")
    cert, key = ca.issue("dashboard")
    lab.dash.config = DashboardConfig(listen=("127.0.0.1", free_port()), tls_cert=cert, tls_key=key)
    lab.dash.tls, lab.dash.cookie = True, "__Host-gw_session"
    runner, url = await serve(lab.dash)
    ctx = ssl.create_default_context(cafile=str(ca.path))
    try:
        assert url.startswith("https://127.0.0.1:")
        async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as s:  # unsafe: an IP address host
            page = await (await s.get(url + "login", ssl=ctx)).text()
            token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
            r = await s.post(
                url + "login",
                data={"csrf": token, "name": "vera", "password": PASSWORD},
                allow_redirects=False,
                ssl=ctx,
                headers={"Origin": url.rstrip("/")},
            )
            assert r.status == 303
            cookie = next(
                v for k, v in r.headers.items() if k == "Set-Cookie" and v.startswith("__Host-gw_session=")
            )
            assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
            assert "Domain" not in cookie and "Path=/" in cookie
            assert r.headers["Strict-Transport-Security"].startswith("max-age=")
        async with ClientSession() as s:  # plain HTTP to the TLS port gets nothing
            with pytest.raises(Exception):  # noqa: B017 - a protocol error of some kind
                await s.get(url.replace("https", "http") + "login")
    finally:
        await runner.cleanup()
        lab.index.close()
        lab.users.close()


@pytest.mark.asyncio
async def test_a_password_change_ends_the_users_sessions_and_websockets(lab: tuple[Lab, TestClient]) -> None:
    lab_, client = lab
    await login(client, "sam")
    origin = f"http://{client.host}:{client.port}"
    async with client.ws_connect("/ws", origin=origin) as ws:
        assert json.loads((await ws.receive()).data)["t"] == "snapshot"
        lab_.users.set_password("sam", "a brand new password")  # `gateway user passwd sam`, another process
        msg = await ws.receive(timeout=5)  # the ticker closes it within a second or two
        assert ws.closed or msg.type.name in ("CLOSE", "CLOSED", "CLOSING")
    assert (await client.get("/", allow_redirects=False)).status == 303
    assert (await client.get("/api/audit")).status == 401


@pytest.mark.asyncio
async def test_a_removed_and_re_added_account_does_not_revive_old_sessions(
    lab: tuple[Lab, TestClient],
) -> None:
    lab_, client = lab
    await login(client, "sam")
    assert (await client.get("/", allow_redirects=False)).status == 200
    [old] = lab_.dash.sessions.values()
    # `gateway user remove sam` and `user add sam` in another process: the supervisor's
    # in-memory session stays in its book, and must not count for the new account.
    lab_.users.remove("sam")
    lab_.users.add("sam", "supervisor", PASSWORD)
    assert not lab_.dash.session_alive(old, time.time())
    assert (await client.get("/", allow_redirects=False)).status == 303
    # Even with the clock against it (a session stamped after the new account), the new
    # account's generation is not the old one's.
    old.created = time.time() + 1
    assert lab_.users.get("sam").generation != old.generation
    assert not lab_.dash.session_alive(old, time.time())


@pytest.mark.asyncio
async def test_every_session_has_an_absolute_lifetime(lab: tuple[Lab, TestClient]) -> None:
    lab_, client = lab
    lab_.dash.config = DashboardConfig(idle_timeout_s=60, session_max_s=120)
    await login(client, "sam")
    assert (await client.get("/", allow_redirects=False)).status == 200
    [s] = lab_.dash.sessions.values()
    s.created -= 121  # busy all along, but logged in more than session_max_s ago
    assert (await client.get("/", allow_redirects=False)).status == 303


@pytest.mark.asyncio
async def test_an_idle_session_kept_open_by_a_live_view_may_watch_but_not_act(
    lab: tuple[Lab, TestClient],
) -> None:
    lab_, client = lab
    lab_.dash.on_event(started(), 0)
    await login(client, "sam")
    token = await csrf_of(client)
    origin = f"http://{client.host}:{client.port}"
    async with client.ws_connect("/ws", origin=origin) as ws:
        await ws.receive()
        [s] = lab_.dash.sessions.values()
        s.last_seen -= 61  # the wall display has been watching, untouched, past the idle timeout
        assert (await client.get("/", allow_redirects=False)).status == 200
        r = await client.post("/api/calls/c0ffee0000000001/stop", headers={"X-CSRF-Token": token})
        assert r.status == 401, "acting needs a fresh login"
        assert lab_.commands == []
    # With the live view closed, the idle session is over.
    await asyncio.sleep(0.1)
    assert (await client.get("/", allow_redirects=False)).status == 303


@pytest.mark.asyncio
async def test_requests_for_another_host_name_are_refused(lab: tuple[Lab, TestClient]) -> None:
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 reaches the
    dashboard with Host: evil.example and a matching Origin. It must get nothing, not even a
    login attempt (guessing passwords, locking accounts)."""
    lab_, client = lab
    evil = {"Host": f"evil.example:{client.port}", "Origin": f"http://evil.example:{client.port}"}
    page = await client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', await page.text()).group(1)
    for _ in range(4):
        r = await client.post(
            "/login",
            data={"csrf": token, "name": "sam", "password": "guess"},
            headers=evil,
            allow_redirects=False,
        )
        assert r.status == 421
    assert lab_.users.get("sam").failures == 0 and lab_.users.get("sam").locked_until == 0
    assert (await client.get("/login", headers={"Host": "evil.example"})).status == 421
    for ok in (f"127.0.0.1:{client.port}", f"localhost:{client.port}"):
        assert (await client.get("/login", headers={"Host": ok})).status == 200
    lab_.dash.host_names = frozenset({"dash.helpline.example"})
    assert (await client.get("/login", headers={"Host": "dash.helpline.example"})).status == 200
    assert (await client.get("/login", headers={"Host": f"127.0.0.1:{client.port}"})).status == 421


@pytest.mark.asyncio
async def test_a_supervisor_scoped_to_a_tenant_sees_and_acts_on_its_calls_alone(
    lab: tuple[Lab, TestClient],
) -> None:
    """Issue 27: tenant A's supervisor gets A's calls in the snapshot, the WebSocket frames and the
    summary's counts, never B's; a pause of B's call answers as if it did not exist; a scoped
    admin may not manage accounts."""
    lab_, client = lab
    lab_.users.add("north-sup", "supervisor", PASSWORD, "north")
    a, b = "a0000000000000a1", "b0000000000000b1"
    lab_.dash.on_event({**started(a), "tenant": "north"}, 0)
    lab_.dash.on_event({**started(b, display="Bertil"), "tenant": "south"}, 0)
    await login(client, "north-sup")
    token = await csrf_of(client)
    origin = f"http://{client.host}:{client.port}"
    async with client.ws_connect("/ws", origin=origin) as ws:
        snap = json.loads((await ws.receive()).data)
        assert [c["call"] for c in snap["calls"]] == [a] and "Bertil" not in json.dumps(snap)
        assert snap["summary"]["live_calls"] == 1 and snap["summary"]["today"] is None
        assert all(n["live_calls"] is None for n in snap["summary"]["nodes"])
        # B's call changes, then A's: only A's change reaches this client.
        lab_.dash.on_event(
            {"type": "call.consent", "call": b, "ts": 2.0, "consent": "granted", "tenant": "south"}, 0
        )
        lab_.dash.on_event(
            {"type": "call.consent", "call": a, "ts": 2.0, "consent": "granted", "tenant": "north"}, 0
        )
        frame = json.loads((await ws.receive(timeout=2)).data)
        assert frame["t"] == "call" and frame["call"]["call"] == a
    other = await client.post(f"/api/calls/{b}/pause", headers={"X-CSRF-Token": token})
    missing = await client.post("/api/calls/ffffffffffffffff/pause", headers={"X-CSRF-Token": token})
    assert (
        (other.status, await other.json())
        == (missing.status, await missing.json())
        == (
            404,
            {"error": "no such live call"},
        )
    )
    assert (await client.post(f"/api/calls/{a}/pause", headers={"X-CSRF-Token": token})).status == 200
    assert lab_.commands == [("pause", a, "dashboard:north-sup")]
    # An unscoped supervisor still sees both.
    lab_.users.add("all-sup", "supervisor", PASSWORD)
    whole = TestClient(TestServer(build_app(lab_.dash), host="127.0.0.1"))
    await whole.start_server()
    try:
        await login(whole, "all-sup")
        async with whole.ws_connect("/ws", origin=f"http://{whole.host}:{whole.port}") as ws:
            snap = json.loads((await ws.receive()).data)
            assert sorted(c["call"] for c in snap["calls"]) == [a, b]
            assert snap["summary"]["live_calls"] == 2 and snap["summary"]["today"] is not None
    finally:
        await whole.close()
    # A scoped auditor lists and opens their tenant's recordings' metadata alone.
    for rec_id, tenant in (("rn", "north"), ("rs", "south"), ("r0", None)):
        lab_.index.add_recording(
            RecordingRow(
                id=rec_id, object_name=rec_id * 16 + ".age", started_at="2026-01-01T00:00:00Z", tenant=tenant
            )
        )
    lab_.users.add("north-aud", "auditor", PASSWORD, "north")
    aud = TestClient(TestServer(build_app(lab_.dash), host="127.0.0.1"))
    await aud.start_server()
    try:
        await login(aud, "north-aud")
        listed = await (await aud.get("/api/recordings")).json()
        assert [(r["id"], r["tenant"]) for r in listed["recordings"]] == [("rn", "north")]
        assert (await aud.get("/api/recordings/rn")).status == 200
        other, none = await aud.get("/api/recordings/rs"), await aud.get("/api/recordings/nope")
        assert other.status == none.status == 404
        assert (await other.json())["error"].replace("rs", "X") == (await none.json())["error"].replace(
            "nope", "X"
        )
        # The audit view shows their tenants' entries alone: none here (the accounts' entries
        # are the system's), and the chain's verdict.
        log = await (await aud.get("/api/audit")).json()
        assert log["entries"] == [] and log["chain"]["ok"] and log["chain"]["entries"] > 0
    finally:
        await aud.close()
    lab_.users.add("north-adm", "admin", PASSWORD, "north")
    adm = TestClient(TestServer(build_app(lab_.dash), host="127.0.0.1"))
    await adm.start_server()
    try:
        await login(adm, "north-adm")
        r = await adm.get("/api/users")  # accounts are the whole system's
        assert r.status == 403 and "scoped" in (await r.json())["error"]
    finally:
        await aud.close()
    everyone = TestClient(TestServer(build_app(lab_.dash), host="127.0.0.1"))
    await everyone.start_server()
    try:
        await login(everyone, "aud")  # an unscoped auditor: every tenant's, and none
        listed = await (await everyone.get("/api/recordings")).json()
        assert sorted(r["id"] for r in listed["recordings"]) == ["r0", "rn", "rs"]
    finally:
        await everyone.close()


@pytest.mark.asyncio
async def test_a_new_scope_ends_the_users_sessions(lab: tuple[Lab, TestClient]) -> None:
    lab_, client = lab
    await login(client, "sam")
    assert (await client.get("/api/users")).status == 403  # a session that works (403: role)
    lab_.dash.accounts.set_scope("cli:root", "sam", "north")
    r = await client.get("/api/audit")
    assert r.status == 401, "the session from before the scope change is over"
    [entry] = [e for e in lab_.index.audit_entries() if e.action == "user.scope_changed"]
    assert entry.subject == "sam" and entry.details == {"scope": "north"}
