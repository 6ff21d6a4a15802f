"""The node's pool of workers: started (forked from the fork server, or as processes), put in
Kamailio's dispatcher once they say they are ready on their event link, pinged, benched when
slow, killed when hung, replaced when they die, grown for spare capacity and retired when idle,
replaced one by one in a rolling restart, and drained at the end."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..app.gateway import Gateway
from ..callevents import EventType
from . import health
from .forkserver import ForkedProcess, ForkServer
from .frontproc import KamailioProcess
from .health import HEARTBEAT_TIMEOUT_S
from .links import WorkerLinks

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

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


class WorkerPool:
    def __init__(
        self,
        gw: Gateway,
        kamailio: KamailioProcess,
        links: WorkerLinks,
        forks: ForkServer | None,
        on_change: Callable[[], None] = lambda: None,
        on_died: Callable[[], None] = lambda: None,
    ) -> None:
        self.gw = gw
        self.kamailio = kamailio
        self.links = links
        self.forks = forks
        self._on_change = on_change  # a worker process started or ended: the node records it
        self._on_died = on_died  # a worker died (killed, crashed): its recordings need recovery
        node = gw.config.node
        self.workers = [WorkerProc(i, node.worker_base_port + i) for i in range(node.workers)]
        self.grown = 0  # workers started beyond the initial pool
        self.retired = 0
        links.observers.append(self._on_event)

    @property
    def ports(self) -> list[int]:
        return [w.port for w in self.workers]

    # -- starting, and readiness ----------------------------------------------------------------

    async def start_worker(self, w: WorkerProc) -> None:
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
        self._on_change()
        asyncio.create_task(self._drain_output(proc))
        sock = self.gw.layout.worker_events(w.index)
        asyncio.create_task(self.links.follow(w.index, sock, lambda: proc.returncode is None))

    async def _drain_output(self, proc: asyncio.subprocess.Process | ForkedProcess) -> None:
        """A worker's stdout, read so that it never blocks on a full pipe (it says nothing the
        node needs: readiness comes on its event link)."""
        assert proc.stdout is not None
        async for _ in proc.stdout:
            pass

    def _on_event(self, event: dict[str, object], link: int) -> None:
        """A worker is ready when it says so on its event link (worker.started, also in the
        snapshot a reconnecting link gets), from the process the node started last for it."""
        if event.get("type") != EventType.WORKER_STARTED:
            return
        w = next((w for w in self.workers if w.index == link), None)
        if w is None or w.ready or w.proc is None or w.proc.pid != event.get("pid"):
            return
        asyncio.get_running_loop().create_task(self._ready(w, w.proc))

    async def _ready(self, w: WorkerProc, proc: asyncio.subprocess.Process | ForkedProcess) -> None:
        if proc is w.proc and not w.ready and await self.dispatch(w):
            w.ready = True
            log.info("worker %d ready on port %d", w.index, w.port)

    async def dispatch(self, w: WorkerProc) -> bool:
        return await self.kamailio.add_worker(w.index, w.port, WORKER_CALLS)

    async def undispatch(self, w: WorkerProc) -> None:
        await self.kamailio.remove_worker(w.index, w.port)

    async def redispatch(self) -> None:
        """A restarted Kamailio learns the ready workers again."""
        for w in self.workers:
            if w.ready and not w.slow:
                await self.dispatch(w)

    # -- keeping the pool ----------------------------------------------------------------------

    async def supervise(self) -> None:
        """Retire the workers that finished retiring; replace those that died."""
        for w in list(self.workers):
            if w.retiring and w.proc is not None and w.proc.returncode is not None:
                self.workers.remove(w)
                self.retired += 1
                log.info("pool: worker %d retired; %d worker(s) now", w.index, len(self.workers))
                continue
            if w.proc is not None and w.proc.returncode is not None and not w.restarting:
                log.error("worker %d exited (%s); replacing it", w.index, w.proc.returncode)
                self._on_died()
                if w.ready and not w.slow:
                    await self.undispatch(w)
                w.restarts += 1
                await self.start_worker(w)

    def free_calls(self) -> int:
        """Call capacity ready or starting: free slots on ready workers, plus whole workers that
        are still starting (they will be ready within a second or two)."""
        free = 0
        for w in self.workers:
            if w.retiring or w.slow or not w.running:
                continue  # a slow worker takes no new calls until it answers again
            free += (
                WORKER_CALLS - min(WORKER_CALLS, self.links.calls_on(w.index)) if w.ready else WORKER_CALLS
            )
        return free

    def capacity_calls(self) -> int:
        return WORKER_CALLS * sum(w.ready and not w.slow for w in self.workers)

    async def size(self) -> None:
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
            await self.start_worker(w)
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
            await self.undispatch(last)
            last.ready = False
            if last.running:
                assert last.proc is not None
                last.proc.terminate()  # it drains (no calls) and exits

    async def heartbeat(self) -> None:
        """Ping every ready worker over its control socket. One that misses HEARTBEAT_MISSES in
        a row leaves the dispatcher. If its main thread no longer runs it is hung (stopped,
        deadlocked, stuck in the kernel): it is killed, and `supervise` replaces it like any
        dead worker; its calls are lost either way and its recordings end truncated and
        decrypt. If its main thread still runs, the worker is only starved (CPU overload): it
        keeps its calls and comes back into the dispatcher when it answers again (see
        health.py)."""
        live = [w for w in self.workers if w.ready and not w.restarting and w.running]
        answers = await asyncio.gather(*(self.links.ping(w.index, HEARTBEAT_TIMEOUT_S) for w in live))
        for w, ok in zip(live, answers, strict=True):
            if ok or w.restarting or not w.ready:
                w.misses = 0
                w.miss_cpu_ns = None
                if ok and w.slow and await self.dispatch(w):
                    w.slow = False
                    log.info("worker %d answers heartbeats again: back in the dispatcher", w.index)
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
                    await self.undispatch(w)
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
                await self.undispatch(w)
            w.slow = False
            w.ready = False
            w.proc.kill()

    async def rolling_restart(self, on_step: Callable[[], None] = lambda: None) -> None:
        """Replace every worker, one at a time, without dropping a call: out of the dispatcher,
        drain, start anew, back in once it is ready. A new fork server first, so that the new
        workers run the code installed now (an upgrade), not what the old one imported."""
        if self.forks is not None:
            await self.forks.stop()
            await self.forks.start()
        for w in self.workers:
            if not w.running:
                continue
            log.info("rolling restart: worker %d", w.index)
            if w.ready:
                await self.undispatch(w)
                w.ready = False
            old = w.proc
            assert old is not None
            w.restarting = True
            old.terminate()
            await old.wait()
            w.rolled += 1
            await self.start_worker(w)
            w.restarting = False
            for _ in range(300):
                if w.ready:
                    break
                await asyncio.sleep(0.1)
            on_step()

    async def drain(self) -> None:
        """Out of the dispatcher, then each worker drains its own calls (up to [node] drain_s)."""
        for w in self.workers:
            if w.ready and not w.slow:
                await self.undispatch(w)
            w.ready = False
        for w in self.workers:
            if w.running:
                assert w.proc is not None
                w.proc.terminate()
        for w in self.workers:
            if w.proc is not None:
                try:
                    await asyncio.wait_for(w.proc.wait(), self.gw.config.node.drain_s + 15)
                except TimeoutError:
                    w.proc.kill()
        if self.forks is not None:
            await self.forks.stop()

    def status(self) -> list[dict[str, object]]:
        return [
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
        ]
