"""The sealed envelope of node-to-node messages (cluster.py), pure: dicts in, text out.

PostgreSQL's LISTEN/NOTIFY has no access control of its own: any role that may connect to the
database may listen on the cluster's channel and notify on it. So every message is sealed with
ChaCha20-Poly1305 under a key the nodes hold outside the database (`secrets/cluster.key`, the
same file on every node): a listener without it reads nothing (no masked numbers, no display
names, no call states), and a notification without it, or altered, is dropped. A sealed message
carries its sending time and a random id; one older than REPLAY_WINDOW_S, or seen before, is
dropped too, so a recorded command cannot be played again.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

PREFIX = "gw1:"  # the envelope's version, in clear
KEY_BYTES = 32
REPLAY_WINDOW_S = 60.0  # nodes' clocks must agree within this (NTP)
_AAD = b"consent-gateway cluster v1"


class ChannelError(ValueError):
    """A notification that is not a sealed message of this cluster (or is a replay)."""


def create_key(path: Path) -> None:
    """A new cluster key, 0600; refuses to overwrite one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode() + "\n")


def load_key(path: Path) -> bytes:
    """The cluster key in `path`; ValueError saying what is wrong (the path is named, the key never)."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except OSError as e:
        raise ValueError(f"cannot read the cluster key {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"the cluster key {path} is not text") from None
    try:
        key = base64.b64decode(text, validate=True)
    except binascii.Error:
        key = b""
    if len(key) != KEY_BYTES:
        raise ValueError(
            f"{path} is not a cluster key (base64 of {KEY_BYTES} bytes, as `gateway init` writes)"
        )
    return key


class Channel:
    """Seals this node's messages and opens its peers'; remembers the ids it has seen."""

    def __init__(self, key: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)
        self._seen: dict[str, float] = {}  # message id -> its time
        self._prune_at = 1000

    def seal(self, message: dict[str, Any], now: float | None = None) -> str:
        body = dict(message, ts=time.time() if now is None else now, mid=secrets.token_hex(12))
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, json.dumps(body, separators=(",", ":")).encode(), _AAD)
        return PREFIX + base64.b64encode(nonce + sealed).decode()

    def open(self, payload: str, now: float | None = None) -> dict[str, Any]:
        """The message, once: ChannelError for anything not sealed with this key, altered,
        outside the replay window or seen before."""
        now = time.time() if now is None else now
        if not payload.startswith(PREFIX):
            raise ChannelError("not a sealed cluster message")
        try:
            text = payload[len(PREFIX) :]
            raw = base64.b64decode(text, validate=True)
            if base64.b64encode(raw).decode() != text:  # unused bits set: not what was sealed
                raise binascii.Error("not canonical base64")
            body = json.loads(self._aead.decrypt(raw[:12], raw[12:], _AAD))
        except (binascii.Error, InvalidTag, ValueError):
            raise ChannelError("a cluster message that does not open with this cluster's key") from None
        if not isinstance(body, dict):
            raise ChannelError("a cluster message that is not an object")
        ts, mid = body.pop("ts", None), body.pop("mid", None)
        if not isinstance(ts, int | float) or not isinstance(mid, str):
            raise ChannelError("a cluster message without its time and id")
        if abs(now - ts) > REPLAY_WINDOW_S:
            raise ChannelError(f"a cluster message {now - ts:.0f} s from now (replayed, or a clock off)")
        if mid in self._seen:
            raise ChannelError("a cluster message seen before (replayed)")
        self._seen[mid] = ts
        if len(self._seen) > self._prune_at:
            self._seen = {m: t for m, t in self._seen.items() if now - t <= REPLAY_WINDOW_S}
            self._prune_at = max(1000, 2 * len(self._seen))
        return body
