"""Signed recordings: an Ed25519 signature over each finished recording's manifest (the
ciphertext hash, size, duration, status and the consent decision's digest). Verifying needs
only the public key: an auditor checks every recording without being able to decrypt one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..storage.audit import KeyLookup, key_fingerprint
from ..storage.rows import RecordingRow

# Receipt fields that change after the decision (the call ends, consent is withdrawn).
VOLATILE_RECEIPT_FIELDS = ("ended_at", "state", "withdrawn_after_s")


def decision_digest(receipt: dict[str, Any] | None) -> str | None:
    if receipt is None:
        return None
    fixed = {k: v for k, v in receipt.items() if k not in VOLATILE_RECEIPT_FIELDS}
    return hashlib.sha256(json.dumps(fixed, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def manifest(row: RecordingRow, receipt: dict[str, Any] | None) -> bytes:
    return json.dumps(
        {
            "v": 1,
            "id": row.id,
            "call_id": row.call_id,
            "status": row.status,
            "bytes": row.bytes,
            "sha256": row.sha256,
            "duration_s": row.duration_s,
            "origin": row.origin,
            "consent": decision_digest(receipt),
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def create_key(private: Path, public: Path) -> None:
    key = Ed25519PrivateKey.generate()
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    public.chmod(0o644)


def load_private(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


def sign(key: Ed25519PrivateKey, row: RecordingRow, receipt: dict[str, Any] | None) -> str:
    """`FINGERPRINT:SIGNATURE`: the signer's key named, so that any node can check it."""
    return f"{key_fingerprint(key.public_key())}:{key.sign(manifest(row, receipt)).hex()}"


def check(keys: KeyLookup, row: RecordingRow, receipt: dict[str, Any] | None) -> str | None:
    """Why the row's signature does not hold (None: it does). A signature made before they
    named their key is checked with this gateway's own key (`keys(None)`)."""
    if not row.signature:
        return "unsigned"
    fingerprint, sep, signature = row.signature.rpartition(":")
    public = keys(fingerprint if sep else None)
    if public is None:
        return (
            f"signed by key {fingerprint}, which this system does not trust (a node's key missing from "
            "the index, or not in [audit] signers)"
            if sep
            else "signed before signatures named their key, and this gateway has no signing key to check it"
        )
    try:
        public.verify(bytes.fromhex(signature), manifest(row, receipt))
    except (InvalidSignature, ValueError):
        return "signature does not match: the index row, the consent receipt or the signature was altered"
    return None
