"""The mlkem768x25519 recipient stanza (c2sp.org/age): the file key sealed with HPKE base mode,
KEM MLKEM768-X25519 (X-Wing), HKDF-SHA256, ChaCha20-Poly1305, the spec's info string and no
associated data, all of it pyca/cryptography's HPKE. The stanza is `-> mlkem768x25519 ENC`
with the 1120-byte encapsulated key, and the 32-byte sealed file key as its body."""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from .errors import HeaderError
from .format import Stanza, b64decode, b64encode
from .keys import HybridIdentity, HybridRecipient

STANZA_TYPE = "mlkem768x25519"
INFO = b"age-encryption.org/mlkem768x25519"
ENC_BYTES = 1120  # the ML-KEM-768 ciphertext (1088), then the X25519 share (32)
BODY_BYTES = 32  # the 16-byte file key and its tag
_SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


def wrap(file_key: bytes, recipient: HybridRecipient) -> Stanza:
    sealed = _SUITE.encrypt(file_key, recipient.key, info=INFO)
    return Stanza(STANZA_TYPE, [b64encode(sealed[:ENC_BYTES])], sealed[ENC_BYTES:])


def unwrap(stanza: Stanza, identity: HybridIdentity) -> bytes | None:
    """The file key, or None if this stanza is for another key. Malformed stanzas raise."""
    if stanza.type != STANZA_TYPE:
        return None
    if len(stanza.args) != 1:
        raise HeaderError("mlkem768x25519 stanza must have exactly two arguments")
    enc = b64decode(stanza.args[0])
    if len(enc) != ENC_BYTES:
        raise HeaderError(f"mlkem768x25519 enc must be {ENC_BYTES} bytes")
    # Checked before decrypting, against partitioning oracles (the spec says MUST).
    if len(stanza.body) != BODY_BYTES:
        raise HeaderError(f"mlkem768x25519 stanza body must be {BODY_BYTES} bytes")
    try:
        # A low-order X25519 share gives the all-zero shared secret X25519 forbids.
        identity.x25519_key.exchange(X25519PublicKey.from_public_bytes(enc[-32:]))
    except ValueError:
        raise HeaderError("mlkem768x25519 X25519 share is a low-order point") from None
    try:
        return _SUITE.decrypt(enc + stanza.body, identity.private_key, info=INFO)
    except InvalidTag:
        return None
