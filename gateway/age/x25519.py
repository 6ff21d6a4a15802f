"""The X25519 recipient stanza: wrap a file key to a public key, unwrap it with an identity."""

from __future__ import annotations

import hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import HeaderError
from .format import Stanza, b64decode, b64encode
from .keys import Identity, Recipient
from .primitives import x25519_wrap_key

STANZA_TYPE = "X25519"
_ZERO_NONCE = bytes(12)


def _wrap_key(shared: bytes, share: bytes, recipient_pub: bytes) -> bytes:
    if hmac.compare_digest(shared, bytes(32)):
        raise HeaderError("X25519 share is a low-order point")
    return x25519_wrap_key(shared, share, recipient_pub)


def wrap(file_key: bytes, recipient: Recipient) -> Stanza:
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    shared = ephemeral.exchange(recipient.key)
    key = _wrap_key(shared, share, recipient.public_bytes)
    body = ChaCha20Poly1305(key).encrypt(_ZERO_NONCE, file_key, None)
    return Stanza(STANZA_TYPE, [b64encode(share)], body)


def unwrap(stanza: Stanza, identity: Identity) -> bytes | None:
    """The file key, or None if this stanza is for another key. Malformed stanzas raise."""
    if stanza.type != STANZA_TYPE:
        return None
    if len(stanza.args) != 1:
        raise HeaderError("X25519 stanza must have exactly one argument")
    share = b64decode(stanza.args[0])
    if len(share) != 32:
        raise HeaderError("X25519 share must be 32 bytes")
    if len(stanza.body) != 32:
        raise HeaderError("X25519 stanza body must be 32 bytes")
    try:
        shared = identity.private_key.exchange(X25519PublicKey.from_public_bytes(share))
    except ValueError:
        # cryptography refuses an all-zero result itself on some versions.
        raise HeaderError("X25519 share is a low-order point") from None
    key = _wrap_key(shared, share, identity.recipient().public_bytes)
    try:
        return ChaCha20Poly1305(key).decrypt(_ZERO_NONCE, stanza.body, None)
    except InvalidTag:
        return None
