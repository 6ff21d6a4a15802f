"""The key derivations of age v1, in one place (as age's own primitives.go): every key the
format uses comes from HKDF-SHA-256 with the label the specification gives it."""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

X25519_LABEL = b"age-encryption.org/v1/X25519"


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def header_mac(file_key: bytes, header_bytes: bytes) -> bytes:
    """The MAC on the header's closing line: HMAC-SHA-256 under HKDF(file key, "header")."""
    return hmac.new(hkdf(file_key, b"", b"header"), header_bytes, hashlib.sha256).digest()


def payload_key(file_key: bytes, nonce: bytes) -> bytes:
    """The STREAM key: HKDF(file key, salt = the payload's 16-byte nonce, "payload")."""
    return hkdf(file_key, nonce, b"payload")


def x25519_wrap_key(shared: bytes, share: bytes, recipient_pub: bytes) -> bytes:
    """The key that wraps the file key in an X25519 stanza."""
    return hkdf(shared, share + recipient_pub, X25519_LABEL)
