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
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

from aiohttp import web

from ..accounts.sessions import Session, SessionBook, session_key
from ..app.duties import Duties
from ..app.gateway import Gateway
from ..callevents import EventType, RecordingState
from ..config import Config, parse_ipv4_network
from ..errors import ConfigError
from ..sip.message import parse_config_uri
from ..sip.secure import is_tls_uri
from ..storage.index import IndexUnavailable
from ..telephony import door
from ..telephony.net import TCP, UDP, check_ports_free
from ..telephony.prompts import PromptError, load_for_routes
from ..telephony.tlsfiles import check_pair, internal_pair, make_internal_pair, pbx_authorities
from . import channel, health, leftovers
from .cluster import Cluster, vouch_by_sessions
from .forkserver import ForkedProcess, ForkServer, end_process
from .health import HEARTBEAT_TIMEOUT_S
from .kamailio import FrontDoor, FrontTls
from .links import WorkerLinks
from .metrics import Metrics, app

log = logging.getLogger(__name__)
WORKER_CALLS = 2  # bridged calls per worker with the stock pjsua2 wheel (4 legs)


@dataclass
class WorkerProc:
    index: int
    port: int
    proc: asyncio.subprocess.Process | ForkedProcess | None = None
    started: float = 0.0
    restarts: int = 0  # replacements after the worker died
    rolled: int = 0  # replacements by a rolling restart
    restarting: bool = False
    ready: bool = False
    misses: int = 0  # heartbeats missed in a row
    miss_cpu_ns: int | None = None  # its main thread's CPU time at the last judged miss
    slow: bool = False  # out of the dispatcher: running, but not answering heartbeats
    hung: int = 0  # times it was killed for not answering heartbeats
    retiring: bool = False  # started for a peak, now idle: draining out of the pool
    idle_since: float = 0.0
    lines: list[str] = field(default_factory=list)


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
        self.workers = [WorkerProc(i, cfg.node.worker_base_port + i) for i in range(cfg.node.workers)]
        self.kamailio: asyncio.subprocess.Process | None = None
        self.kamailio_restarts = 0
        self.status_path = gateway.layout.node_status
        self.metrics = Metrics()
        self.links = WorkerLinks()
        self.links.observers.append(self._on_worker_event)
        self.links.observers.append(self.metrics.observe)
        self.links.on_lost.append(self.metrics.link_lost)
        self.failopen = 0
        self.duties = Duties(gateway)  # retention, audit checkpoints, upload: once per node
        self.uploader = self.duties.uploader  # None without an object store
        if self.uploader is not None:
            self.links.observers.append(self._wake_uploader)
        # With a shared PostgreSQL index, the nodes on it are one system (cluster.py).
        self.cluster: Cluster | None = None
        self.cluster_problem = ""  # why this node runs alone although its index is shared
        if cfg.index.postgres:
            self.cluster = self._join_cluster()
        self.grown = 0  # workers started beyond the initial pool
        self.retired = 0
        self.stopping = False
        self.rolling_requested = False
        # [node] fork_workers: workers are forks of one parent that imported what they need.
        self.forks = ForkServer(cfg.path) if cfg.node.fork_workers else None

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

    async def _start_kamailio(self) -> None:
        # Its own process group: Kamailio forks workers, and if its main process is killed they
        # live on holding the SIP socket. The whole group is killed before a restart.
        self.kamailio = await asyncio.create_subprocess_exec(
            *self.front.command(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        self._record_children()
        for _ in range(100):
            if (self.front.rundir / "kamailio_ctl").exists():
                try:
                    await asyncio.to_thread(self.front.rpc, "core.version")
                    return
                except RuntimeError:
                    pass
            await asyncio.sleep(0.05)
        raise RuntimeError("Kamailio did not start (check the rendered kamailio.cfg)")

    async def _start_worker(self, w: WorkerProc) -> None:
        w.ready = False
        w.slow = False
        w.misses = 0
        w.started = time.monotonic()
        if self.forks is not None:  # a fork of the fork server, sharing its imports
            w.proc = await self.forks.fork(w.index)
        else:
            w.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gateway",
                "--config",
                str(self.gw.config.path),
                "worker",
                "--index",
                str(w.index),
                stdout=asyncio.subprocess.PIPE,
                stderr=None,
            )
        proc = w.proc
        self._record_children()
        asyncio.create_task(self._watch_output(proc))
        sock = self.gw.layout.worker_events(w.index)
        asyncio.create_task(self.links.follow(w.index, sock, lambda: proc.returncode is None))

    def _record_children(self) -> None:
        """The processes this run started, for the next run to end if this one is killed
        (leftovers.py)."""
        children: dict[str, int | None] = {"kamailio": self.kamailio.pid if self.kamailio else None}
        if self.forks is not None and self.forks.proc is not None:
            children["forkserver"] = self.forks.proc.pid
        for w in self.workers:
            children[f"worker-{w.index}"] = w.proc.pid if w.proc else None
        try:
            leftovers.record(self.gw.layout.root, children)
        except OSError as e:
            log.warning("cannot keep the list of the node's processes: %s", e)

    async def _watch_output(self, proc: asyncio.subprocess.Process | ForkedProcess) -> None:
        """A worker's stdout, read so that it never blocks on a full pipe (it says nothing the
        node needs: readiness comes on its event link)."""
        assert proc.stdout is not None
        async for _ in proc.stdout:
            pass

    def _on_worker_event(self, event: dict[str, object], link: int) -> None:
        """A worker is ready when it says so on its event link (worker.started, also in the
        snapshot a reconnecting link gets), from the process the node started last for it."""
        if event.get("type") != EventType.WORKER_STARTED:
            return
        w = next((w for w in self.workers if w.index == link), None)
        if w is None or w.ready or w.proc is None or w.proc.pid != event.get("pid"):
            return
        asyncio.get_running_loop().create_task(self._worker_ready(w, w.proc))

    async def _worker_ready(self, w: WorkerProc, proc: asyncio.subprocess.Process | ForkedProcess) -> None:
        if proc is w.proc and not w.ready and await self._add_to_dispatcher(w):
            w.ready = True
            log.info("worker %d ready on port %d", w.index, w.port)

    def status(self) -> dict[str, object]:
        return {
            "name": self.gw.config.node.name,
            "supervisor_pid": os.getpid(),
            "failopen": self.failopen,
            "forkserver": (
                {"pid": self.forks.proc.pid if self.forks.proc else None, "restarts": self.forks.restarts}
                if self.forks is not None
                else None
            ),
            "kamailio": {
                "pid": self.kamailio.pid if self.kamailio else None,
                "restarts": self.kamailio_restarts,
                "listen": f"{self.front.host}:{self.front.port}",
            },
            "workers": [
                {
                    "index": w.index,
                    "port": w.port,
                    "pid": w.proc.pid if w.proc else None,
                    "ready": w.ready,
                    "restarts": w.restarts,
                    "rolled": w.rolled,
                    "hung": w.hung,
                    "slow": w.slow,
                    "calls": self.links.calls_on(w.index),
                }
                for w in self.workers
            ],
            "capacity_calls": WORKER_CALLS * sum(w.ready and not w.slow for w in self.workers),
            "pool": {
                "min": self.gw.config.node.workers,
                "max": self.gw.config.node.pool_max,
                "spare_calls": self.gw.config.node.spare_calls,
                "grown": self.grown,
                "retired": self.retired,
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

    async def _rolling_restart(self) -> None:
        """Replace every worker, one at a time, without dropping a call: out of the dispatcher,
        drain, start anew, back in once it listens. A new fork server first, so that the new
        workers run the code installed now (an upgrade), not what the old one imported."""
        if self.forks is not None:
            await self.forks.stop()
            await self.forks.start()
        for w in self.workers:
            if w.proc is None or w.proc.returncode is not None:
                continue
            log.info("rolling restart: worker %d", w.index)
            if w.ready:
                await self._remove_from_dispatcher(w)
                w.ready = False
            old = w.proc
            w.restarting = True
            old.terminate()
            await old.wait()
            w.rolled += 1
            await self._start_worker(w)
            w.restarting = False
            for _ in range(300):
                if w.ready:
                    break
                await asyncio.sleep(0.1)
            self.write_status()

    def reload_tls(self) -> None:
        """SIGHUP: the front door takes the operator's certificate and key again (and the
        authorities' files) without dropping a call or a connection. A pair that does not load
        is refused with a log line, and the certificate in use stays."""
        if self.front.tls is None:
            log.info("SIGHUP: no [sip] tls_listen, nothing to reload")
            return
        t = self.front.tls
        try:
            check_pair(t.cert, t.key, "[sip] tls_cert/tls_key")
            self.front.write_tls()
            self.front.rpc("tls.reload")
        except (ConfigError, OSError, RuntimeError) as e:
            log.error("SIGHUP: TLS certificate not reloaded, the previous one stays: %s", e)
            return
        log.info("SIGHUP: TLS certificate reloaded from %s", t.cert)

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
            log.error("crash recovery skipped: %s", e)
        dashboard = await self._start_dashboard()  # first: a busy port stops the start cleanly
        if self.front.tls is not None or any(is_tls_uri(r.pbx) for r in self.gw.config.routes):
            make_internal_pair(self.gw.config)  # new at every start; the workers read it
        self.front.write([("127.0.0.1", w.port) for w in self.workers])
        door.write_key(self.gw.layout.root, self.front.door_key)  # the workers read it
        await self._start_kamailio()
        if self.forks is not None:
            await self.forks.start()
        for w in self.workers:
            await self._start_worker(w)
        host, port = self.gw.config.node.metrics_listen
        runner = web.AppRunner(app(self.metrics, self.status))
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        print(
            f"gateway: node listening for SIP on {self.front.host}:{self.front.port} (Kamailio), "
            f"{len(self.workers)} worker{'s' if len(self.workers) != 1 else ''}; metrics on http://{host}:{port}/metrics",
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
                    heartbeat = asyncio.create_task(self._heartbeat())
                if self.rolling_requested:
                    self.rolling_requested = False
                    await self._rolling_restart()
                await self._supervise()
                if ticks % 5 == 0:
                    await self._size_pool()
                ticks += 1
                if ticks % 5 == 0:
                    self.failopen = await asyncio.to_thread(self._read_failopen)
                self.write_status()
                try:
                    await asyncio.wait_for(stop.wait(), 0.2)
                except TimeoutError:
                    pass
        finally:
            await self._drain()
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

    def free_calls(self) -> int:
        """Call capacity ready or starting: free slots on ready workers, plus whole workers that
        are still starting (they will be ready within a second or two)."""
        free = 0
        for w in self.workers:
            if w.retiring or w.slow or w.proc is None or w.proc.returncode is not None:
                continue  # a slow worker takes no new calls until it answers again
            free += (
                WORKER_CALLS - min(WORKER_CALLS, self.links.calls_on(w.index)) if w.ready else WORKER_CALLS
            )
        return free

    async def _size_pool(self) -> None:
        """Keep `spare_calls` of free capacity: grow by one worker (up to max_workers) when it runs
        short; retire the newest grown worker once it has been idle for idle_retire_s and the
        spare capacity is there without it. Indices stay contiguous, so ports stay predictable."""
        node = self.gw.config.node
        now = time.monotonic()
        free = self.free_calls()
        active = [w for w in self.workers if not w.retiring]
        # A worker that runs but misses heartbeats is starved of CPU: another process would
        # only take more of it from the calls in progress, so the pool does not grow then.
        starved = any(w.slow for w in self.workers)
        if free < node.spare_calls and len(self.workers) < node.pool_max and not starved:
            w = WorkerProc(len(self.workers), node.worker_base_port + len(self.workers))
            self.workers.append(w)
            self.grown += 1
            log.info(
                "pool: %d call(s) free, fewer than %d spare: starting worker %d",
                free,
                node.spare_calls,
                w.index,
            )
            await self._start_worker(w)
            return
        last = active[-1] if active else None
        if last is None or len(active) <= node.workers or not last.ready or self.links.calls_on(last.index):
            if last is not None:
                last.idle_since = 0.0
            return
        if last.idle_since == 0.0:
            last.idle_since = now
        if now - last.idle_since >= node.idle_retire_s and free - WORKER_CALLS >= node.spare_calls:
            log.info(
                "pool: worker %d idle for %.0f s with capacity to spare: retiring it",
                last.index,
                now - last.idle_since,
            )
            last.retiring = True
            await self._remove_from_dispatcher(last)
            last.ready = False
            if last.proc is not None and last.proc.returncode is None:
                last.proc.terminate()  # it drains (no calls) and exits

    async def _heartbeat(self) -> None:
        """Ping every ready worker over its control socket. One that misses HEARTBEAT_MISSES in
        a row leaves the dispatcher. If its main thread no longer runs it is hung (stopped,
        deadlocked, stuck in the kernel): it is killed, and the supervise loop replaces it like
        any dead worker; its calls are lost either way and its recordings end truncated and
        decrypt. If its main thread still runs, the worker is only starved (CPU overload): it
        keeps its calls and comes back into the dispatcher when it answers again (see
        health.py)."""
        live = [
            w
            for w in self.workers
            if w.ready and not w.restarting and w.proc is not None and w.proc.returncode is None
        ]
        answers = await asyncio.gather(*(self.links.ping(w.index, HEARTBEAT_TIMEOUT_S) for w in live))
        for w, ok in zip(live, answers, strict=True):
            if ok or w.restarting or not w.ready:
                w.misses = 0
                w.miss_cpu_ns = None
                if ok and w.slow:
                    await self._unbench(w)
                continue
            if w.proc is None or w.proc.returncode is not None:
                continue
            w.misses += 1
            cpu = health.main_thread_cpu_ns(w.proc.pid)
            if w.misses == 1:
                w.miss_cpu_ns = cpu
            ran = None if cpu is None or w.miss_cpu_ns is None else cpu > w.miss_cpu_ns
            verdict = health.judge(w.misses, ran)
            if verdict is not health.Verdict.WAIT:
                w.miss_cpu_ns = cpu
            if verdict is health.Verdict.SLOW:
                if not w.slow:
                    log.warning(
                        "worker %d (pid %d) missed %d heartbeats but its loop still runs "
                        "(overloaded?): no new calls for it until it answers; its %d call(s) go on",
                        w.index,
                        w.proc.pid,
                        w.misses,
                        self.links.calls_on(w.index),
                    )
                    w.slow = True
                    await self._remove_from_dispatcher(w)
                continue
            if verdict is not health.Verdict.HUNG:
                continue
            log.error(
                "worker %d (pid %d) missed %d heartbeats: hung (%s); killing and replacing it",
                w.index,
                w.proc.pid,
                w.misses,
                "ran without answering" if ran else "its loop no longer runs",
            )
            w.hung += 1
            w.misses = 0
            if not w.slow:
                await self._remove_from_dispatcher(w)
            w.slow = False
            w.ready = False
            w.proc.kill()

    async def _add_to_dispatcher(self, w: WorkerProc) -> bool:
        """Kamailio sends the worker calls from now on; False (logged) if it refused."""
        try:
            await asyncio.to_thread(self.front.add_worker, "127.0.0.1", w.port, f"w{w.index}", WORKER_CALLS)
        except RuntimeError as e:
            log.error("worker %d: cannot add it to Kamailio: %s", w.index, e)
            return False
        return True

    async def _remove_from_dispatcher(self, w: WorkerProc) -> None:
        try:
            await asyncio.to_thread(self.front.remove_worker, "127.0.0.1", w.port)
        except RuntimeError as e:
            log.warning("removing worker %d from Kamailio: %s", w.index, e)

    async def _unbench(self, w: WorkerProc) -> None:
        """A slow worker answers again: back into the dispatcher."""
        if await self._add_to_dispatcher(w):
            w.slow = False
            log.info("worker %d answers heartbeats again: back in the dispatcher", w.index)

    def _read_failopen(self) -> int:
        try:
            out = self.front.rpc("htable.get", "stats", "failopen")
        except RuntimeError:
            return self.failopen  # nothing counted yet, or Kamailio restarting
        for token in out.replace(",", " ").split():
            if token.isdigit():
                return int(token)
        return self.failopen

    async def _supervise(self) -> None:
        if self.kamailio is not None and self.kamailio.returncode is not None:
            log.error("Kamailio exited (%s); restarting it", self.kamailio.returncode)
            self._kill_kamailio_group()
            self.kamailio_restarts += 1
            self.front.write([("127.0.0.1", w.port) for w in self.workers])
            await self._start_kamailio()
            for w in self.workers:
                if w.ready and not w.slow:
                    await self._add_to_dispatcher(w)
        for w in list(self.workers):
            if w.retiring and w.proc is not None and w.proc.returncode is not None:
                self.workers.remove(w)
                self.retired += 1
                log.info("pool: worker %d retired; %d worker(s) now", w.index, len(self.workers))
                continue
            if w.proc is not None and w.proc.returncode is not None and not w.restarting:
                log.error("worker %d exited (%s); replacing it", w.index, w.proc.returncode)
                if w.ready and not w.slow:
                    await self._remove_from_dispatcher(w)
                w.restarts += 1
                await self._start_worker(w)

    async def _drain(self) -> None:
        for w in self.workers:
            if w.ready and not w.slow:
                await self._remove_from_dispatcher(w)
            w.ready = False
        for w in self.workers:
            if w.proc is not None and w.proc.returncode is None:
                w.proc.terminate()  # the worker drains its own calls, up to [node] drain_s
        for w in self.workers:
            if w.proc is not None:
                try:
                    await asyncio.wait_for(w.proc.wait(), self.gw.config.node.drain_s + 15)
                except TimeoutError:
                    w.proc.kill()
        if self.forks is not None:
            await self.forks.stop()
        if self.kamailio is not None:
            await end_process(self.kamailio, 10)
        self._kill_kamailio_group()
        self.write_status()

    def _kill_kamailio_group(self) -> None:
        """Kill whatever is left of Kamailio's process group (its forked children)."""
        if self.kamailio is None:
            return
        try:
            os.killpg(self.kamailio.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
