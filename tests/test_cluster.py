"""Node-to-node messages over PostgreSQL (supervisor/cluster.py, channel.py), with a real server:
two nodes' cluster sides exchange calls and a supervisor command, while a database role with no
rights at all listens and notifies on the same channel. It reads nothing and commands nothing
(issue 21.1). The nodes' workers are stood in for by their links' face: a command reaching a
worker is what is checked, and who it is done in the name of."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gateway.accounts.sessions import SessionBook, session_key
from gateway.accounts.sessions_pg import TOUCH_EVERY_S, PgSessions
from gateway.accounts.users_pg import PgUserStore
from gateway.config import DashboardConfig
from gateway.storage.index_pg import PgIndex
from gateway.storage.rows import CallRow, RecordingRow, utcnow
from gateway.supervisor import channel
from gateway.supervisor.channel import Channel, ChannelError
from gateway.supervisor.cluster import CHANNEL, Cluster, vouch_by_sessions
from tests import pg

PASSWORD = "correct horse battery"
DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


class Links:
    """What a cluster asks of its node's worker links: which calls are here, and running a command."""

    def __init__(self, calls: set[str], tenants: dict[str, str] | None = None) -> None:
        self.calls = calls
        self.tenants = tenants or {}
        self.commands: list[tuple[str, str, str]] = []

    def owns(self, call: str) -> bool:
        return call in self.calls

    def tenant_of(self, call: str) -> str:
        return self.tenants.get(call, "")

    async def command(self, op: str, call: str, actor: str) -> str | None:
        self.commands.append((op, call, actor))
        return None


def started(call: str) -> dict[str, Any]:
    return {
        "type": "call.started",
        "call": call,
        "ts": time.time(),
        "seq": 1,
        "worker": "h:1",
        "state": "notice",
        "route": "1177",
        "mode": "opt-out",
        "caller_display": "Anna Andersson",
        "caller_masked": "*********4567",
    }


