"""The supervisor: Kamailio in front, a pool of workers behind, kept in step.

One asyncio program owns every child: it renders and starts Kamailio, starts the workers and
adds each to Kamailio's dispatcher once it listens, replaces a worker that dies (removing it
from the dispatcher first), restarts Kamailio if it dies, and on SIGTERM drains: workers leave
the dispatcher (new calls fail over or fail open), current calls finish, then everything stops.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import socket
import time

from aiohttp import web

from ..accounts.sessions import Session, SessionBook, session_key
from ..app.duties import Duties
from ..app.gateway import Gateway
from ..app.holds import Holds
from ..app.subject import BrowserSearch
from ..callevents import RecordingState
from ..config import Config, parse_ipv4_network
from ..errors import ConfigError
from ..sip.message import parse_config_uri
from ..sip.secure import is_tls_uri
from ..storage.index import IndexUnavailable
from ..telephony import door
from ..telephony.net import TCP, UDP, check_ports_free
from ..telephony.prompts import PromptError, load_for_routes
from ..telephony.tlsfiles import internal_pair, make_internal_pair, pbx_authorities
from . import channel, leftovers
from .cluster import Cluster, vouch_by_sessions
from .forkserver import ForkServer
from .frontproc import KamailioProcess
from .kamailio import FrontDoor, FrontTls
from .links import WorkerLinks
from .metrics import Metrics, app
from .pool import WorkerPool

log = logging.getLogger(__name__)


def pbx_addresses(uri: str) -> list[str]:
    """The PBX's IPv4 addresses for the allowlist: the URI's host if it is one, else what its
    name resolves to now. A name that does not resolve stops the start with a clear error."""
    host = parse_config_uri(uri).host
    try:
        return [parse_ipv4_network(str(ipaddress.IPv4Address(host)), "[pbx] uri host")]
    except ipaddress.AddressValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_DGRAM)
    except OSError as e:
        raise ConfigError(
            f"[pbx] uri host {host!r} does not resolve ({e.strerror or e}): the node "
            "allowlists the PBX by address"
        ) from None
    return sorted({parse_ipv4_network(str(info[4][0]), "[pbx] uri host") for info in infos})


def front_tls(cfg: Config) -> FrontTls | None:
    """The front door's TLS, or None when [sip] tls_listen is empty."""
    if cfg.sip.tls is None:
        return None
    host, port, cert, key = cfg.sip.tls
    pbx_tls = any(is_tls_uri(r.pbx) for r in cfg.routes)
    return FrontTls(
        host,
        port,
        cert,
        key,
        cfg.sip.tls_ca if cfg.sip.tls_verify_clients else None,
        internal_pair(cfg)[0],
        pbx_authorities(cfg) if pbx_tls else None,
    )


