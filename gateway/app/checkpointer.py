"""A recording's checkpoints (the size and SHA-256 of its durable prefix: what crash recovery
signs) reach the index from a thread of their own, so the recorder engine, which seals every
call's audio on one thread per worker, never waits on the database.

The index may be slow (a locked SQLite file, a busy PostgreSQL): meanwhile only each recording's
newest checkpoint waits to be written. An older checkpoint says less than a newer one, never
something untrue, and one written after its recording is finished changes nothing (the index
takes a checkpoint only while the recording is being written)."""

from __future__ import annotations

import logging
import threading

from .. import osthreads
from ..storage.index import Index

log = logging.getLogger(__name__)


class Checkpointer:
    def __init__(self, index: Index) -> None:
        self.index = index
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[int, str]] = {}  # recording id -> (sealed bytes, sha256)
        self._wake = threading.Event()
        self._closing = False
        self._thread: osthreads.Thread | None = None

    def note(self, rec_id: str, sealed_bytes: int, sha256: str) -> None:
        """The recording's first `sealed_bytes` bytes are durable and hash to `sha256` (from the
        recorder engine's thread; returns at once)."""
        with self._lock:
            self._pending[rec_id] = (sealed_bytes, sha256)
            if self._thread is None and not self._closing:
                self._thread = osthreads.Thread(target=self._run, name="checkpoints", daemon=True)
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self.flush()
            if self._closing:
                self.flush()  # what was noted while the last batch was written
                return

    def flush(self) -> None:
        """Write what is waiting (on the calling thread)."""
        with self._lock:
            batch, self._pending = self._pending, {}
        for rec_id, (sealed_bytes, sha256) in batch.items():
            try:
                self.index.checkpoint_recording(rec_id, sealed_bytes, sha256)
            except Exception:  # a lost checkpoint costs only what recovery can sign later
                log.exception("checkpoint of recording %s failed", rec_id)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is waiting and stop the thread (before the index is closed)."""
        with self._lock:
            self._closing = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout_s)
        else:
            self.flush()