async def until(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def as_role(url: str, role: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://{role}@")


@pytest.mark.asyncio
async def test_a_role_without_rights_reads_nothing_and_commands_nothing(
    pg_server: pg.PgServer, pg_url: str
) -> None:
    index = PgIndex(pg_url)
    users = PgUserStore(index)
    users.add("sam", "supervisor", PASSWORD)
    users.add("vera", "viewer", PASSWORD)
    users.add("nora", "supervisor", PASSWORD, "north")  # scoped to tenant north; call-b is south's
    book = SessionBook(DashboardConfig(), users, lambda s: False, PgSessions(index))
    sam, vera = book.new(users.get("sam")), book.new(users.get("vera"))
    nora = book.new(users.get("nora"))
    key = secrets.token_bytes(32)
    links_a, links_b = Links(set()), Links({"call-b"}, {"call-b": "south"})
    a = Cluster(
        pg_url, "node-a", links_a, lambda: {"workers": []}, key, vouch_by_sessions(book, TOUCH_EVERY_S)
    )
    b = Cluster(
        pg_url, "node-b", links_b, lambda: {"workers": []}, key, vouch_by_sessions(book, TOUCH_EVERY_S)
    )
    database = pg_url.split("@/", 1)[1].split("?")[0]
    pg_server.psql(database, "CREATE ROLE intruder LOGIN")  # CONNECT comes from PUBLIC, nothing else
    heard: list[str] = []
    stop = asyncio.Event()
    tasks = [asyncio.create_task(a.run(stop)), asyncio.create_task(b.run(stop))]
    intruder = as_role(pg_url, "intruder")
    async with (
        await psycopg.AsyncConnection.connect(intruder, autocommit=True) as spy,
        await psycopg.AsyncConnection.connect(intruder, autocommit=True) as talker,
    ):
        await spy.execute(f"LISTEN {CHANNEL}")

        async def listen() -> None:
            async for n in spy.notifies():
                heard.append(n.payload)

        listener = asyncio.create_task(listen())
        try:
            await until(lambda: a.connected and b.connected)
            b.publish(started("call-b"), 0)
            await until(lambda: a.owner("call-b") == "node-b")
            # The honest command: run on node B, in the name of the session's user.
            assert await a.command("stop", "call-b", sam.actor, session_key(sam.token)) is None
            assert links_b.commands == [("stop", "call-b", "dashboard:sam")]
            # A viewer's session, and a made-up one, command nothing.
            assert "not authorised" in str(
                await a.command("pause", "call-b", "dashboard:sam", session_key(vera.token))
            )
            assert "not authorised" in str(await a.command("pause", "call-b", "dashboard:sam", "0" * 64))
            # A supervisor scoped to another tenant: node B answers as for a call it does not have
            # (its own check, whatever the dashboard that relayed it did).
            assert (
                await a.command("pause", "call-b", nora.actor, session_key(nora.token)) == "no such live call"
            )
            assert len(links_b.commands) == 1

            # What the intruder heard: sealed envelopes, no call, no name, no number.
            await asyncio.sleep(0.5)
            assert heard and all(p.startswith(channel.PREFIX) for p in heard)
            # Searched in the envelopes' bytes: base64 text is random letters, in which a short
            # word like "sam" turns up by chance about once in a hundred runs.
            opened = [base64.b64decode(p[len(channel.PREFIX) :], validate=True) for p in heard]
            for secret in (b"Anna", b"4567", b"call-b", b"sam", b"stop", b"node-b"):
                assert not any(secret in raw for raw in opened), secret

            # What the intruder says: a plain command, a command sealed with another key, and
            # every sealed message it heard, again. Node B runs none of them.
            forged = {"t": "command", "node": "node-a", "to": "node-b", "id": "1", "op": "stop",
                      "call": "call-b", "actor": "dashboard:alice", "session": session_key(sam.token)}  # fmt: skip
            refused_before = b.refused
            await talker.execute("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps(forged)))
            other = Channel(secrets.token_bytes(32)).seal(forged)
            await talker.execute("SELECT pg_notify(%s, %s)", (CHANNEL, other))
            await talker.execute(
                "SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps({"t": "bye", "node": "node-b"}))
            )
            for payload in list(heard):
                await talker.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
            # The three forgeries are refused; a replay of what node B had read already too (a
            # message it never read, sent before it listened, is only late, and a command in it
            # was never run: it would run once, for a session that must still be live).
            await until(lambda: b.refused >= refused_before + 3 + 1)
            await asyncio.sleep(1.0)
            assert links_b.commands == [("stop", "call-b", "dashboard:sam")]
            assert "node-b" in a.peers and a.owner("call-b") == "node-b", "a forged bye hid nothing"
        finally:
            stop.set()
            listener.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    index.close()


def test_the_envelope_opens_once_within_its_window_and_only_with_its_key() -> None:
    sealed = Channel(secrets.token_bytes(32)).seal({"t": "status", "node": "a"}, now=1000.0)
    with pytest.raises(ChannelError, match="does not open"):
        Channel(secrets.token_bytes(32)).open(sealed, now=1000.0)
    key = secrets.token_bytes(32)
    c, r = Channel(key), Channel(key)
    sealed = c.seal({"t": "status", "node": "a"}, now=1000.0)
    with pytest.raises(ChannelError, match="s from now"):
        r.open(sealed, now=1000.0 + channel.REPLAY_WINDOW_S + 1)
    assert r.open(sealed, now=1001.0) == {"t": "status", "node": "a"}
    with pytest.raises(ChannelError, match="seen before"):
        r.open(sealed, now=1002.0)
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(ChannelError):
        r.open(tampered, now=1001.0)
    with pytest.raises(ChannelError, match="not a sealed"):
        r.open('{"t": "status"}', now=1001.0)


def run_sql_file(server: pg.PgServer, database: str, path: Path, **variables: str) -> None:
    """A deploy/ SQL file through psql as the superuser, as its header says to run it."""
    args = [a for k, v in variables.items() for a in ("-v", f"{k}={v}")]
    res = subprocess.run(
        [*server.as_user, pg._bin("psql"), "-h", str(server.socket_dir), "-U", "postgres", "-d", database,
         "-X", "-q", *args, "-f", "-"],
        input=path.read_text(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr


def test_the_least_privilege_setup_in_deploy_works_as_written(pg_server: pg.PgServer) -> None:
    tag = secrets.token_hex(4)
    db, gateway_role, reporting = f"gw_{tag}", f"gateway_{tag}", f"reporting_{tag}"
    run_sql_file(
        pg_server, "postgres", DEPLOY / "postgresql-roles.sql", db=db, gateway_role=gateway_role,
        reporting_role=reporting,
    )  # fmt: skip
    url = f"postgresql://{gateway_role}@/{db}?host={pg_server.socket_dir}"
    index = PgIndex(url)  # the first node: its role creates the schema
    index.add_call(CallRow("call-1", utcnow(), route="1177", caller_enc=b"age-encrypted number"))
    index.put_consent_receipt("call-1", {"digits": [{"key": "1", "at_s": 4.2}]})
    index.add_recording(RecordingRow("rec-1", "0123456789abcdef0123456789abcdef", utcnow(), call_id="call-1"))
    index.append_audit("dashboard:sam", "recording.paused", "rec-1")
    PgUserStore(index).add("sam", "supervisor", PASSWORD)
    index.close()
    run_sql_file(pg_server, db, DEPLOY / "postgresql-reporting.sql", reporting_role=reporting)

    with psycopg.connect(f"postgresql://{reporting}@/{db}?host={pg_server.socket_dir}", autocommit=True) as r:
        assert r.execute("SELECT id, status, route FROM recordings").fetchall() == [
            ("rec-1", "recording", None)
        ]
        assert r.execute("SELECT id, route, kind FROM calls").fetchall() == [("call-1", "1177", "call")]
        for sql in (
            "SELECT caller_enc FROM calls",
            "SELECT * FROM calls",
            "SELECT receipt FROM consent_receipts",
            "SELECT actor FROM audit",
            "SELECT name FROM users",
            "SELECT token_hash FROM dashboard_sessions",
            "SELECT reason FROM holds",
            "SELECT key_enc FROM recordings",
            "INSERT INTO audit (seq, ts, actor, action, subject, details, prev_hash, hash) "
            "VALUES (99, '', '', '', '', '', '', '')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                r.execute(sql)
    # Anyone else may not even connect (and so cannot LISTEN or NOTIFY on the cluster's channel).
    pg_server.psql("postgres", f"CREATE ROLE outsider_{tag} LOGIN")
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(f"postgresql://outsider_{tag}@/{db}?host={pg_server.socket_dir}")
