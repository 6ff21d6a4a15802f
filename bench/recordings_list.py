"""Benchmark: the recordings list at a million rows, SQLite and PostgreSQL (issue 22).

    .venv/bin/python bench/recordings_list.py [--rows 1000000] [--repeat 20]

Fills a fresh index (the gateway's own schema) with `--rows` recordings spread over a year and
five routes, 100 of them on hold, by one INSERT ... SELECT (SQLite: a recursive CTE; PostgreSQL:
generate_series, on a throwaway cluster from tests/pg.py with fsync on). Then times what the
review page asks of `Index.page_recordings` (the keyset query behind GET /api/recordings): the
first page, a page deep in the list through its cursor, a route and a month, the held ones. The
baseline, in the same run, is what the list did before issue 22: load every row
(`list_recordings`), sort in Python and take the first 50. Median of `--repeat` runs each
(the baseline: 3 runs).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.storage.index import Index, SqliteIndex  # noqa: E402
from gateway.storage.rows import RecordingQuery  # noqa: E402

HOLDS = 100
T0 = 1_735_689_600  # 2025-01-01T00:00:00Z
STEP_S = 31  # a million rows over a year


def sqlite_fill(path: Path, rows: int) -> None:
    import sqlite3

    c = sqlite3.connect(path)
    c.execute(
        f"""WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {rows - 1})
        INSERT INTO recordings (id, object_name, started_at, status, origin, media_type, sample_rate,
            channels, finished_at, duration_s, bytes, route)
        SELECT printf('%016x', i), printf('o%015x', i),
            strftime('%Y-%m-%dT%H:%M:%fZ', {T0} + i * {STEP_S}, 'unixepoch'), 'complete', 'call',
            'audio/wav', 8000, 2, strftime('%Y-%m-%dT%H:%M:%fZ', {T0} + i * {STEP_S} + 180, 'unixepoch'),
            180.0, 5760044, '117' || (i % 5) FROM n"""
    )
    c.execute(
        f"""INSERT INTO holds (recording_id, reason, actor, created_at)
        SELECT printf('%016x', i * {rows // HOLDS}), 'bench', 'bench', '2026-01-01T00:00:00Z'
        FROM (WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {HOLDS - 1}) SELECT i FROM n)"""
    )
    c.commit()
    c.execute("ANALYZE")
    c.close()


def pg_fill(server: object, url: str, rows: int) -> None:
    db = url.split("@/", 1)[1].split("?")[0]
    server.psql(  # type: ignore[attr-defined]
        db,
        f"""INSERT INTO recordings (id, object_name, started_at, status, origin, media_type, sample_rate,
            channels, finished_at, duration_s, bytes, route)
        SELECT lpad(to_hex(i), 16, '0'), 'o' || lpad(to_hex(i), 15, '0'),
            to_char(to_timestamp({T0} + i * {STEP_S}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
            'complete', 'call', 'audio/wav', 8000, 2,
            to_char(to_timestamp({T0} + i * {STEP_S} + 180) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
            180.0, 5760044, '117' || (i % 5) FROM generate_series(0, {rows - 1}) AS i;
        INSERT INTO holds (recording_id, reason, actor, created_at)
        SELECT lpad(to_hex(i * {rows // HOLDS}), 16, '0'), 'bench', 'bench', '2026-01-01T00:00:00Z'
        FROM generate_series(0, {HOLDS - 1}) AS i;
        ANALYZE;""",
    )


def timed(f: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000, out


def measure(index: Index, rows: int, repeat: int) -> list[tuple[str, float, int]]:
    first = RecordingQuery(limit=50)
    page = index.page_recordings(first)
    # A cursor half-way down the list: what "Older recordings" sends after many pages.
    mid = index.page_recordings(RecordingQuery(limit=1, until="2025-07-01T00:00:00Z"))[0]
    cases: list[tuple[str, Callable[[], list[object]]]] = [
        ("first page (50, newest first)", lambda: index.page_recordings(first)),  # type: ignore[list-item]
        (
            "a page half-way down, by cursor",
            lambda: index.page_recordings(  # type: ignore[list-item]
                RecordingQuery(limit=50, after=(mid.started_at, mid.id))
            ),
        ),
        (
            "route 1173, March",
            lambda: index.page_recordings(  # type: ignore[list-item]
                RecordingQuery(limit=50, route="1173", since="2025-03-01", until="2025-04-01")
            ),
        ),
        ("held only", lambda: index.page_recordings(RecordingQuery(limit=50, held=True))),  # type: ignore[list-item]
    ]
    out = []
    for name, f in cases:
        ms, got = timed(f, repeat)
        out.append((name, ms, len(got)))  # type: ignore[arg-type]
    assert len(page) == 50 and page[0].started_at > page[-1].started_at

    def old_way() -> list[object]:
        everything = index.list_recordings()
        everything.sort(key=lambda r: (r.started_at, r.id), reverse=True)
        return everything[:50]  # type: ignore[return-value]

    ms, got = timed(old_way, 3)
    assert [r.id for r in got] == [r.id for r in page]  # type: ignore[attr-defined]
    out.append(("baseline: load all, sort, first 50", ms, len(got)))  # type: ignore[arg-type]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = ap.parse_args()
    results: dict[str, list[tuple[str, float, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-list-") as d:
        if "sqlite" in args.backends:
            path = Path(d) / "index.sqlite3"
            SqliteIndex(path, create=True).close()
            t = time.perf_counter()
            sqlite_fill(path, args.rows)
            print(f"sqlite: {args.rows} rows in {time.perf_counter() - t:.1f} s", flush=True)
            idx = SqliteIndex(path)
            results["SQLite"] = measure(idx, args.rows, args.repeat)
            idx.close()
        if "postgresql" in args.backends:
            from gateway.storage.index_pg import PgIndex
            from tests import pg

            server = pg.start(durable=True)
            try:
                url = server.new_database()
                PgIndex(url).close()
                t = time.perf_counter()
                pg_fill(server, url, args.rows)
                print(f"postgresql: {args.rows} rows in {time.perf_counter() - t:.1f} s", flush=True)
                pidx = PgIndex(url)
                results["PostgreSQL"] = measure(pidx, args.rows, args.repeat)
                pidx.close()
            finally:
                server.stop()
    print(
        f"\n{args.rows} recordings; machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print("| query | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    names = [n for n, _, _ in next(iter(results.values()))]
    for i, name in enumerate(names):
        cells = []
        for rs in results.values():
            base = rs[-1][1]
            _, ms, n = rs[i]
            cells.append(
                f"{ms:.2f} ms ({n} rows)" + ("" if i == len(names) - 1 else f", ×{base / ms:,.0f} faster")
            )
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
