"""The writer's chunk emission and the reader's typed errors and recovery mode."""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import age
from gateway.age.stream import CHUNK_SIZE, ENCRYPTED_CHUNK_SIZE


def sealed_pieces(data: bytes, recipient: age.Recipient, close: bool = True) -> list[bytes]:
    out: list[bytes] = []
    w = age.AgeWriter([recipient], out.append)
    w.write(data)
    if close:
        w.close()
    return out


def test_writer_emits_header_then_each_chunk_once_it_is_known_not_last(identity: age.Identity) -> None:
    out: list[bytes] = []
    w = age.AgeWriter([identity.recipient()], out.append)
    assert len(out) == 1 and out[0].startswith(b"age-encryption.org/v1\n")
    w.write(b"x" * CHUNK_SIZE)
    assert len(out) == 1, "a full chunk may still be the last one"
    w.write(b"y")
    assert len(out) == 2 and len(out[1]) == ENCRYPTED_CHUNK_SIZE
    w.write(b"z" * (2 * CHUNK_SIZE))
    assert len(out) == 4 and w.buffered == 1
    w.close()
    assert len(out) == 5 and len(out[4]) == 1 + 16
    assert age.decrypt(b"".join(out), [identity]) == b"x" * CHUNK_SIZE + b"y" + b"z" * 2 * CHUNK_SIZE


def test_no_identity_match(identity: age.Identity) -> None:
    ct = age.encrypt(b"hello", [identity.recipient()])
    with pytest.raises(age.NoIdentityMatchError):
        age.decrypt(ct, [age.Identity.generate()])


def test_tampered_header_fails_mac(identity: age.Identity) -> None:
    ct = bytearray(age.encrypt(b"hello", [identity.recipient()]))
    # Add a stanza the MAC does not cover: the header parses, the MAC must not verify.
    forged = ct.replace(b"\n---", b"\n-> grease\n\n---", 1)
    with pytest.raises(age.HeaderMACError):
        age.decrypt(bytes(forged), [identity])


@pytest.mark.parametrize("garbage", [b"not an age file", b"", b"age-encryption.org/v1\n-> X25519\n"])
def test_not_age_is_header_error(identity: age.Identity, garbage: bytes) -> None:
    with pytest.raises(age.HeaderError):
        age.decrypt(garbage, [identity])


def test_a_huge_header_is_refused_early(identity: age.Identity) -> None:
    """A stanza of 300,000 body lines (14 MB of header) is refused once the header passes its
    bound, without reading the rest."""
    body = b"A" * 64 + b"\n"
    src = io.BytesIO(b"age-encryption.org/v1\n-> X25519 abc\n" + body * 300_000 + b"\n--- x\n")
    with pytest.raises(age.HeaderError, match="header larger than"):
        age.AgeReader(src, [identity])
    assert src.tell() < 2 * age.format.MAX_HEADER_SIZE


def test_many_recipients_fit_the_header_bound(identity: age.Identity) -> None:
    others = [age.Identity.generate().recipient() for _ in range(200)]
    ct = age.encrypt(b"hello", [*others, identity.recipient()])
    assert age.decrypt(ct, [identity]) == b"hello"


def test_truncated_strict_and_recovered(identity: age.Identity) -> None:
    data = os.urandom(3 * CHUNK_SIZE + 100)
    pieces = sealed_pieces(data, identity.recipient())
    without_final = b"".join(pieces[:-1])
    with pytest.raises(age.TruncatedError) as err:
        age.decrypt(without_final, [identity])
    assert err.value.plaintext_bytes == 3 * CHUNK_SIZE
    reader = age.AgeReader(io.BytesIO(without_final), [identity], recover=True)
    assert reader.read_all() == data[: 3 * CHUNK_SIZE]
    assert reader.truncated


