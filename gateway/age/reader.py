"""Streaming age v1 decryption, strict by default, with an explicit recovery mode.

Strict mode raises a typed error for every defect. Recovery mode exists for recordings whose
writer died: it yields every authenticated chunk of a payload that has no final chunk (or
ends in a torn partial chunk) and reports the file as truncated. A chunk that fails to
authenticate with data after it is tampering, and is an error in both modes.
"""

from __future__ import annotations

import hmac
import io
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from . import format as fmt
from . import hybrid, x25519
from .errors import (
    ChunkAuthError,
    HeaderError,
    HeaderMACError,
    NoIdentityMatchError,
    PayloadError,
    TrailingDataError,
    TruncatedError,
)
from .keys import AnyIdentity, HybridIdentity
from .primitives import header_mac, payload_key
from .stream import ENCRYPTED_CHUNK_SIZE, NONCE_SIZE, StreamOpener


def _read_upto(src: BinaryIO, n: int) -> bytes:
    parts = []
    while n > 0:
        b = src.read(n)
        if not b:
            break
        parts.append(b)
        n -= len(b)
    return b"".join(parts)


def unwrap_file_key(header: fmt.Header, identities: Iterable[AnyIdentity]) -> bytes:
    if any(s.type == "scrypt" for s in header.stanzas) and len(header.stanzas) != 1:
        raise HeaderError("an scrypt stanza must be the only stanza")
    for identity in identities:
        for stanza in header.stanzas:
            file_key = (
                hybrid.unwrap(stanza, identity)
                if isinstance(identity, HybridIdentity)
                else x25519.unwrap(stanza, identity)
            )
            if file_key is not None:
                if len(file_key) != 16:
                    raise HeaderError("file key must be 16 bytes")
                return file_key
    raise NoIdentityMatchError("no identity matches any recipient of this file")


class AgeReader:
    """Decrypts `src` with `identities`. Iterate `chunks()` to stream the plaintext.

    After iteration in recovery mode, `truncated` tells whether the final chunk was missing.
    """

    def __init__(self, src: BinaryIO, identities: Iterable[AnyIdentity], *, recover: bool = False) -> None:
        self._src = src
        self.recover = recover
        self.truncated = False
        self.plaintext_bytes = 0
        self.header = fmt.parse(src)
        file_key = unwrap_file_key(self.header, identities)
        if not hmac.compare_digest(header_mac(file_key, self.header.mac_input), self.header.mac):
            raise HeaderMACError("header MAC does not verify")
        nonce = _read_upto(src, NONCE_SIZE)
        if len(nonce) != NONCE_SIZE:
            raise HeaderError("payload nonce is missing or short")
        self._opener = StreamOpener(payload_key(file_key, nonce))

    def _truncated(self, message: str) -> None:
        if not self.recover:
            raise TruncatedError(message, self.plaintext_bytes)
        self.truncated = True

    def chunks(self) -> Iterator[bytes]:
        opener = self._opener
        sealed = _read_upto(self._src, ENCRYPTED_CHUNK_SIZE)
        if not sealed:
            raise PayloadError("payload has no chunks")
        while True:
            following = (
                _read_upto(self._src, ENCRYPTED_CHUNK_SIZE) if len(sealed) == ENCRYPTED_CHUNK_SIZE else b""
            )
            if following:
                plaintext = opener.try_open(sealed, last=False)
                if plaintext is None:
                    final = opener.try_open(sealed, last=True)
                    if final is None:
                        raise ChunkAuthError(
                            f"chunk {opener.counter} fails authentication", self.plaintext_bytes
                        )
                    # Like age's own reader, hand out the authentic final chunk, then refuse the rest.
                    self.plaintext_bytes += len(final)
                    yield final
                    raise TrailingDataError("data after the final chunk", self.plaintext_bytes)
                self.plaintext_bytes += len(plaintext)
                yield plaintext
                sealed = following
                continue
            # `sealed` is the last piece of the file: it must be the final chunk.
            plaintext = opener.try_open(sealed, last=True)
            if plaintext is None:
                if len(sealed) == ENCRYPTED_CHUNK_SIZE:
                    plaintext = opener.try_open(sealed, last=False)
                    if plaintext is not None:
                        self.plaintext_bytes += len(plaintext)
                        yield plaintext
                        self._truncated("payload ends without a final chunk")
                        return
                if self.recover:
                    # A torn write of the chunk that was being appended when the writer died.
                    self.truncated = True
                    return
                raise ChunkAuthError(f"chunk {opener.counter} fails authentication", self.plaintext_bytes)
            if not plaintext and opener.counter > 1:
                raise PayloadError("final chunk is empty", self.plaintext_bytes)
            self.plaintext_bytes += len(plaintext)
            yield plaintext
            return

    def read_all(self) -> bytes:
        return b"".join(self.chunks())


def decrypt(data: bytes, identities: Iterable[AnyIdentity], *, recover: bool = False) -> bytes:
    """Decrypt a message held in memory."""
    return AgeReader(io.BytesIO(data), identities, recover=recover).read_all()
