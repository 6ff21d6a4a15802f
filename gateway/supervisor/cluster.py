"""The nodes that share one PostgreSQL index, as one system: every node's live calls and
counters on any node's dashboard, and supervisor actions that reach the node owning the call.

Carried by PostgreSQL itself (LISTEN/NOTIFY on one channel), because every node already holds
a connection to it and trusts it with the index: no second network service between nodes, no
second set of credentials, no port to open. Each node publishes its workers' call events and,
every HEARTBEAT_S, its status; a node that starts (or reconnects) says hello and every other
node answers with a snapshot of its live calls. A command for another node's call goes out as
a notification addressed to that node, which runs it on its worker (the worker audits it, once,
with the user's name) and answers. A node silent for LOST_AFTER_S is shown as lost, its calls
as ended.

Notifications are transient: PostgreSQL keeps them in its notification queue until every
listener has read them, never in a table. The `nodes` table holds each node's last status
(no call data) for `gateway status`. Live-call rows carry what the local dashboard shows
(masked number, display name): they travel to the other nodes' dashboards, and nowhere else.

Database access alone commands nothing and reads nothing: PostgreSQL lets any role that can
connect listen and notify on any channel, so every message is sealed with the cluster key the
nodes hold outside the database (channel.py); what does not open with it is dropped. A command
names the dashboard session it comes from (by the SHA-256 the shared session table keys it by);
the node that runs it looks the session up itself and acts, and audits, only in the name of a
live session whose user may control recordings (`vouch`), never in a name the message gives.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..accounts.sessions import SessionBook
from ..callevents import CallState, EventType
from ..dashboard import live as lv
from ..storage.index import IndexUnavailable
from .channel import Channel, ChannelError
from .links import COMMAND_TIMEOUT_S, WorkerLinks

log = logging.getLogger(__name__)
CHANNEL = "gateway_cluster"
HEARTBEAT_S = 2.0
LOST_AFTER_S = 10.0
MAX_PAYLOAD = 7900  # PostgreSQL refuses a notification payload of 8000 bytes or more
REFUSED_LOG_EVERY_S = 60.0  # how often dropped notifications are reported, at most
MAX_QUEUE = 5000  # events waiting while the database is away; the oldest go first

Observer = Callable[[dict[str, Any], int], None]
LinkLost = Callable[[int], None]
# The actor a dashboard session (by the SHA-256 of its token) stands for, if it is live and
# may control recordings; None otherwise.
# A session (by key) -> (its user's actor name, the tenants they see: None for all), or None.
Vouch = Callable[[str], Awaitable["tuple[str, frozenset[str] | None] | None"]]


def vouch_by_sessions(book: SessionBook, slack_s: float) -> Vouch:
    """A Vouch that looks the session up in `book` (the shared session table): its user's
    actor name if it is live, active (within `slack_s` of the idle timeout: the table records a
    request every few seconds, not each) and may control recordings."""

    async def vouch(session: str) -> tuple[str, frozenset[str] | None] | None:
        def look() -> tuple[str, frozenset[str] | None] | None:
            s = book.vouch(session, "control", slack_s=slack_s)
            user = book.users.get(s.user) if s is not None else None
            return None if s is None or user is None else (s.actor, user.tenants)

        try:
            return await asyncio.to_thread(look)
        except IndexUnavailable:
            return None

    return vouch


class Cluster:
    """This node's side of the cluster. `run` keeps it connected; `publish` (a WorkerLinks
    observer) sends local events; remote events reach `observers` under a link number of their
    own (negative: -1 for the first peer seen, -2 for the next...)."""

    def __init__(
        self,
        url: str,
        name: str,
        links: WorkerLinks,
        status: Callable[[], dict[str, Any]],
        key: bytes,
        vouch: Vouch,
    ) -> None:
        self.url = url
        self.name = name
        self.links = links
        self.status = status
        self.channel = Channel(key)
        self.vouch = vouch
        self.refused = 0  # notifications dropped: not sealed with our key, altered or replayed
        self._refused_logged = 0.0
        self.observers: list[Observer] = []
        self.on_lost: list[LinkLost] = []
        self.peers: dict[str, dict[str, Any]] = {}  # name -> {"status", "seen", "link"}
        self._peer_links: dict[str, int] = {}
        self._remote_calls: dict[str, str] = {}  # call -> node
        self._local = lv.LiveView()  # this node's calls, for snapshots to nodes that say hello
        self._queue: asyncio.Queue[str] = asyncio.Queue(MAX_QUEUE)
        self._pending: dict[str, asyncio.Future[str | None]] = {}
        self.connected = False

    # -- outgoing ---------------------------------------------------------------------------

    def publish(self, event: dict[str, Any], link: int) -> None:
        """A local worker event: into the local snapshot model, and out to the other nodes."""
        if event.get("type") == EventType.CONTROL_RESULT:
            return
        self._local.observe(event, link)
        self._local.expire()
        if isinstance(event.get("call"), str):
            self._send({"t": "event", "node": self.name, "event": event})

    def _send(self, message: dict[str, Any]) -> None:
        payload = self.channel.seal(message)
        if len(payload.encode()) > MAX_PAYLOAD:
            log.warning("cluster message of %d bytes not sent (over PostgreSQL's limit)", len(payload))
            return
        if self._queue.full():
            self._queue.get_nowait()  # the database is away: the newest state matters most
        self._queue.put_nowait(payload)

    def _snapshot(self) -> None:
        for row in self._local.calls.values():
            if row["state"] == CallState.ENDED:
                continue
            event = {k: v for k, v in row.items() if k not in ("link", "ended", "reason", "by", "node")}
            event.update(snapshot=True, duration_s=row["recorded_s"])
            self._send({"t": "event", "node": self.name, "event": event})

    def _heartbeat_message(self) -> dict[str, Any]:
        return {"t": "status", "node": self.name, "status": self.status()}

    # -- incoming ---------------------------------------------------------------------------

    def _link_of(self, node: str) -> int:
        if node not in self._peer_links:
            self._peer_links[node] = -1 - len(self._peer_links)
        return self._peer_links[node]

    def _receive(self, payload: str) -> None:
        try:
            m = self.channel.open(payload)
        except ChannelError as e:
            self.refused += 1
            now = time.monotonic()
            if now - self._refused_logged >= REFUSED_LOG_EVERY_S:
                self._refused_logged = now
                log.warning(
                    "cluster: notification dropped (%s); %d so far: a node with another cluster key, "
                    "or someone else on the database",
                    e,
                    self.refused,
                )
            return
        node, kind = m.get("node"), m.get("t")
        if not isinstance(node, str) or not node:
            return
        if kind == "command":
            if m.get("to") == self.name:
                asyncio.ensure_future(self._run_command(m))
            return
        if kind == "result":
            fut = self._pending.pop(str(m.get("id")), None)
            if m.get("to") == self.name and fut is not None and not fut.done():
                error = m.get("error")
                fut.set_result(str(error) if error is not None else None)
            return
        if node == self.name:
            return  # our own notification, echoed back
        if kind == "hello":
            self._send(self._heartbeat_message())
            self._snapshot()
        self._seen(node, m.get("status") if kind in ("status", "hello") else None)
        if kind == "event" and isinstance(m.get("event"), dict):
            event = dict(m["event"], node=node)
            call = event.get("call")
            if isinstance(call, str):
                if event.get("type") == EventType.CALL_STATE and event.get("state") == CallState.ENDED:
                    self._remote_calls.pop(call, None)
                else:
                    self._remote_calls[call] = node
            self._notify(event, self._link_of(node))
        elif kind == "bye":
            self._lose(node)

    def _seen(self, node: str, status: Any) -> None:
        peer = self.peers.setdefault(node, {"status": {}, "seen": 0.0, "link": self._link_of(node)})
        peer["seen"] = time.time()
        if isinstance(status, dict):
            peer["status"] = status

    def _notify(self, event: dict[str, Any], link: int) -> None:
        for observe in self.observers:
            try:
                observe(event, link)
            except Exception:
                log.exception("a cluster event observer failed")

    def _lose(self, node: str) -> None:
        peer = self.peers.pop(node, None)
        if peer is None:
            return
        for call in [c for c, n in self._remote_calls.items() if n == node]:
            del self._remote_calls[call]
        for lost in self.on_lost:
            try:
                lost(peer["link"])
            except Exception:
                log.exception("a cluster link-lost observer failed")

    def expire_peers(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        for node in [n for n, p in self.peers.items() if now - p["seen"] > LOST_AFTER_S]:
            log.warning("node %s silent for %.0f s: its calls are shown as ended", node, LOST_AFTER_S)
            self._lose(node)

    # -- commands ---------------------------------------------------------------------------

    def owner(self, call: str) -> str | None:
        """The node a live call is on (this node's name for its own calls), or None."""
        if self.links.owns(call):
            return self.name
        return self._remote_calls.get(call)

    async def command(self, op: str, call: str, actor: str, session: str) -> str | None:
        """A supervisor action on any node's live call, by `actor` in the dashboard session
        whose token hashes to `session`; None on success, else why not."""
        node = self.owner(call)
        if node is None:
            return "no such live call"
        if node == self.name:
            return await self.links.command(op, call, actor)
        req = secrets.token_hex(8)
        fut: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._pending[req] = fut
        self._send(
            {
                "t": "command",
                "node": self.name,
                "to": node,
                "id": req,
                "op": op,
                "call": call,
                "session": session,
            }
        )
        try:
            return await asyncio.wait_for(fut, COMMAND_TIMEOUT_S + 2)
        except TimeoutError:
            return f"node {node} did not answer"
        finally:
            self._pending.pop(req, None)

    async def _run_command(self, m: dict[str, Any]) -> None:
        op, call, session = m.get("op"), m.get("call"), m.get("session")
        if not isinstance(op, str) or not isinstance(call, str) or not isinstance(session, str):
            error: str | None = "malformed command"
        elif (vouched := await self.vouch(session)) is None:
            # The name acted in is the session's, looked up here: a node with the key but
            # without a live session of a user who may control recordings commands nothing.
            log.warning(
                "cluster: %s of call %s from node %s refused: no live session may do it", op, call, m["node"]
            )
            error = "not authorised: no live dashboard session that may control recordings"
        elif vouched[1] is not None and self.links.tenant_of(call) not in vouched[1]:
            # Another tenant's call, for a user scoped to tenants: as if there were none here.
            error = "no such live call"
        else:
            error = await self.links.command(op, call, vouched[0])
        self._send({"t": "result", "node": self.name, "to": m.get("node"), "id": m.get("id"), "error": error})

    # -- the connection -----------------------------------------------------------------------

    def status_of_all(self) -> list[dict[str, Any]]:
        """This node's status and every live peer's, each with its name."""
        out = [{"name": self.name, "self": True, **self.status()}]
        for name, peer in sorted(self.peers.items()):
            out.append({"name": name, "self": False, **peer["status"]})
        return out

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected (reconnecting with a back-off while the database is away) until `stop`."""
        delay = 1.0
        while not stop.is_set():
            try:
                await self._session(stop)
                delay = 1.0
            except Exception as e:  # psycopg.OperationalError and friends: the database is away
                if self.connected:
                    log.error("cluster connection to PostgreSQL lost: %s", e)
                self.connected = False
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, 30.0)

    async def _session(self, stop: asyncio.Event) -> None:
        import psycopg

        async with (
            await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=5) as listen,
            await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=5) as send,
        ):
            await listen.execute(f"LISTEN {CHANNEL}")
            self.connected = True
            log.info("cluster: node %s joined (PostgreSQL LISTEN %s)", self.name, CHANNEL)
            self._send({"t": "hello", "node": self.name, "status": self.status()})
            tasks = [
                asyncio.create_task(self._listen(listen)),
                asyncio.create_task(self._sender(send)),
                asyncio.create_task(self._beat(send)),
                asyncio.create_task(stop.wait()),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    if t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
            finally:
                for t in tasks:
                    t.cancel()
            if stop.is_set():
                await send.execute(
                    "SELECT pg_notify(%s, %s)", (CHANNEL, self.channel.seal({"t": "bye", "node": self.name}))
                )

    async def _listen(self, conn: Any) -> None:
        async for n in conn.notifies():
            self._receive(n.payload)

    async def _sender(self, conn: Any) -> None:
        while True:
            payload = await self._queue.get()
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

    async def _beat(self, conn: Any) -> None:
        while True:
            status = self.status()
            self._send({"t": "status", "node": self.name, "status": status})
            await conn.execute(
                "INSERT INTO nodes (name, status, heartbeat) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET status=EXCLUDED.status, heartbeat=EXCLUDED.heartbeat",
                (self.name, json.dumps(status), time.time()),
            )
            self.expire_peers()
            await asyncio.sleep(HEARTBEAT_S)
