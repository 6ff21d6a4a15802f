"""The running gateway's background duties: retention every hour, a signed audit checkpoint
every [audit] checkpoint_interval_s, the upload of finished recordings to the object store, the
expiry of review grants every minute, and crash recovery as soon as a worker dies.
Each runs once per node: in a node's supervisor, or in a worker that runs alone ([node]
kamailio = false). A node's workers run none of them."""

from __future__ import annotations

import asyncio
import logging

from ..storage.index import IndexUnavailable
from . import retention
from .gateway import Gateway

log = logging.getLogger(__name__)
RETENTION_EVERY_S = 3600.0
GRANT_SWEEP_EVERY_S = 60.0  # expired review grants are marked and audited within a minute
RECOVERY_RETRY_S = 15.0  # a recovery that found the index away is tried again this often


class Duties:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.uploader = gw.uploader()
        self._tasks: list[asyncio.Task[None]] = []
        self._writer_died = asyncio.Event()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._retention()),
            asyncio.create_task(self._anchoring()),
            asyncio.create_task(self._grant_expiry()),
            asyncio.create_task(self._recovery()),
        ]
        if self.uploader is not None:
            self.uploader.start()

    async def stop(self) -> None:
        """Cancel the schedules; what the last calls finished goes to the store, and what they
        wrote to the audit log is anchored, now."""
        for task in self._tasks:
            task.cancel()
        if self.uploader is not None:
            self.uploader.stop()
            await asyncio.to_thread(self.uploader.round)
        await asyncio.to_thread(self.gw.anchor_audit, log_stream=True)

    async def _retention(self) -> None:
        """Delete expired recordings (not on hold) at start and every hour, off the loop's thread."""
        while True:
            try:
                report = await asyncio.to_thread(
                    retention.run,
                    self.gw.store,
                    self.gw.index,
                    retention.Retention.of(self.gw.config),
                    "retention",
                )
                if report.deleted or report.held:
                    log.info("retention: deleted %d, kept %d on hold", len(report.deleted), len(report.held))
            except IndexUnavailable as e:
                log.warning("retention waits for the index (%s); retrying at the next interval", e)
            except Exception:
                log.exception("retention run failed; retrying at the next interval")
            await asyncio.sleep(RETENTION_EVERY_S)

    def writer_died(self) -> None:
        """A process that was writing recordings died (a worker killed or crashed), or recovery
        at start found the index away: recover its recordings soon, without an operator."""
        self._writer_died.set()

    async def _recovery(self) -> None:
        """What a dead worker was writing stays "recording" in the index until recovered: marked
        truncated, its sealed prefix signed and kept (then uploaded), audited. The same
        recovery as at start and as `gateway recordings recover`, safe at any time; retried
        while the index is out of reach."""
        service = self.gw.recording_service(None)
        while True:
            await self._writer_died.wait()
            self._writer_died.clear()
            try:
                recovered = await asyncio.to_thread(service.recover)
                if recovered:
                    log.warning("recovered %d recording(s) a dead worker was writing", len(recovered))
                    if self.uploader is not None:
                        self.uploader.wake()
            except IndexUnavailable as e:
                log.warning(
                    "crash recovery waits for the index (%s); retrying in %.0f s", e, RECOVERY_RETRY_S
                )
                await asyncio.sleep(RECOVERY_RETRY_S)
                self._writer_died.set()
            except Exception:
                log.exception("crash recovery failed; it runs again at the next worker death or start")

    async def _grant_expiry(self) -> None:
        """Mark review grants whose time ran out as expired, each audited once (a fetch under
        one is refused from its expiry on whether or not this has run yet)."""
        review = self.gw.review()
        while True:
            try:
                n = await asyncio.to_thread(review.expire_due)
                if n:
                    log.info("review: %d access grant(s) expired", n)
            except IndexUnavailable as e:
                log.warning("review grant expiry waits for the index (%s)", e)
            except Exception:
                log.exception("review grant expiry failed; retrying at the next interval")
            await asyncio.sleep(GRANT_SWEEP_EVERY_S)

    async def _anchoring(self) -> None:
        """Anchor what the workers, the dashboard and the CLI wrote to the audit log: a signed
        checkpoint to the log stream and the witnesses."""
        while True:
            await asyncio.sleep(self.gw.config.witness.checkpoint_interval_s)
            await asyncio.to_thread(self.gw.anchor_audit, log_stream=True)
