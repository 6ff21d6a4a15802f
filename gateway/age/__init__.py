"""age v1 (age-encryption.org/v1) with X25519 and hybrid post-quantum (MLKEM768-X25519)
recipients, on pyca/cryptography.

Pure code: no files, sockets or threads. Readers take a binary stream, writers a sink.
"""

from .errors import (
    AgeError,
    ChunkAuthError,
    HeaderError,
    HeaderMACError,
    KeyFormatError,
    NoIdentityMatchError,
    PayloadError,
    TrailingDataError,
    TruncatedError,
)
from .keys import (
    AnyIdentity,
    AnyRecipient,
    HybridIdentity,
    HybridRecipient,
    Identity,
    Recipient,
    is_post_quantum,
    load_identity_file,
    parse_identities,
    parse_identity,
    parse_recipient,
)
from .reader import AgeReader, decrypt
from .stream import CHUNK_SIZE, ENCRYPTED_CHUNK_SIZE
from .writer import AgeWriter, RecipientListError, check_kinds, encrypt, parse_recipients, rewrap_header

__all__ = [
    "AgeError",
    "ChunkAuthError",
    "HeaderError",
    "HeaderMACError",
    "KeyFormatError",
    "NoIdentityMatchError",
    "PayloadError",
    "TrailingDataError",
    "TruncatedError",
    "AnyIdentity",
    "AnyRecipient",
    "HybridIdentity",
    "HybridRecipient",
    "Identity",
    "Recipient",
    "is_post_quantum",
    "check_kinds",
    "parse_recipients",
    "RecipientListError",
    "rewrap_header",
    "load_identity_file",
    "parse_identities",
    "parse_identity",
    "parse_recipient",
    "AgeReader",
    "decrypt",
    "CHUNK_SIZE",
    "ENCRYPTED_CHUNK_SIZE",
    "AgeWriter",
    "encrypt",
]
