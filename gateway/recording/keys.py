"""A key per recording, for erasure by destroying the key (crypto-shredding).

With `[recording] key_per_recording`, each recording is encrypted to a fresh recipient of its
own (post-quantum when the operators' are). Its identity is age-encrypted to the operator
recipients at once and kept only in that form, in the index (`recordings.key_enc`); the gateway
forgets the plaintext identity as soon as it is wrapped, so the running gateway still holds nothing that decrypts a recording.
Opening a recording takes two age decryptions: the wrapped key with the operator's identity,
then the recording with the key that yields (the CLI does both; with the age CLI alone:
`age -d -i operator.txt KEY.age | age -d -i - RECORDING.age`). Erasing a recording deletes
the wrapped key: from then on no identity opens the recording, wherever its ciphertext still
is (an object store under Object Lock compliance mode, a backup).
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import age


def new_recording_key(operators: Sequence[age.AnyRecipient]) -> tuple[age.AnyRecipient, bytes]:
    """A fresh recipient for one recording, and its identity wrapped to `operators`. Of the
    operators' kind: a recording of post-quantum operators gets a post-quantum key of its own
    (an X25519 one would be the weak link)."""
    identity: age.AnyIdentity = (
        age.HybridIdentity.generate() if any(map(age.is_post_quantum, operators)) else age.Identity.generate()
    )
    wrapped = age.encrypt((identity.encode() + "\n").encode("ascii"), list(operators))
    return identity.recipient(), wrapped


def unwrap(wrapped: bytes, identities: Sequence[age.AnyIdentity]) -> list[age.AnyIdentity]:
    """The recording's identity, from its wrapped key and an operator's identities
    (age.NoIdentityMatchError when none of them opens it)."""
    text = age.decrypt(wrapped, list(identities)).decode("ascii", errors="replace")
    return age.parse_identities(text, "recording key")


def identities_for(key_enc: bytes | None, identities: Sequence[age.AnyIdentity]) -> list[age.AnyIdentity]:
    """The identities that open one recording: the operator's own for a recording encrypted to
    them, its unwrapped key for one with a key of its own."""
    if key_enc is None:
        return list(identities)
    return unwrap(key_enc, identities)
