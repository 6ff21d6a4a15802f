"""Our age files against the real `age` CLI and pyrage, both directions."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pyrage
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import age
from tests.conftest import require_tool

SIZES = [0, 1, 65535, 65536, 65537, 3 * 65536, 5 * 1024 * 1024 + 17]


def age_cli_decrypt(ciphertext: bytes, identity_path: Path) -> bytes:
    out = subprocess.run(
        [require_tool("age"), "-d", "-i", str(identity_path)], input=ciphertext, capture_output=True
    )
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout


def age_cli_encrypt(plaintext: bytes, recipient: str) -> bytes:
    out = subprocess.run([require_tool("age"), "-r", recipient], input=plaintext, capture_output=True)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout


def test_keygen_identity_parses_to_the_same_recipient(identity_file: tuple[Path, str]) -> None:
    path, recipient = identity_file
    [ident] = age.load_identity_file(path)
    assert str(ident.recipient()) == recipient
    assert str(age.parse_recipient(recipient)) == recipient


def test_our_identity_encoding_is_accepted_by_age_keygen(tmp_path: Path) -> None:
    ident = age.Identity.generate()
    path = tmp_path / "ours.txt"
    path.write_text(f"# created: by the gateway\n# public key: {ident.recipient()}\n{ident.encode()}\n")
    printed = subprocess.run(["age-keygen", "-y", str(path)], capture_output=True, text=True, check=True)
    assert printed.stdout.strip() == str(ident.recipient())


@pytest.mark.parametrize("size", SIZES)
def test_ours_decrypt_with_age_cli_and_pyrage(size: int, identity_file: tuple[Path, str]) -> None:
    path, recipient = identity_file
    plaintext = os.urandom(size)
    ciphertext = age.encrypt(plaintext, [age.parse_recipient(recipient)])
    assert age_cli_decrypt(ciphertext, path) == plaintext
    pyrage_identity = pyrage.x25519.Identity.from_str(path.read_text().splitlines()[-1])
    assert pyrage.decrypt(ciphertext, [pyrage_identity]) == plaintext


@pytest.mark.parametrize("size", SIZES)
def test_theirs_decrypt_with_ours(size: int, identity_file: tuple[Path, str]) -> None:
    path, recipient = identity_file
    identities = age.load_identity_file(path)
    plaintext = os.urandom(size)
    assert age.decrypt(age_cli_encrypt(plaintext, recipient), identities) == plaintext
    from_pyrage = pyrage.encrypt(plaintext, [pyrage.x25519.Recipient.from_str(recipient)])
    assert age.decrypt(from_pyrage, identities) == plaintext


def test_many_recipients_each_can_decrypt(tmp_path: Path) -> None:
    keys = []
    for i in range(3):
        p = tmp_path / f"k{i}.txt"
        subprocess.run(["age-keygen", "-o", str(p)], check=True, capture_output=True)
        keys.append(p)
    recipients = [age.load_identity_file(p)[0].recipient() for p in keys]
    plaintext = os.urandom(70000)
    ciphertext = age.encrypt(plaintext, recipients)
    for p in keys:
        assert age_cli_decrypt(ciphertext, p) == plaintext


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.binary(min_size=0, max_size=300_000),
    pieces=st.lists(st.integers(min_value=1, max_value=70_000), min_size=1, max_size=20),
)
def test_incremental_writes_round_trip_through_age_cli(
    data: bytes, pieces: list[int], identity_file: tuple[Path, str]
) -> None:
    """However the plaintext is split into writes, the age CLI reads back the same bytes."""
    path, recipient = identity_file
    out: list[bytes] = []
    w = age.AgeWriter([age.parse_recipient(recipient)], out.append)
    pos = 0
    i = 0
    while pos < len(data):
        n = pieces[i % len(pieces)]
        w.write(data[pos : pos + n])
        pos += n
        i += 1
    w.close()
    assert age_cli_decrypt(b"".join(out), path) == data
