"""`gateway run`: a worker listening on [sip] listen (the supervisor and pool come later)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from ..app.gateway import Gateway
from ..app.runtime import harden_process, serve_until_signalled
from ..errors import ConfigError, NotRunningError
from ..storage import datalock
from . import open_gateway

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run the gateway: a node (Kamailio + workers) or one worker, per [node]",
        description="Run the gateway in the foreground until SIGTERM or SIGINT (then drain and exit 0). "
        "With [node] kamailio = true: Kamailio on [sip] listen in front of a pool of workers, the "
        "dashboard and the metrics; otherwise one worker on [sip] listen. Logs JSON lines on stderr.",
    )
    p.set_defaults(func=run)
    # Internal: started by `gateway run`, not listed in the help (no help= for them).
    w = sub.add_parser("worker", description="one worker of a node's pool (started by `gateway run`)")
    w.add_argument("--index", type=int, required=True)
    w.set_defaults(func=run_worker)
    fs = sub.add_parser("forkserver", description="the parent of a node's workers (started by `gateway run`)")
    fs.add_argument("--fd", type=int, required=True)
    fs.set_defaults(func=run_forkserver)
    wp = sub.add_parser("workers", help="manage the node's workers")
    wsub = wp.add_subparsers(dest="action", required=True, metavar="ACTION")
    rr = wsub.add_parser("restart", help="rolling restart: replace each worker in turn, dropping no call")
    rr.set_defaults(func=workers_restart)
    s = sub.add_parser("status", help="the node's workers and capacity")
    s.add_argument("--json", action="store_true", help="one JSON object instead of text")
    s.set_defaults(func=status)


_data_lock: int | None = None  # held for the life of `gateway run`


def _lock_data_dir(gw: Gateway) -> None:
    global _data_lock
    try:
        _data_lock = datalock.acquire(gw.config.paths.data_dir)
    except datalock.DataDirBusy as e:
        raise ConfigError(str(e)) from None


def run(args: argparse.Namespace) -> int:
    harden_process()
    gw = open_gateway(args, service=True)
    _lock_data_dir(gw)  # before anything is written to run/
    gw.publish_signing_key()  # so that the other nodes on a shared index can check what it signs
    if not gw.config.recording.recipients:
        log.warning(
            "[recording] recipients is empty: calls are answered and put through, but nothing is "
            "recorded; add an operator's age recipient (age-keygen -y KEYFILE prints it)"
        )
    if gw.config.node.kamailio:
        from ..supervisor.node import Node

        node = Node(gw)

        async def main(stop: asyncio.Event) -> None:
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGUSR1, node.request_rolling_restart)
            loop.add_signal_handler(
                signal.SIGHUP, lambda: loop.run_in_executor(None, node.kamailio.reload_tls)
            )
            await node.run(stop)

        serve_until_signalled(main)
        return 0
    return _run_alone(gw)


def run_worker(args: argparse.Namespace) -> int:
    from ..telephony import process  # pjsua2: only the commands that run SIP import it

    return process.pool_worker(str(args.config), args.index)


def run_forkserver(args: argparse.Namespace) -> int:
    from ..supervisor.forkserver import serve

    # Ctrl-C in a terminal reaches the node's whole process group: the supervisor ends the fork
    # server (and drains its workers, which ignore it too), so it does not act on it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    harden_process()
    return serve(args.fd, str(args.config))


def status(args: argparse.Namespace) -> int:
    import json

    gw = open_gateway(args, lazy_index=True)  # an index outage is what status must show
    if not gw.config.node.kamailio:
        pid = datalock.holder(gw.config.paths.data_dir)
        if pid is None:
            raise NotRunningError(f"no gateway is running on {gw.config.paths.data_dir}")
        host, port = gw.config.sip.listen
        if args.json:
            print(json.dumps({"mode": "worker", "pid": pid, "listen": f"{host}:{port}"}))
        else:
            print(f"gateway (one worker, pid {pid}) is running on {host}:{port}")
        return 0
    st = _node_status(gw)
    nodes, index_error = _cluster_nodes(gw)
    index = _index_state(gw, index_error)
    if args.json:
        print(json.dumps({**st, "index": index, **({"nodes": nodes} if nodes is not None else {})}))
        return 0
    k = st["kamailio"]
    print(f"Kamailio pid {k['pid']} on {k['listen']} (restarts: {k['restarts']})")
    for w in st["workers"]:
        print(
            f"worker {w['index']}: port {w['port']} pid {w['pid']} "
            f"{('slow: no new calls' if w.get('slow') else 'ready') if w['ready'] else 'NOT READY'} "
            f"(restarts: {w['restarts']}, rolled: {w['rolled']}, killed hung: {w.get('hung', 0)})"
        )
    print(
        f"calls: {st['live_calls']} live, capacity {st['capacity_calls']}; fail-open so far: {st['failopen']}"
    )
    up = st.get("upload")
    if up:
        state = f"UNREACHABLE ({up['error']})" if up["failing"] else "reachable"
        print(
            f"object store: {state}; {up['pending']} finished recording(s) waiting in the spool "
            f"({up['pending_bytes']} bytes), {up['uploaded']} uploaded since start"
        )
    if index["shared"] or index["journal_waiting"]:
        state = (
            "reachable"
            if index["reachable"]
            else f"UNREACHABLE ({index['error']}; calls go on, writes wait in the journal)"
        )
        print(f"index: {state}; {index['journal_waiting']} write(s) waiting in the local journal")
    cluster = st.get("cluster") or {}
    if cluster.get("problem"):
        print(f"cluster: DISABLED: {cluster['problem']}")
    elif cluster.get("refused"):
        print(f"cluster: {cluster['refused']} notification(s) dropped that did not open with this node's key")
    if nodes is not None:
        _print_nodes(nodes, gw.config.node.name)
    return 0


def _cluster_nodes(gw: Gateway) -> tuple[list[dict[str, object]] | None, str]:
    """Every node sharing the PostgreSQL index, from their heartbeats (None on SQLite, or when
    the index cannot be read: then why)."""
    import time

    from ..storage.index import IndexAccessError
    from ..supervisor.cluster import LOST_AFTER_S

    if not gw.config.index.postgres:
        return None, ""
    try:
        rows = gw.index.nodes()
    except IndexAccessError as e:
        return None, str(e)
    out: list[dict[str, object]] = []
    for name, st, beat in rows:
        workers = st.get("workers", []) if isinstance(st.get("workers"), list) else []
        out.append(
            {
                "name": name,
                "up": time.time() - beat < LOST_AFTER_S,
                "heartbeat_age_s": round(time.time() - beat, 1),
                "listen": (st.get("kamailio") or {}).get("listen"),
                "workers_ready": sum(1 for w in workers if w.get("ready")),
                "workers": len(workers),
                "live_calls": st.get("live_calls", 0),
                "capacity_calls": st.get("capacity_calls", 0),
                "failopen": st.get("failopen", 0),
            }
        )
    return out, ""


def _index_state(gw: Gateway, error: str) -> dict[str, object]:
    """Whether the shared index answers, and the index writes this host's processes keep in
    their journal meanwhile (replayed by themselves, in order, once it is back)."""
    from ..storage import journal

    directory = journal.directory_of(gw.config.paths.data_dir)
    try:
        waiting = journal.backlog(directory) if directory.is_dir() else 0
    except OSError:
        waiting = -1  # unreadable (another user's files): `gateway audit` as the gateway's user says
    shared = gw.config.index.postgres
    return {"shared": shared, "reachable": not error, "error": error or None, "journal_waiting": waiting}


def _print_nodes(nodes: list[dict[str, object]], me: str) -> None:
    print(f"nodes sharing the index ({len(nodes)}):")
    for n in nodes:
        state = "up" if n["up"] else f"DOWN (last heard {n['heartbeat_age_s']} s ago)"
        mark = " (this node)" if n["name"] == me else ""
        print(
            f"  {n['name']}{mark}: {state}, SIP on {n['listen']}, workers {n['workers_ready']}/{n['workers']}, "
            f"{n['live_calls']} live call(s), capacity {n['capacity_calls']}, fail-open {n['failopen']}"
        )


def _node_status(gw: Gateway) -> dict:
    import json

    data_dir = gw.config.paths.data_dir
    pid = datalock.holder(data_dir)
    if pid is None:
        raise NotRunningError(f"no gateway is running on {data_dir}")
    if not gw.config.node.kamailio:
        raise ConfigError("[node] kamailio = false: one worker, no node (no pool to restart)")
    path = gw.layout.node_status
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise NotRunningError(f"the gateway (pid {pid}) is starting: no node status at {path} yet") from None


def workers_restart(args: argparse.Namespace) -> int:
    import os

    st = _node_status(open_gateway(args))
    try:
        os.kill(st["supervisor_pid"], signal.SIGUSR1)
    except ProcessLookupError:
        raise ConfigError("the supervisor named in the node status is not running") from None
    print(f"rolling restart of {len(st['workers'])} worker(s) requested; watch `gateway status`")
    return 0


def _run_alone(gw: Gateway) -> int:
    """One worker on [sip] listen, no node."""
    from ..telephony import process
    from ..telephony.worker import Worker

    def announce(worker: Worker) -> None:
        print(
            f"gateway: listening for SIP on {worker.host}:{worker.port} (UDP, TCP); events on "
            f"{worker.events.path}",
            flush=True,
        )

    process.run(gw, None, announce)
    return 0
