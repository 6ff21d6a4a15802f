"""Recipients and identities, and identity files: X25519 (`age1...`, `AGE-SECRET-KEY-1...`)
and the hybrid post-quantum MLKEM768-X25519, i.e. X-Wing (`age1pq1...`,
`AGE-SECRET-KEY-PQ-1...`), as c2sp.org/age specifies them.

The gateway itself only ever parses recipients. Identities are parsed by the CLI, from a file
the operator supplies, at the moment of decryption.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from . import bech32
from .errors import KeyFormatError

RECIPIENT_HRP = "age"
IDENTITY_HRP = "age-secret-key-"
PQ_RECIPIENT_HRP = "age1pq"
PQ_IDENTITY_HRP = "age-secret-key-pq-"
MLKEM768_PUBLIC_BYTES = 1184
PQ_RECIPIENT_BYTES = MLKEM768_PUBLIC_BYTES + 32  # the ML-KEM-768 encapsulation key, then X25519's


@dataclass(frozen=True)
class Recipient:
    """An X25519 public key to encrypt to."""

    public_bytes: bytes

    def __str__(self) -> str:
        return bech32.encode(RECIPIENT_HRP, self.public_bytes)

    @property
    def key(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(self.public_bytes)


class Identity:
    """An X25519 private key. Its repr never shows the secret."""

    __slots__ = ("_key",)

    def __init__(self, key: X25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> Identity:
        return cls(X25519PrivateKey.generate())

    @property
    def private_key(self) -> X25519PrivateKey:
        return self._key

    def recipient(self) -> Recipient:
        return Recipient(self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def encode(self) -> str:
        raw = self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return bech32.encode(IDENTITY_HRP, raw).upper()

    def __repr__(self) -> str:
        return f"Identity(recipient={self.recipient()})"


@dataclass(frozen=True)
class HybridRecipient:
    """An MLKEM768-X25519 (X-Wing) public key to encrypt to: post-quantum and classical at once."""

    public_bytes: bytes

    def __str__(self) -> str:
        return bech32.encode(PQ_RECIPIENT_HRP, self.public_bytes)

    @property
    def key(self) -> hpke.MLKEM768X25519PublicKey:
        return hpke.MLKEM768X25519PublicKey(
            MLKEM768PublicKey.from_public_bytes(self.public_bytes[:MLKEM768_PUBLIC_BYTES]),
            X25519PublicKey.from_public_bytes(self.public_bytes[MLKEM768_PUBLIC_BYTES:]),
        )


class HybridIdentity:
    """An MLKEM768-X25519 identity: a 32-byte seed, expanded as X-Wing's key generation does
    (SHAKE256 to 96 bytes: the ML-KEM-768 seed, then the X25519 private key), the expansion the
    spec takes from filippo.io/hpke-pq. Its repr never shows the secret."""

    __slots__ = ("_seed", "_mlkem", "_x25519")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise KeyFormatError(f"a post-quantum age identity has 32 bytes, not {len(seed)}")
        expanded = hashlib.shake_256(seed).digest(96)
        self._seed = seed
        self._mlkem = MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
        self._x25519 = X25519PrivateKey.from_private_bytes(expanded[64:])

    @classmethod
    def generate(cls) -> HybridIdentity:
        return cls(os.urandom(32))

    @property
    def private_key(self) -> hpke.MLKEM768X25519PrivateKey:
        return hpke.MLKEM768X25519PrivateKey(self._mlkem, self._x25519)

    @property
    def x25519_key(self) -> X25519PrivateKey:
        """The classical half (a stanza's X25519 share is checked with it before decapsulation)."""
        return self._x25519

    def recipient(self) -> HybridRecipient:
        return HybridRecipient(
            self._mlkem.public_key().public_bytes_raw()
            + self._x25519.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        )

    def encode(self) -> str:
        return bech32.encode(PQ_IDENTITY_HRP, self._seed).upper()

    def __repr__(self) -> str:
        return f"HybridIdentity(recipient={str(self.recipient())[:24]}...)"


# Either kind. A file is encrypted to recipients of one kind (the spec: a file for a post-quantum
# recipient SHOULD NOT also go to a classical one, which would undo the protection).
AnyRecipient = Recipient | HybridRecipient
AnyIdentity = Identity | HybridIdentity


def is_post_quantum(recipient: AnyRecipient) -> bool:
    return isinstance(recipient, HybridRecipient)


def parse_recipient(text: str) -> AnyRecipient:
    """Parse an `age1...` X25519 or `age1pq1...` hybrid recipient, as age-keygen (or `gateway
    keygen --pq`) prints it."""
    text = text.strip()
    if text.upper().startswith("AGE-SECRET-KEY-") or text.upper().startswith("AGE-PLUGIN-"):
        # Never echo any of it: it is someone's private key.
        raise KeyFormatError(
            "this is a private key (an age identity), not a recipient: give the public "
            "key that `age-keygen -y KEYFILE` prints, and keep the identity off the gateway"
        )
    if text.startswith(("ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-")):
        raise KeyFormatError(
            f"not an age recipient: {text.split()[0]} is an SSH public key, which this gateway "
            "does not take; make an age key with `age-keygen` and give what `age-keygen -y` prints"
        )
    if not text.lower().startswith("age1"):
        raise KeyFormatError(f"not an age recipient (an age recipient starts with age1): {text[:16]}...")
    if text != text.lower():
        raise KeyFormatError(f"recipient must be lowercase: {text[:12]}...")
    try:
        hrp, data = bech32.decode(text)
    except KeyFormatError as e:
        raise KeyFormatError(f"not an age recipient ({e}): {text[:16]}...") from None
    if hrp == PQ_RECIPIENT_HRP:
        if len(data) != PQ_RECIPIENT_BYTES:
            raise KeyFormatError(
                f"post-quantum age recipient has {len(data)} bytes, expected {PQ_RECIPIENT_BYTES}"
            )
        recipient = HybridRecipient(data)
        try:
            recipient.key  # noqa: B018 (an ML-KEM encapsulation key out of range is refused here)
        except ValueError:
            raise KeyFormatError(f"not a valid post-quantum age recipient: {text[:16]}...") from None
        return recipient
    if hrp != RECIPIENT_HRP:
        raise KeyFormatError(f"not an age recipient (prefix {hrp!r}): {text[:16]}...")
    if len(data) != 32:
        raise KeyFormatError(f"age recipient has {len(data)} bytes, expected 32")
    return Recipient(data)


def parse_identity(text: str) -> AnyIdentity:
    """Parse an `AGE-SECRET-KEY-1...` X25519 or `AGE-SECRET-KEY-PQ-1...` hybrid identity."""
    text = text.strip()
    if text != text.upper():
        raise KeyFormatError("identity must be uppercase")
    try:
        hrp, data = bech32.decode(text)
    except KeyFormatError as e:
        raise KeyFormatError(f"not an age identity ({e})") from None
    if hrp == PQ_IDENTITY_HRP:
        return HybridIdentity(data)
    if hrp != IDENTITY_HRP:
        raise KeyFormatError(f"not an age identity (prefix {hrp.upper()!r})")
    if len(data) != 32:
        raise KeyFormatError(f"age identity has {len(data)} bytes, expected 32")
    return Identity(X25519PrivateKey.from_private_bytes(data))


def parse_identities(text: str, source: str = "identity file") -> list[AnyIdentity]:
    """Parse an identity file as `age-keygen` writes it: one key a line, `#` comments, blank lines."""
    identities = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(parse_identity(line))
        except KeyFormatError as e:
            raise KeyFormatError(f"{source} line {lineno}: {e}") from None
    if not identities:
        raise KeyFormatError(f"{source} holds no identity")
    return identities


def load_identity_file(path: str | Path) -> list[AnyIdentity]:
    """Read and parse an identity file; unreadable or malformed files raise KeyFormatError."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise KeyFormatError(f"cannot read identity file {path}: {e.strerror}") from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise KeyFormatError(f"identity file {path} is not text") from None
    return parse_identities(text, source=str(path))
