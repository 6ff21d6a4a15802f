"""What the hybrid post-quantum recipient (MLKEM768-X25519) costs against X25519, same run:
header bytes per recipient, the CPU time to start a recording (a new file key wrapped to the
operators: one key encapsulation each), to open one (one decapsulation), and, with
`key_per_recording`, to make a recording's own key and wrap it (issue 23).

    .venv/bin/python bench/pq_cost.py [--n 2000]

Rounds alternate the two kinds, so that a noisy machine weighs on both alike.
"""

from __future__ import annotations

import argparse
import io
import resource

from gateway import age
from gateway.age import format as fmt
from gateway.recording import keys


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def per_op_us(fn, n: int) -> float:
    t0 = cpu()
    for _ in range(n):
        fn()
    return (cpu() - t0) / n * 1e6


def header_bytes(recipients: list[age.AnyRecipient]) -> int:
    sealed = age.encrypt(b"", recipients)
    f = io.BytesIO(sealed)
    fmt.parse(f)
    return f.tell()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    kinds = {"X25519": age.Identity.generate, "MLKEM768-X25519": age.HybridIdentity.generate}
    ids = {k: [make() for _ in range(2)] for k, make in kinds.items()}
    results: dict[str, dict[str, list[float]]] = {k: {"start": [], "open": [], "own_key": []} for k in kinds}
    for _ in range(args.rounds):
        for kind, identities in ids.items():
            recipients = [i.recipient() for i in identities]
            sealed = age.encrypt(b"x", recipients)
            results[kind]["start"].append(per_op_us(lambda r=recipients: age.encrypt(b"", r), args.n))
            results[kind]["open"].append(
                per_op_us(lambda s=sealed, i=identities: age.decrypt(s, i[-1:]), args.n)
            )
            results[kind]["own_key"].append(
                per_op_us(lambda r=recipients: keys.new_recording_key(r), args.n // 4)
            )
    print(
        f"{'recipient':18} {'header, 1 recipient':>20} {'header, 2':>10} {'start µs':>9} {'open µs':>8} {'own key µs':>11}"
    )
    for kind, identities in ids.items():
        r = results[kind]
        one, two = (
            header_bytes([identities[0].recipient()]),
            header_bytes([i.recipient() for i in identities]),
        )
        print(
            f"{kind:18} {one:>20} {two:>10} {min(r['start']):>9.0f} {min(r['open']):>8.0f} {min(r['own_key']):>11.0f}"
        )
    x, h = results["X25519"], results["MLKEM768-X25519"]
    print(
        f"hybrid / X25519: start {min(h['start']) / min(x['start']):.2f}x, open {min(h['open']) / min(x['open']):.2f}x, "
        f"own key {min(h['own_key']) / min(x['own_key']):.2f}x (two recipients; minimum of {args.rounds} rounds)"
    )


if __name__ == "__main__":
    main()
