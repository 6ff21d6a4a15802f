"""X25519 recipients (`age1...`) and identities (`AGE-SECRET-KEY-1...`), and identity files.

The gateway itself only ever parses recipients. Identities are parsed by the CLI, from a file
the operator supplies, at the moment of decryption.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from . import bech32
from .errors import KeyFormatError

RECIPIENT_HRP = "age"
IDENTITY_HRP = "age-secret-key-"


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


def parse_recipient(text: str) -> Recipient:
    """Parse an `age1...` X25519 recipient as `age-keygen -y` prints it."""
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
    if hrp != RECIPIENT_HRP:
        raise KeyFormatError(f"not an age X25519 recipient (prefix {hrp!r}): {text[:16]}...")
    if len(data) != 32:
        raise KeyFormatError(f"age recipient has {len(data)} bytes, expected 32")
    return Recipient(data)


def parse_identity(text: str) -> Identity:
    """Parse an `AGE-SECRET-KEY-1...` X25519 identity."""
    text = text.strip()
    if text != text.upper():
        raise KeyFormatError("identity must be uppercase")
    try:
        hrp, data = bech32.decode(text)
    except KeyFormatError as e:
        raise KeyFormatError(f"not an age identity ({e})") from None
    if hrp != IDENTITY_HRP:
        raise KeyFormatError(f"not an age X25519 identity (prefix {hrp.upper()!r})")
    if len(data) != 32:
        raise KeyFormatError(f"age identity has {len(data)} bytes, expected 32")
    return Identity(X25519PrivateKey.from_private_bytes(data))


def parse_identities(text: str, source: str = "identity file") -> list[Identity]:
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


def load_identity_file(path: str | Path) -> list[Identity]:
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
