"""What `gateway recordings rewrap` costs: N stored recordings moved from an X25519 operator key
to a new X25519 key, and N others to a new post-quantum (MLKEM768-X25519) key, in the same run
(issue 23). Each recording is a real age file in the spool (SIZE bytes of payload) with its
index row; the rewrap is the service's, as the CLI runs it: new header, payload copied into a
new fsynced object, index updated, signed, audited, old object deleted.

    .venv/bin/python bench/rewrap_cost.py [--n 10000] [--size 65536]

Working files go under the system temp directory.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import tempfile
import time
from pathlib import Path

from gateway import age
from gateway.app.gateway import Gateway
from gateway.cli import main as cli
from gateway.storage.rows import RecordingRow, RecordingStatus, utcnow


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def populate(gw: Gateway, n: int, size: int, old: age.Identity) -> list[str]:
    ids = []
    payload = os.urandom(size)
    for i in range(n):
        sealed = age.encrypt(payload, [old.recipient()])
        w = gw.store.create()
        w.append(sealed)
        w.close()
        rec_id = f"bench{i:07d}"
        gw.index.add_recording(
            RecordingRow(rec_id, w.name, utcnow(), status=RecordingStatus.COMPLETE, bytes=len(sealed),
                         sha256=hashlib.sha256(sealed).hexdigest())
        )  # fmt: skip
        ids.append(rec_id)
    return ids


def run(tmp: Path, kind: str, n: int, size: int) -> tuple[float, float]:
    old = age.Identity.generate()
    new: age.AnyIdentity = age.HybridIdentity.generate() if kind == "pq" else age.Identity.generate()
    d = tmp / kind
    assert cli(["init", "--dir", str(d), "--recipient", str(old.recipient())]) == 0
    gw = Gateway.open(d / "gateway.toml")
    ids = populate(gw, n, size, old)
    gw.close()
    text = (d / "gateway.toml").read_text().replace(str(old.recipient()), str(new.recipient()))
    (d / "gateway.toml").write_text(text)
    gw = Gateway.open(d / "gateway.toml")
    service = gw.recording_service(None, actor="bench")
    t0, c0 = time.monotonic(), cpu()
    for rec_id in ids:
        assert service.rewrap(rec_id, [old])
    wall, used = time.monotonic() - t0, cpu() - c0
    gw.close()
    return wall, used


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=65_536)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gw-rewrap-") as tmp:
        results = {kind: run(Path(tmp), kind, args.n, args.size) for kind in ("x25519", "pq")}
    print(f"{args.n} recordings of {args.size} payload bytes each, in the spool, SQLite index")
    for kind, (wall, used) in results.items():
        print(
            f"to a new {kind:6}: {wall:7.1f} s wall, {used:7.1f} s CPU, {wall / args.n * 1000:5.2f} ms per recording"
        )
    print(
        f"pq / x25519: wall {results['pq'][0] / results['x25519'][0]:.2f}x, CPU {results['pq'][1] / results['x25519'][1]:.2f}x"
    )


if __name__ == "__main__":
    main()
