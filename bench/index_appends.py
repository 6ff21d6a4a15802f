"""Benchmark: audit-log appends per second into one hash chain, SQLite against PostgreSQL, with
one appending process and with two at once (two nodes sharing the PostgreSQL index).

    .venv/bin/python bench/index_appends.py --appends 2000

Each append is what the gateway does for every audited event: read the chain's head and write
the next entry in one transaction that no other appender interleaves with (SQLite: BEGIN
IMMEDIATE on the file; PostgreSQL: a transaction-scoped advisory lock), durable at commit
(SQLite synchronous=FULL; PostgreSQL fsync on, as in production). The PostgreSQL server is a
throwaway cluster on a Unix socket of this machine. After each run the whole chain is verified
(no fork, no gap). Reported: appends per second (all processes together), and the 2-process
rate over the 1-process rate of the same backend.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.storage import audit  # noqa: E402
from gateway.storage.index import SqliteIndex  # noqa: E402
from gateway.storage.index_pg import PgIndex  # noqa: E402
from tests import pg  # noqa: E402


def _open(where: str):  # type: ignore[no-untyped-def]
    return PgIndex(where) if where.startswith("postgresql://") else SqliteIndex(where, create=True)


def _appender(where: str, n: int, tag: str, start: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    index = _open(where)
    start.wait()
    for i in range(n):
        index.append_audit("bench", "bench.append", f"{tag}-{i}", {"i": i})
    index.close()


def run(where: str, processes: int, appends: int) -> dict[str, object]:
    _open(where).close()  # the schema, before the clock starts
    start = multiprocessing.Event()
    procs = [
        multiprocessing.Process(target=_appender, args=(where, appends // processes, f"p{p}", start))
        for p in range(processes)
    ]
    for p in procs:
        p.start()
    time.sleep(1.0)  # every process connected and waiting
    t0 = time.perf_counter()
    start.set()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - t0
    index = _open(where)
    entries = index.audit_entries()
    verdict = audit.verify(entries)
    index.close()
    done = (appends // processes) * processes
    return {
        "processes": processes,
        "appends": done,
        "seconds": round(elapsed, 2),
        "appends_per_s": round(done / elapsed, 1),
        "chain_entries": len(entries),
        "chain_ok": verdict.ok,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--appends", type=int, default=2000, help="appends per run (split over the processes)")
    args = ap.parse_args()
    out: dict[str, object] = {"appends": args.appends}
    server = pg.start(durable=True)
    try:
        with tempfile.TemporaryDirectory() as d:
            for backend in ("sqlite", "postgresql"):
                results = []
                for processes in (1, 2):
                    where = (
                        server.new_database()
                        if backend == "postgresql"
                        else str(Path(d) / f"index-{processes}.sqlite3")
                    )
                    results.append(run(where, processes, args.appends))
                one, two = results
                out[backend] = {
                    "one_process": one,
                    "two_processes": two,
                    "two_over_one": round(float(two["appends_per_s"]) / float(one["appends_per_s"]), 2),  # type: ignore[arg-type]
                }
    finally:
        server.stop()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
