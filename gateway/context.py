"""A configured gateway's storage: what every command opens from the config file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from . import config as cfg
from .errors import ConfigError, StorageError
from .governance import signing
from .recording.recorder import RecorderEngine
from .recording.service import RecordingService
from .storage import pii
from .storage.index import Index, IndexError_, SqliteIndex
from .storage.spool import LocalSpool
from .storage.store import Store, StoreError


@dataclass
class Gateway:
    config: cfg.Config
    store: Store
    index: Index

    @classmethod
    def open(cls, config_path: str | Path) -> Gateway:
        config = cfg.load(config_path)
        try:
            store = LocalSpool(config.paths.spool_dir)
            index = SqliteIndex(config.paths.index)
        except (StoreError, IndexError_) as e:
            raise StorageError(str(e)) from None
        return cls(config, store, index)

    def lookup_secret(self) -> bytes:
        path = self.config.paths.lookup_secret
        try:
            return pii.load_secret(path)
        except (OSError, ValueError) as e:
            raise ConfigError(f"lookup secret {path}: {getattr(e, 'strerror', None) or e}") from None

    def signing_key(self) -> Ed25519PrivateKey | None:
        """The recording-signing key, or None for a gateway initialised before signing existed."""
        path = self.config.paths.signing_key
        if not path.exists():
            return None
        try:
            return signing.load_private(path)
        except (OSError, ValueError) as e:
            raise ConfigError(f"signing key {path}: {e}") from None

    def signing_public(self) -> Ed25519PublicKey | None:
        path = self.config.paths.signing_public
        if not path.exists():
            return None
        try:
            return signing.load_public(path)
        except (OSError, ValueError) as e:
            raise ConfigError(f"signing public key {path}: {e}") from None

    def recording_service(self, engine: RecorderEngine | None, actor: str = "gateway") -> RecordingService:
        r = self.config.recording
        return RecordingService(self.store, self.index, r.recipients, engine, sample_rate=r.sample_rate,
                                pause_mode=r.pause_mode, actor=actor, signer=self.signing_key())

    def close(self) -> None:
        self.index.close()