class Node:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        cfg = gateway.config
        host, port = cfg.sip.listen
        try:
            self.front = FrontDoor(
                host,
                port,
                gateway.layout.kamailio,
                cfg.pbx.uri,
                cfg.node.fail_closed,
                [*cfg.node.trunks, *pbx_addresses(cfg.pbx.uri), "127.0.0.1"],
                tuple(cfg.node.peers),
                max_message_bytes=cfg.sip.max_message_bytes,
                max_sdp_bytes=cfg.sip.max_sdp_bytes,
                max_unconfirmed=cfg.node.max_unconfirmed_invites,
                max_media=cfg.sip.max_media_streams,
                tls=front_tls(cfg),
                caller_srtp=cfg.sip.srtp,
                siprec_clients=list(cfg.siprec.clients) if cfg.siprec.enabled else None,
                siprec_listen=cfg.siprec.listen if cfg.siprec.enabled else None,
                door_key=door.new_key(),
                worker_ports=(cfg.node.worker_base_port, cfg.node.pool_max),
            )
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.status_path = gateway.layout.node_status
        self.metrics = Metrics()
        self.links = WorkerLinks()
        self.kamailio = KamailioProcess(self.front, self._record_children)
        # [node] fork_workers: workers are forks of one parent that imported what they need.
        self.forks = ForkServer(cfg.path) if cfg.node.fork_workers else None
        self.duties = Duties(gateway)  # retention, audit checkpoints, upload: once per node
        self.pool = WorkerPool(
            gateway, self.kamailio, self.links, self.forks, self._record_children, self.duties.writer_died
        )
        self.links.observers.append(self.metrics.observe)
        self.links.on_lost.append(self.metrics.link_lost)
        self.uploader = self.duties.uploader  # None without an object store
        if self.uploader is not None:
            self.links.observers.append(self._wake_uploader)
        # With a shared PostgreSQL index, the nodes on it are one system (cluster.py).
        self.cluster: Cluster | None = None
        self.cluster_problem = ""  # why this node runs alone although its index is shared
        if cfg.index.postgres:
            self.cluster = self._join_cluster()
        self.stopping = False
        self.rolling_requested = False

    def _join_cluster(self) -> Cluster | None:
        """This node's side of the system of nodes on its PostgreSQL index, or None (logged, and
        in the status) when it has no usable cluster key: calls go on, on this node alone."""
        cfg = self.gw.config
        try:
            key = channel.load_key(cfg.paths.cluster_key)
        except ValueError as e:
            self.cluster_problem = (
                f"{e}: this node works alone; copy the first node's cluster.key into "
                f"{cfg.paths.secrets_dir} (0600), or run `gateway init --cluster-key FILE`"
            )
            log.error("cluster disabled: %s", self.cluster_problem)
            return None
        shared = self.gw.shared_index()
        if shared is None:  # a PostgreSQL index always is; but no sessions, no commands
            raise ConfigError("a cluster needs the shared PostgreSQL index")
        from ..accounts.sessions_pg import TOUCH_EVERY_S, PgSessions

        book = SessionBook(cfg.dashboard, self.gw.user_store(), lambda s: False, PgSessions(shared))
        vouch = vouch_by_sessions(book, TOUCH_EVERY_S)
        cluster = Cluster(cfg.index.url, cfg.node.name, self.links, self.status, key, vouch)
        self.links.observers.append(cluster.publish)
        return cluster

    def _cluster_status(self) -> dict[str, object] | None:
        """None on SQLite; with a shared index, whether this node takes part and how."""
        if self.cluster is not None:
            c = self.cluster
            return {"connected": c.connected, "peers": sorted(c.peers), "refused": c.refused}
        if self.cluster_problem:
            return {"connected": False, "peers": [], "problem": self.cluster_problem}
        return None

    async def _command(self, op: str, call: str, session: Session) -> str | None:
        """A dashboard's supervisor action: on this node's worker, or through the cluster."""
        if self.cluster is None:
            return await self.links.command(op, call, session.actor)
        return await self.cluster.command(op, call, session.actor, session_key(session.token))

    def _record_children(self) -> None:
        """The processes this run started, for the next run to end if this one is killed
        (leftovers.py)."""
        children: dict[str, int | None] = {"kamailio": self.kamailio.pid}
        if self.forks is not None and self.forks.proc is not None:
            children["forkserver"] = self.forks.proc.pid
        for w in self.pool.workers:
            children[f"worker-{w.index}"] = w.proc.pid if w.proc else None
        try:
            leftovers.record(self.gw.layout.root, children)
        except OSError as e:
            log.warning("cannot keep the list of the node's processes: %s", e)

    def status(self) -> dict[str, object]:
        return {
            "name": self.gw.config.node.name,
            "supervisor_pid": os.getpid(),
            "failopen": self.kamailio.failopen,
            "forkserver": (
                {"pid": self.forks.proc.pid if self.forks.proc else None, "restarts": self.forks.restarts}
                if self.forks is not None
                else None
            ),
            "kamailio": {
                "pid": self.kamailio.pid,
                "restarts": self.kamailio.restarts,
                "listen": f"{self.front.host}:{self.front.port}",
            },
            "workers": self.pool.status(),
            "capacity_calls": self.pool.capacity_calls(),
            "pool": {
                "min": self.gw.config.node.workers,
                "max": self.gw.config.node.pool_max,
                "spare_calls": self.gw.config.node.spare_calls,
                "grown": self.pool.grown,
                "retired": self.pool.retired,
            },
            "live_calls": len(self.metrics.call_state),
            "upload": self.upload_status(),
            "cluster": self._cluster_status(),
            "ts": time.time(),
        }

    def _wake_uploader(self, event: dict[str, object], link: int) -> None:
        """A recording is finished (its row already says so): upload it now, not at the next
        round."""
        if self.uploader is not None and event.get("recording") in (
            RecordingState.SAVED,
            RecordingState.INCOMPLETE,
        ):
            self.uploader.wake()

    def upload_status(self) -> dict[str, object] | None:
        if self.uploader is None:
            return None
        st = self.uploader.stats
        return {
            "pending": st.pending,
            "pending_bytes": st.pending_bytes,
            "uploaded": st.uploaded,
            "failing": st.failures > 0,
            "error": st.last_error,
            **st.latency(),
        }

    def write_status(self) -> None:
        status = self.status()
        tmp = self.status_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(status))
        tmp.replace(self.status_path)

    def request_rolling_restart(self) -> None:
        self.rolling_requested = True

    def preflight(self) -> None:
        """Refuse to start, with the setting to change, when a port the node needs is taken or
        a route's prompts are missing: otherwise Kamailio or a worker would fail to start and
        the pool would restart it forever."""
        try:
            load_for_routes(self.gw.config)
        except PromptError as e:
            raise ConfigError(f"prompts: {e}") from None
        node = self.gw.config.node
        host, port = self.gw.config.sip.listen
        wanted = [
            (host, port, UDP, "[sip] listen"),
            (host, port, TCP, "[sip] listen"),
            (*node.metrics_listen, TCP, "[node] metrics_listen"),
        ]
        if self.gw.config.sip.tls is not None:
            wanted.append((*self.gw.config.sip.tls[:2], TCP, "[sip] tls_listen"))
        for i in range(node.pool_max):
            wanted += [
                ("127.0.0.1", node.worker_base_port + i, kind, f"[node] worker_base_port (worker {i})")
                for kind in (UDP, TCP)
            ]
        check_ports_free(wanted)

    async def run(self, stop: asyncio.Event) -> None:
        # A run of this node that was killed outright left its children running, on our ports.
        ended = leftovers.reap(self.gw.layout.root)
        if ended:
            log.warning("the node's last run was killed; ended what it left running: %s", ", ".join(ended))
        self.preflight()
        try:
            self.gw.recording_service(None).recover()
        except IndexUnavailable as e:  # the shared index is away: calls go on, recovery waits
            log.error("crash recovery waits for the index: %s", e)
            self.duties.writer_died()  # retried by the recovery duty until the index is back
        dashboard = await self._start_dashboard()  # first: a busy port stops the start cleanly
        if self.front.tls is not None or any(is_tls_uri(r.pbx) for r in self.gw.config.routes):
            make_internal_pair(self.gw.config)  # new at every start; the workers read it
        self.front.write([("127.0.0.1", port) for port in self.pool.ports])
        door.write_key(self.gw.layout.root, self.front.door_key)  # the workers read it
        await self.kamailio.start()
        if self.forks is not None:
            await self.forks.start()
        for w in self.pool.workers:
            await self.pool.start_worker(w)
        host, port = self.gw.config.node.metrics_listen
        runner = web.AppRunner(app(self.metrics, self.status))
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        print(
            f"gateway: node listening for SIP on {self.front.host}:{self.front.port} (Kamailio), "
            f"{len(self.pool.workers)} worker{'s' if len(self.pool.workers) != 1 else ''}; metrics on http://{host}:{port}/metrics",
            flush=True,
        )
        if dashboard is not None:
            print(f"gateway: dashboard on {dashboard[1]}", flush=True)
        ticks = 0
        heartbeat: asyncio.Task[None] | None = None
        self.duties.start()
        cluster_stop = asyncio.Event()
        cluster = None if self.cluster is None else asyncio.create_task(self.cluster.run(cluster_stop))
        try:
            while not stop.is_set():
                if ticks % 5 == 0 and (heartbeat is None or heartbeat.done()):
                    heartbeat = asyncio.create_task(self.pool.heartbeat())
                if self.rolling_requested:
                    self.rolling_requested = False
                    await self.pool.rolling_restart(self.write_status)
                if self.kamailio.exited():
                    await self.kamailio.restart(self.pool.ports)
                    await self.pool.redispatch()
                await self.pool.supervise()
                if ticks % 5 == 0:
                    await self.pool.size()
                ticks += 1
                if ticks % 5 == 0:
                    await asyncio.to_thread(self.kamailio.read_failopen)
                self.write_status()
                try:
                    await asyncio.wait_for(stop.wait(), 0.2)
                except TimeoutError:
                    pass
        finally:
            await self.pool.drain()
            await self.kamailio.stop()
            self.write_status()
            if cluster is not None:  # after the drain: the other nodes see these calls end
                cluster_stop.set()
                try:
                    await asyncio.wait_for(cluster, 5)
                except TimeoutError:
                    cluster.cancel()
            await runner.cleanup()
            if dashboard is not None:
                await dashboard[0].cleanup()
            await self.duties.stop()  # uploads and anchors what the drain finished

    async def _start_dashboard(self) -> tuple[web.AppRunner, str] | None:
        """The operators' dashboard ([dashboard]), fed by the same worker links as the metrics."""
        cfg = self.gw.config.dashboard
        if not cfg.enabled:
            return None
        from ..dashboard.app import Dashboard, serve

        users = self.gw.user_store()
        shared = self.gw.shared_index()  # accounts and sessions shared by every node's dashboard
        sessions = None
        if shared is not None:
            from ..accounts.sessions_pg import PgSessions

            sessions = PgSessions(shared)
        dash = Dashboard(
            cfg,
            users,
            self.gw.index,
            spool_dir=self.gw.config.paths.spool_dir,
            node_status=self.status,
            command=self._command,
            storage_errors=lambda: self.metrics.storage_errors,
            cluster_status=None if self.cluster is None else self.cluster.status_of_all,
            node_name=self.gw.config.node.name,
            sessions=sessions,
            review=self.gw.review(),
            fetches_per_minute=self.gw.config.review.fetches_per_minute,
            holds=Holds(self.gw),
            subjects=BrowserSearch(self.gw.index, self.gw.store, self.gw.config.numbering),
        )
        self.links.observers.append(dash.on_event)
        self.links.on_lost.append(dash.on_link_lost)
        if self.cluster is not None:  # every other node's calls too
            self.cluster.observers.append(dash.on_event)
            self.cluster.on_lost.append(dash.on_link_lost)
        try:
            runner, url = await serve(dash)
        except (OSError, ValueError) as e:
            raise ConfigError(
                f"[dashboard] cannot serve on {cfg.listen[0]}:{cfg.listen[1]}: "
                f"{getattr(e, 'strerror', None) or e}"
            ) from None
        try:
            no_users = not users.list()
        except IndexUnavailable as e:  # the shared index is away: the dashboard answers 503 until it is back
            log.error(
                "dashboard accounts out of reach for now (%s): logins get 503 until the index is back", e
            )
            no_users = False
        if no_users:
            log.warning("the dashboard has no users yet: add one with `gateway user add NAME --role admin`")
        return runner, url
