"""A recording's checkpoints reach the index off the recorder engine's thread: the engine never
waits on a slow or locked index, and only each recording's newest checkpoint waits."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from gateway.app.checkpointer import Checkpointer
from gateway.storage.index import SqliteIndex
from gateway.storage.rows import CallRow, RecordingRow


def _recording(index: SqliteIndex, rec_id: str) -> None:
    index.add_call(CallRow(f"call-{rec_id}", "2026-01-01T00:00:00.000Z", route="1177"))
    index.add_recording(
        RecordingRow(
            id=rec_id,
            object_name=rec_id * 16 + ".age",
            started_at="2026-01-01T00:00:01.000Z",
            call_id=f"call-{rec_id}",
        )
    )


def test_a_locked_index_never_holds_up_the_recorder_and_the_newest_checkpoint_arrives(
    tmp_path: Path,
) -> None:
    path = tmp_path / "index.sqlite3"
    index = SqliteIndex(path, create=True)  # waits up to 30 s for another writer
    _recording(index, "ab")
    _recording(index, "cd")
    cp = Checkpointer(index)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    noted = threading.Event()

    def recorder() -> None:  # the engine's thread, sealing chunks while the index is held
        for n in range(1, 51):
            cp.note("ab", n * 100, f"{n:064x}")
        cp.note("cd", 7, "7" * 64)
        noted.set()

    threading.Thread(target=recorder, daemon=True).start()
    try:
        # Bounded: a note() that waited on the database would leave this unset for 30 s.
        assert noted.wait(10), "the recorder's thread waited on the locked index"
        # (read on a connection of its own: the index's is the checkpoint thread's, waiting)
        reader = sqlite3.connect(path)
        assert reader.execute("SELECT bytes FROM recordings WHERE id='ab'").fetchone()[0] in (None, 0)
        reader.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    cp.close()
    assert (index.get_recording("ab").bytes, index.get_recording("ab").sha256) == (5000, f"{50:064x}")
    assert index.get_recording("cd").bytes == 7
    index.close()


def test_close_writes_what_was_noted_last(tmp_path: Path) -> None:
    """The worker closes it after the engine, before the index: nothing noted is left behind."""
    index = SqliteIndex(tmp_path / "index.sqlite3", create=True)
    _recording(index, "ab")
    cp = Checkpointer(index)
    for n in range(1, 200):
        cp.note("ab", n, f"{n:064x}")
    cp.close()
    assert index.get_recording("ab").bytes == 199
    index.close()
