"""Incremental age v1 encryption.

The writer hands each piece of ciphertext to a sink the moment it exists: the header and
payload nonce at once, then every sealed 64 KiB chunk. A full chunk is sealed as soon as the
first byte after it arrives, because age forbids an empty final chunk after data: until then
the writer cannot know whether the chunk is the last one.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Iterable

from . import hybrid, x25519
from .errors import HeaderMACError, KeyFormatError
from .format import Header, Stanza
from .keys import AnyIdentity, AnyRecipient, HybridRecipient, is_post_quantum, parse_recipient
from .primitives import header_mac, payload_key
from .reader import unwrap_file_key
from .stream import CHUNK_SIZE, NONCE_SIZE, StreamSealer

Sink = Callable[[bytes], None]


def check_kinds(recipients: Iterable[AnyRecipient]) -> None:
    """ValueError for a mix of post-quantum and classical recipients: the classical stanza would
    open the file to whoever breaks X25519, undoing the post-quantum one (c2sp.org/age: SHOULD
    NOT)."""
    kinds = {is_post_quantum(r) for r in recipients}
    if len(kinds) > 1:
        raise ValueError(
            "post-quantum (age1pq1...) and X25519 (age1...) recipients mixed: a file encrypted to both "
            "is only as safe as X25519, so give recipients of one kind"
        )


class RecipientListError(ValueError):
    """A list of recipients that cannot be used: entry `index` is not a recipient, or (index
    None) the list mixes kinds."""

    def __init__(self, index: int | None, message: str) -> None:
        super().__init__(message)
        self.index = index


def parse_recipients(texts: Iterable[str]) -> list[AnyRecipient]:
    """The recipients a file is encrypted to, each parsed, as one kind (check_kinds)."""
    recipients = []
    for i, text in enumerate(texts):
        try:
            recipients.append(parse_recipient(text))
        except KeyFormatError as e:
            raise RecipientListError(i, str(e)) from None
    try:
        check_kinds(recipients)
    except ValueError as e:
        raise RecipientListError(None, str(e)) from None
    return recipients


def stanza(file_key: bytes, recipient: AnyRecipient) -> Stanza:
    """The file key wrapped to one recipient, by its kind."""
    if isinstance(recipient, HybridRecipient):
        return hybrid.wrap(file_key, recipient)
    return x25519.wrap(file_key, recipient)


class AgeWriter:
    """Encrypt to one or more recipients of one kind, emitting ciphertext through `sink`."""

    def __init__(self, recipients: Iterable[AnyRecipient], sink: Sink) -> None:
        recipients = list(recipients)
        if not recipients:
            raise ValueError("at least one recipient is required")
        check_kinds(recipients)
        self._sink = sink
        file_key = os.urandom(16)
        header = Header([stanza(file_key, r) for r in recipients])
        header.mac = header_mac(file_key, header.marshal_without_mac())
        nonce = os.urandom(NONCE_SIZE)
        self._sealer = StreamSealer(payload_key(file_key, nonce))
        self._buf = bytearray()
        self.plaintext_bytes = 0
        self.ciphertext_bytes = 0
        self.closed = False
        self._emit(header.marshal() + nonce)

    def _emit(self, data: bytes) -> None:
        self.ciphertext_bytes += len(data)
        self._sink(data)

    @property
    def chunks_sealed(self) -> int:
        return self._sealer.counter

    @property
    def buffered(self) -> int:
        """Plaintext bytes held in memory, not yet sealed."""
        return len(self._buf)

    def write(self, data: bytes) -> None:
        if self.closed:
            raise ValueError("write to a closed AgeWriter")
        self._buf += data
        self.plaintext_bytes += len(data)
        while len(self._buf) > CHUNK_SIZE:
            chunk = bytes(self._buf[:CHUNK_SIZE])
            del self._buf[:CHUNK_SIZE]
            self._emit(self._sealer.seal(chunk, last=False))

    def close(self) -> None:
        """Seal what is buffered as the final chunk."""
        if self.closed:
            return
        self._emit(self._sealer.seal(bytes(self._buf), last=True))
        self.wipe()
        self.closed = True

    def wipe(self) -> None:
        """Forget buffered plaintext without sealing it (the recording is being discarded)."""
        self._buf[:] = bytes(len(self._buf))
        self._buf.clear()


def rewrap_header(
    header: Header, identities: Iterable[AnyIdentity], recipients: Iterable[AnyRecipient]
) -> bytes:
    """A new header for the same file key, and so for the same payload, which is never touched:
    the key unwrapped with `identities` (NoIdentityMatchError if none opens it, HeaderMACError if
    the old header was altered) and wrapped to `recipients`."""
    recipients = list(recipients)
    if not recipients:
        raise ValueError("at least one recipient is required")
    check_kinds(recipients)
    file_key = unwrap_file_key(header, identities)
    if not hmac.compare_digest(header_mac(file_key, header.mac_input), header.mac):
        raise HeaderMACError("header MAC does not verify")
    new = Header([stanza(file_key, r) for r in recipients])
    new.mac = header_mac(file_key, new.marshal_without_mac())
    return new.marshal()


def encrypt(data: bytes, recipients: Iterable[AnyRecipient]) -> bytes:
    """Encrypt a small message in memory."""
    out: list[bytes] = []
    w = AgeWriter(recipients, out.append)
    w.write(data)
    w.close()
    return b"".join(out)
