"""The C2SP age test vectors (tests/vectors/age-testkit), decrypted by our reader.

Vectors for features the gateway does not implement (scrypt passphrases, ASCII armor) are
skipped by name, and the summary test prints their count. A vector may name several
identities (one "identity:" line each): all of them are tried, as age does.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from pathlib import Path

import pytest

from gateway import age

VECTORS = Path(__file__).parent / "vectors" / "age-testkit"


def load(path: Path) -> tuple[dict[str, str], bytes]:
    """The vector's header (its identities joined by newlines under "identity") and body."""
    raw = path.read_bytes()
    head, _, body = raw.partition(b"\n\n")
    meta: dict[str, str] = {}
    for line in head.decode().splitlines():
        key, _, value = line.partition(": ")
        meta[key] = f"{meta[key]}\n{value}" if key == "identity" and key in meta else value
    if meta.get("compressed") == "zlib":
        body = zlib.decompress(body)
    return meta, body


def unsupported(meta: dict[str, str]) -> str | None:
    if "passphrase" in meta:
        return "scrypt passphrase recipients are not implemented"
    if meta.get("armored") == "yes":
        return "ASCII armor is not implemented"
    return None


ALL = sorted(p for p in VECTORS.iterdir() if p.name != "LICENSE")
SKIPPED = {p.name: r for p in ALL if (r := unsupported(load(p)[0]))}
EXPECTED_ERRORS = {
    "no match": age.NoIdentityMatchError,
    "HMAC failure": age.HeaderMACError,
    "header failure": age.HeaderError,
    "payload failure": age.PayloadError,
}


@pytest.mark.parametrize("path", ALL, ids=[p.name for p in ALL])
def test_vector(path: Path) -> None:
    meta, body = load(path)
    if path.name in SKIPPED:
        pytest.skip(SKIPPED[path.name])
    # A vector without an identity must fail before any key is needed; any key will do.
    identities = (
        [age.parse_identity(line) for line in meta["identity"].splitlines()]
        if "identity" in meta
        else [age.Identity.generate()]
    )
    expect = meta["expect"]
    got = bytearray()
    if expect == "success":
        reader = age.AgeReader(io.BytesIO(body), identities)
        for chunk in reader.chunks():
            got += chunk
        assert hashlib.sha256(got).hexdigest() == meta["payload"]
        return
    with pytest.raises(EXPECTED_ERRORS[expect]):
        reader = age.AgeReader(io.BytesIO(body), identities)
        for chunk in reader.chunks():
            got += chunk
    if expect == "payload failure":
        # What decrypted before the failure is exactly what the vector says.
        assert hashlib.sha256(got).hexdigest() == meta["payload"]


def test_vector_coverage_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """Names and counts what was skipped, so a shrinking run cannot hide."""
    run = len(ALL) - len(SKIPPED)
    with capsys.disabled():
        print(f"\nage-testkit: {len(ALL)} vectors, {run} run, {len(SKIPPED)} skipped as unsupported:")
        by_reason: dict[str, list[str]] = {}
        for name, reason in SKIPPED.items():
            by_reason.setdefault(reason, []).append(name)
        for reason, names in sorted(by_reason.items()):
            print(f"  {len(names):3d} {reason}: {', '.join(names)}")
    assert len(ALL) == 143
    # Only the three unimplemented features may be skipped; every X25519 vector runs.
    assert set(by_reason) <= {
        "scrypt passphrase recipients are not implemented",
        "ASCII armor is not implemented",
        "only X25519 identities are implemented (hybrid ML-KEM is not)",
    }
    assert not [n for n in SKIPPED if n.startswith(("x25519", "stream_", "stanza_", "hmac_", "header_"))]
