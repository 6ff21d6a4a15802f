"""Typed errors of the age v1 reader and key parsers.

Each failure class of the format gets its own type, so that callers (the CLI's exit codes,
the recovery path) can tell a wrong key from a damaged file without parsing messages.
"""


class AgeError(Exception):
    """Base class of every age format error."""


class KeyFormatError(AgeError):
    """A recipient or identity string is not a valid age X25519 key."""


class HeaderError(AgeError):
    """The header is malformed: version line, stanza syntax, base64, or a recipient stanza."""


class NoIdentityMatchError(AgeError):
    """None of the supplied identities unwraps the file key."""


class HeaderMACError(AgeError):
    """The header MAC does not verify: the header was altered after it was written."""


class PayloadError(AgeError):
    """The payload is damaged; `plaintext_bytes` bytes were authenticated before the failure."""

    def __init__(self, message: str, plaintext_bytes: int = 0) -> None:
        super().__init__(message)
        self.plaintext_bytes = plaintext_bytes


class ChunkAuthError(PayloadError):
    """A STREAM chunk failed authentication (tampered, or a torn write)."""


class TruncatedError(PayloadError):
    """The payload ends without a final chunk: every chunk read was authentic, the end is missing."""


class TrailingDataError(PayloadError):
    """Bytes follow the final chunk."""