def test_torn_tail_is_recovered_but_tampering_is_not(identity: age.Identity) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 5000)
    pieces = sealed_pieces(data, identity.recipient())
    torn = b"".join(pieces[:-1]) + pieces[-1][:1000]
    with pytest.raises(age.ChunkAuthError):
        age.decrypt(torn, [identity])
    reader = age.AgeReader(io.BytesIO(torn), [identity], recover=True)
    assert reader.read_all() == data[: 2 * CHUNK_SIZE] and reader.truncated

    whole = bytearray(b"".join(pieces))
    whole[len(pieces[0]) + 10] ^= 1  # inside the first chunk, with data after it
    for recover in (False, True):
        with pytest.raises(age.ChunkAuthError):
            age.AgeReader(io.BytesIO(bytes(whole)), [identity], recover=recover).read_all()


def test_trailing_data(identity: age.Identity) -> None:
    ct = age.encrypt(os.urandom(CHUNK_SIZE), [identity.recipient()])
    with pytest.raises(age.TrailingDataError):
        age.decrypt(ct + b"junk", [identity])


def test_recovery_of_a_complete_file_is_not_truncated(identity: age.Identity) -> None:
    data = os.urandom(CHUNK_SIZE * 2)
    reader = age.AgeReader(io.BytesIO(age.encrypt(data, [identity.recipient()])), [identity], recover=True)
    assert reader.read_all() == data and not reader.truncated


@settings(max_examples=40, deadline=None)
@given(size=st.integers(min_value=0, max_value=4 * CHUNK_SIZE + 3), cut=st.integers(min_value=0))
def test_any_prefix_recovers_a_prefix_of_the_plaintext(size: int, cut: int) -> None:
    """Whatever point a crash stops the file at, recovery yields only authentic leading plaintext."""
    ident = age.Identity.generate()
    data = os.urandom(size)
    ct = age.encrypt(data, [ident.recipient()])
    prefix = ct[: cut % (len(ct) + 1)]
    try:
        reader = age.AgeReader(io.BytesIO(prefix), [ident], recover=True)
        got = reader.read_all()
    except (age.HeaderError, age.PayloadError):
        return  # nothing sealed survived: the header or the first chunk is incomplete
    assert data.startswith(got)
    assert reader.truncated == (prefix != ct)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "age1",
        "age1qqqqqqqqqqqqqqqq",
        "AGE1XMWWC06LY3EE5RYTXM9MFLAZ2U56JJJ36S0MYPDRWSVLUL66MV4Q47RYEF",
        "age1xmwwc06ly3ee5rytxm9mflaz2u56jjj36s0mypdrwsvlul66mv4q47ryeg",
        "ssh-ed25519 AAAA",
    ],
)
def test_malformed_recipients_are_refused(text: str) -> None:
    with pytest.raises(age.KeyFormatError):
        age.parse_recipient(text)


def test_identity_file_errors(tmp_path) -> None:
    p = tmp_path / "id.txt"
    p.write_text("# only a comment\n")
    with pytest.raises(age.KeyFormatError, match="no identity"):
        age.load_identity_file(p)
    p.write_text("AGE-SECRET-KEY-1NOTAKEY\n")
    with pytest.raises(age.KeyFormatError, match="line 1"):
        age.load_identity_file(p)
    with pytest.raises(age.KeyFormatError, match="cannot read"):
        age.load_identity_file(tmp_path / "missing.txt")


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE, 3 * CHUNK_SIZE + 7]
)
def test_payload_shape_counts_the_chunks_of_real_payloads(identity: age.Identity, size: int) -> None:
    from gateway.age import format as fmt
    from gateway.age.stream import payload_shape

    ct = age.encrypt(os.urandom(size), [identity.recipient()])
    src = io.BytesIO(ct)
    fmt.parse(src)
    payload = len(ct) - src.tell()
    expected_chunks = max(1, -(-size // CHUNK_SIZE))
    assert payload_shape(payload) == (expected_chunks, True)
    assert payload_shape(payload - 1) is None or payload_shape(payload - 1)[0] <= expected_chunks
    assert payload_shape(3) is None  # shorter than a nonce and a tag
