"""Data-subject lookup without a lookup hash: how long `subject find` takes to decrypt and
compare every stored caller number, with one process and with every core.

    .venv/bin/python bench/subject_lookup.py [--calls 1000000] [--recipients 2]

It fills a throwaway SQLite index (under the system temp directory) with N calls whose numbers
are age-encrypted to R recipients, exactly as the worker stores them (one in 1000 is the
subject's), then times `governance.subject.matching_calls` with 1 process and with
os.cpu_count() processes, in the same run, and checks that both find the same calls.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway import age  # noqa: E402
from gateway.config import NumbersConfig  # noqa: E402
from gateway.governance import subject  # noqa: E402
from gateway.storage import pii  # noqa: E402
from gateway.storage.index import SqliteIndex
from gateway.storage.rows import CallRow

SUBJECT = "+46701234567"
_recipients: list[age.Recipient] = []


def _seal(numbers: list[str]) -> list[bytes]:
    return [pii.seal_value(n, _recipients) or b"" for n in numbers]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--recipients", type=int, default=2)
    args = ap.parse_args()
    identities = [age.Identity.generate() for _ in range(args.recipients)]
    global _recipients
    _recipients = [i.recipient() for i in identities]
    rnd = random.Random(1)
    numbers = [SUBJECT if i % 1000 == 0 else f"+4670{rnd.randrange(10**7):07d}" for i in range(args.calls)]
    t0 = time.perf_counter()
    with multiprocessing.get_context("fork").Pool() as pool:
        sealed = [
            s
            for part in pool.map(_seal, [numbers[i : i + 5000] for i in range(0, len(numbers), 5000)])
            for s in part
        ]
    print(
        f"sealed {len(sealed)} numbers to {args.recipients} recipient(s) in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="subject-bench-") as d:
        index = SqliteIndex(Path(d) / "index.sqlite3", create=True)
        index._db.execute("BEGIN")
        for i, s in enumerate(sealed):
            d_call = CallRow(f"c{i:08d}", "2026-01-01T00:00:00Z", route="*", caller_enc=s)
            index._db.execute(
                "INSERT INTO calls VALUES (?,?,?,?,?)",
                (d_call.id, d_call.started_at, d_call.ended_at, d_call.route, d_call.caller_enc),
            )
        index._db.execute("COMMIT")
        # The operator's identity is the last recipient's: the worst case, every stanza tried.
        who = [identities[-1]]
        numbering = NumbersConfig(country_code="46")
        results = {}
        for procs in (1, os.cpu_count() or 1):
            t0 = time.perf_counter()
            ids, checked, unreadable = subject.matching_calls(index, who, SUBJECT, numbering, processes=procs)
            results[procs] = (time.perf_counter() - t0, sorted(ids))
            print(
                f"{procs} process(es): {checked} numbers checked, {len(ids)} found, {unreadable} unreadable, "
                f"{results[procs][0]:.1f} s ({results[procs][0] / checked * 1e6:.1f} us per number)",
                flush=True,
            )
        one, many = results[1], results[max(results)]
        assert one[1] == many[1] and len(one[1]) == (args.calls + 999) // 1000
        print(f"speed-up with {max(results)} processes: {one[0] / many[0]:.2f}x")
        index.close()


if __name__ == "__main__":
    main()
