"""Moving finished recordings from the local spool into the object store.

A recording is uploaded once its index row says it is finished (complete, incomplete,
truncated): the store checks the SHA-256 it is sent, the uploader reads size and checksum back,
and only then is the local copy removed. A complete recording whose local bytes no longer hash
to what the index recorded is not uploaded (it was altered; `gateway recordings verify` names
it). While the store is out of reach the uploader backs off (up to five minutes between
attempts) and everything waits in the spool, sealed and fsynced as it was: nothing is lost, and
the spool's backlog is in the metrics and on the dashboard.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .. import osthreads
from .index import Index, IndexUnavailable
from .rows import RecordingRow, RecordingStatus
from .s3 import S3Store, retain_until
from .spool import LocalSpool
from .store import ObjectNotFound, StoreError

log = logging.getLogger(__name__)
FINISHED = (RecordingStatus.COMPLETE, RecordingStatus.INCOMPLETE, RecordingStatus.TRUNCATED)
CHECK_EVERY_S = 60.0


@dataclass
class UploadStats:
    uploaded: int = 0
    bytes_uploaded: int = 0
    pending: int = 0  # finished recordings still in the spool
    pending_bytes: int = 0
    failures: int = 0  # rounds that stopped on a store error, in a row
    last_error: str = ""
    refused: list[str] = field(default_factory=list)  # altered locally: not uploaded
    # Seconds from a recording's end to its upload being confirmed, for the last uploads.
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=1000))

    def latency(self) -> dict[str, float | None]:
        """End of recording to durable in the object store: p50 and p99 of the last uploads."""
        if not self.latencies_s:
            return {"latency_p50_s": None, "latency_p99_s": None}
        ordered = sorted(self.latencies_s)
        pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)  # noqa: E731
        return {"latency_p50_s": pick(0.5), "latency_p99_s": pick(0.99)}


class Uploader:
    def __init__(
        self,
        spool: LocalSpool,
        remote: S3Store,
        index: Index,
        default_retention_days: int,
        interval_s: float = 10.0,
        max_backoff_s: float = 300.0,
    ) -> None:
        self.spool = spool
        self.remote = remote
        self.index = index
        self.default_retention_days = default_retention_days
        self.interval_s = interval_s
        self.max_backoff_s = max_backoff_s
        self.stats = UploadStats()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._checked_at: float | None = None  # when the bucket was last checked with nothing to upload

    def start(self) -> None:
        self._thread = osthreads.Thread(target=self._run, name="uploader", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.round()
            except Exception:
                log.exception("upload round failed")
            wait = self.interval_s
            if self.stats.failures:
                wait = min(self.max_backoff_s, self.interval_s * 2 ** min(self.stats.failures, 10))
            self._wake.wait(wait)
            self._wake.clear()

    def round(self) -> int:
        """Upload what is finished; returns how many were uploaded. Stops at the first store
        error (the store is probably down: the next round, after a back-off, tries again). With
        nothing to upload, the bucket is checked instead (at the first round, then at most every
        CHECK_EVERY_S), so that a store out of reach shows before a recording waits for it."""
        try:
            queue = self._finished()
        except IndexUnavailable:
            return 0  # the journal has the truth for now
        done = 0
        if not queue:
            now = time.monotonic()
            if self._checked_at is None or self.stats.failures or now - self._checked_at >= CHECK_EVERY_S:
                self._checked_at = now
                try:
                    self.remote.check()
                except StoreError as e:
                    self._failed(e, "the object store cannot be used")
                    return 0
        for row, name, size in queue:
            if self._stop.is_set():
                break
            try:
                if self._upload(row, name, size):
                    done += 1
            except IndexUnavailable:
                break
            except StoreError as e:
                self._failed(e, f"upload of {row.id} waits")
                break
        else:
            if self.stats.failures:
                log.warning("object store reachable again")
            self.stats.failures = 0
            self.stats.last_error = ""
        waiting = [size for _, name, size in queue if self.spool.exists(name)]
        self.stats.pending, self.stats.pending_bytes = len(waiting), sum(waiting)
        return done

    def _failed(self, e: StoreError, what: str) -> None:
        self.stats.failures += 1
        if self.stats.failures == 1 or str(e) != self.stats.last_error:
            log.error("%s: %s", what, e)
        self.stats.last_error = str(e)

    def _finished(self) -> list[tuple[RecordingRow, str, int]]:
        """The spool's finished recordings, oldest name first; what the index has deleted or
        discarded is removed from the spool on the way."""
        out = []
        for name in sorted(self.spool.names()):
            row = self.index.recording_by_object(name)
            if row is None or row.status == RecordingStatus.RECORDING:
                continue  # being written, or an orphan for crash recovery to name first
            if row.status in (RecordingStatus.DELETED, RecordingStatus.DISCARDED):
                self._forget_local(name)
            elif row.status in FINISHED:
                try:
                    out.append((row, name, self.spool.size(name)))
                except ObjectNotFound:
                    pass
        return out

    def _upload(self, row: RecordingRow, name: str, size: int) -> bool:
        h = hashlib.sha256()
        with self.spool.open(name) as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digest = h.hexdigest()
        if row.status == RecordingStatus.COMPLETE and row.sha256 and digest != row.sha256:
            if row.id not in self.stats.refused:
                log.error("recording %s was altered in the spool since it was finished: not uploaded", row.id)
                self.stats.refused.append(row.id)
            return False
        days = row.retention_days if row.retention_days is not None else self.default_retention_days
        until: datetime | None = retain_until(row.started_at, days)
        if until is not None and until <= datetime.now(UTC) + timedelta(seconds=5):
            until = None  # already due for deletion: a store refuses a retain-until in the past
        held = bool(self.index.active_holds(row.id))
        with self.spool.open(name) as f:
            self.remote.put(name, f, size, digest, retain_until=until, legal_hold=held)
        # Deleted (retention, erasure) while it was being uploaded: the bucket must not keep it.
        after = self.index.recording_by_object(name)
        if after is not None and after.status in (RecordingStatus.DELETED, RecordingStatus.DISCARDED):
            try:
                self.remote.delete(name)
            except StoreError as e:  # locked: its key is destroyed, and retention deletes it later
                log.warning("recording %s was erased during its upload; the store keeps it: %s", row.id, e)
            self._forget_local(name)
            return False
        self._forget_local(name)
        if row.finished_at:
            ended = datetime.fromisoformat(row.finished_at.replace("Z", "+00:00"))
            self.stats.latencies_s.append(max(0.0, (datetime.now(UTC) - ended).total_seconds()))
        self.stats.uploaded += 1
        self.stats.bytes_uploaded += size
        log.info("recording %s stored in %s (%d bytes)", row.id, self.remote.url, size)
        return True

    def _forget_local(self, name: str) -> None:
        try:
            self.spool.delete(name)
        except ObjectNotFound:
            pass
