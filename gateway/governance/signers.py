"""Whose signatures count: the signing keys of every node that writes to one index.

Each node signs its recordings and audit checkpoints with its own Ed25519 key (signing.py,
storage/audit.py), naming the key by its fingerprint. Each node publishes its public key in the
index it shares with the others, so that `recordings verify` and `audit verify` on one node
check what another signed. A key is trusted when it is this node's own, given on the command
line, or published in the index and, if `[audit] signers` lists fingerprints, listed there: the
fingerprints `gateway init` prints, compared out of band, so that whoever can write the index
cannot add a key of their own and sign with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..storage.audit import key_fingerprint
from ..storage.index import Index

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Signer:
    fingerprint: str
    node: str  # the node that published it ("" for a key given on the command line)
    public: Ed25519PublicKey
    trusted: bool
    why: str  # "this node", "given", "published and pinned", "published", "published, not pinned"


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def publish(index: Index, key: Ed25519PrivateKey, node: str) -> str:
    """Put this node's public key in the index (once per key); its fingerprint."""
    public = key.public_key()
    fingerprint = key_fingerprint(public)
    index.add_signing_key(fingerprint, node, public_pem(public))
    return fingerprint


class Signers:
    """The keys signatures are checked with; `lookup` is a storage.audit.KeyLookup."""

    def __init__(
        self,
        own: Ed25519PublicKey | None,
        published: list[tuple[str, str, str, str]],
        pinned: list[str] | tuple[str, ...] = (),
        given: list[Ed25519PublicKey] | tuple[Ed25519PublicKey, ...] = (),
    ) -> None:
        self.own = own
        self.pinned = frozenset(pinned)
        self.by_fingerprint: dict[str, Signer] = {}
        for fingerprint, node, pem, _ in published:
            try:
                public = serialization.load_pem_public_key(pem.encode())
            except ValueError:
                public = None
            if not isinstance(public, Ed25519PublicKey) or key_fingerprint(public) != fingerprint:
                log.warning(
                    "signing key %s of node %s in the index is not what it claims: ignored", fingerprint, node
                )
                continue
            trusted = not self.pinned or fingerprint in self.pinned
            why = (
                ("published and pinned" if self.pinned else "published")
                if trusted
                else "published, not pinned"
            )
            self.by_fingerprint[fingerprint] = Signer(fingerprint, node, public, trusted, why)
        for public in given:
            fp = key_fingerprint(public)
            self.by_fingerprint[fp] = Signer(fp, self._node(fp), public, True, "given")
        if own is not None:
            fp = key_fingerprint(own)
            self.by_fingerprint[fp] = Signer(fp, self._node(fp), own, True, "this node")
        # A signature from before signatures named their key is this gateway's own (or, when
        # only keys were given, the one key given).
        self._legacy = own if own is not None else (given[0] if len(given) == 1 else None)

    def _node(self, fingerprint: str) -> str:
        known = self.by_fingerprint.get(fingerprint)
        return known.node if known is not None else ""

    @classmethod
    def of(
        cls,
        index: Index,
        own: Ed25519PublicKey | None,
        pinned: list[str] | tuple[str, ...] = (),
        given: list[Ed25519PublicKey] | tuple[Ed25519PublicKey, ...] = (),
    ) -> Signers:
        return cls(own, index.signing_keys(), pinned, given)

    def lookup(self, fingerprint: str | None) -> Ed25519PublicKey | None:
        if fingerprint is None:
            return self._legacy
        signer = self.by_fingerprint.get(fingerprint)
        return signer.public if signer is not None and signer.trusted else None

    @property
    def unpinned(self) -> list[Signer]:
        """Keys trusted only because the index holds them (no [audit] signers set)."""
        return [s for s in self.by_fingerprint.values() if s.why == "published"]
