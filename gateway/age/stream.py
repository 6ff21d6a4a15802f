"""The age STREAM construction: ChaCha20-Poly1305 over 64 KiB chunks.

Each chunk's nonce is an 11-byte big-endian counter and a one-byte last-chunk flag, so a
chunk cannot be moved, dropped or marked final by anyone without the payload key.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from .primitives import payload_key

__all__ = [
    "CHUNK_SIZE",
    "ENCRYPTED_CHUNK_SIZE",
    "NONCE_SIZE",
    "TAG_SIZE",
    "StreamOpener",
    "StreamSealer",
    "chunk_nonce",
    "payload_key",
    "payload_shape",
]

CHUNK_SIZE = 64 * 1024
TAG_SIZE = 16
ENCRYPTED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
NONCE_SIZE = 16
_MAX_COUNTER = (1 << 88) - 1


def payload_shape(payload_len: int) -> tuple[int, bool] | None:
    """(chunks, ends_in_a_plausible_final_chunk) for a payload of `payload_len` bytes (nonce
    included), or None if no STREAM payload has that length.

    Non-final chunks are exactly 64 KiB + tag; the final one holds 1 byte to 64 KiB, or 0 bytes
    when it is the only chunk. Without the key a missing final chunk cannot be told from a
    full final chunk.
    """
    body = payload_len - NONCE_SIZE
    if body < TAG_SIZE:
        return None
    full, rest = divmod(body, ENCRYPTED_CHUNK_SIZE)
    if rest == 0:
        return full, True
    if rest < TAG_SIZE or (rest == TAG_SIZE and full > 0):
        return None  # a torn chunk, or an empty final chunk after data
    return full + 1, True


def chunk_nonce(counter: int, last: bool) -> bytes:
    if counter > _MAX_COUNTER:
        raise OverflowError("STREAM counter exhausted")
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class StreamSealer:
    """Seals chunks in order; the caller decides which one is last."""

    def __init__(self, key: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)
        self.counter = 0
        self.finished = False

    def seal(self, plaintext: bytes, last: bool) -> bytes:
        if self.finished:
            raise ValueError("STREAM already finished")
        if not last and len(plaintext) != CHUNK_SIZE:
            raise ValueError("a chunk that is not last must be full")
        sealed = self._aead.encrypt(chunk_nonce(self.counter, last), plaintext, None)
        self.counter += 1
        self.finished = last
        return sealed


class StreamOpener:
    """Opens chunks in order. `open` returns None when the tag does not verify for that flag."""

    def __init__(self, key: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)
        self.counter = 0

    def try_open(self, sealed: bytes, last: bool) -> bytes | None:
        try:
            plaintext = self._aead.decrypt(chunk_nonce(self.counter, last), sealed, None)
        except InvalidTag:
            return None
        self.counter += 1
        return plaintext
