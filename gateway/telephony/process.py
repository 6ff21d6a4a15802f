"""A worker process: one worker on [sip] listen (a gateway without a node), or worker N of a
node's pool, started by `gateway worker --index N` or forked by the node's fork server."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable

from ..app.gateway import Gateway
from ..app.runtime import configure_logging, harden_process, serve_until_signalled
from ..errors import ConfigError, GatewayError
from .net import TCP, UDP, check_ports_free
from .prompts import PromptError
from .worker import Worker

log = logging.getLogger(__name__)


def run(gw: Gateway, index: int | None, on_ready: Callable[[Worker], None] = lambda _w: None) -> None:
    """Run the worker until SIGTERM; `index` None: alone on [sip] listen. `on_ready` once it
    listens (a node's supervisor learns it from the worker's event link instead)."""
    if index is None:  # alone on [sip] listen (a node's supervisor checks its workers' ports)
        host, port = gw.config.sip.listen
        wanted = [(host, port, UDP, "[sip] listen"), (host, port, TCP, "[sip] listen")]
        if gw.config.sip.tls is not None:
            wanted.append((gw.config.sip.tls[0], gw.config.sip.tls[1], TCP, "[sip] tls_listen"))
        check_ports_free(wanted)
    try:
        worker = Worker(gw, index)
    except PromptError as e:
        raise ConfigError(f"prompts: {e}") from None

    async def main(stop: asyncio.Event) -> None:
        if index is None:  # `systemctl reload` must never end a lone worker and its calls
            asyncio.get_running_loop().add_signal_handler(
                signal.SIGHUP,
                lambda: log.warning(
                    "SIGHUP: a single worker reads its TLS certificate only at start; restart it "
                    "when no call is up (a node reloads its front door's certificate on SIGHUP)"
                ),
            )
        ready = asyncio.Event()
        task = asyncio.create_task(worker.run(stop, ready))
        waiting = asyncio.create_task(ready.wait())
        # A worker that fails to start ends with its error; it must not wait for a readiness
        # that never comes.
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            waiting.cancel()
            task.result()
            return
        on_ready(worker)
        await task

    serve_until_signalled(main, sigint=index is None)


def pool_worker(config_path: str, index: int) -> int:
    """Worker `index` of a node's pool, in a process of its own (forked or started); its exit
    code: 0, or 1 after its error on stderr (the supervisor logs it and starts another)."""
    # Ctrl-C in the terminal reaches the node's whole process group: the supervisor drains its
    # workers itself, in order, so a worker does not act on it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    harden_process()
    configure_logging(service=True)
    gw = None
    try:
        gw = Gateway.open(config_path, service=True)
        run(gw, index)
        return 0
    except GatewayError as e:
        print(f"gateway: worker {index}: {e}", file=sys.stderr)
        return 1
    finally:
        if gw is not None:
            gw.close()
