"""A configured gateway's storage: what every command opens from the config file."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .. import config as cfg
from ..errors import ConfigError, StorageError
from ..recording import signing
from ..recording.recorder import RecorderEngine
from ..storage.index import Index, IndexAccessError, IndexUnavailable, SqliteIndex
from ..storage.spool import LocalSpool
from .layout import RunLayout
from .recordings import RecordingService
from .review import Review

if TYPE_CHECKING:
    from ..accounts.users import UserStore
    from ..governance.signers import Signers
    from ..storage.index_pg import PgIndex
    from ..storage.uploader import Uploader
from ..storage.store import Store, StoreError


def open_store(config: cfg.Config) -> Store:
    """The spool alone, or the spool in front of the configured object store."""
    spool = LocalSpool(config.paths.spool_dir)
    if not config.store.remote:
        return spool
    from ..storage.s3 import S3Store, TieredStore

    s = config.store
    remote = S3Store(
        s.url,
        endpoint=s.endpoint,
        region=s.region,
        access_key_id=s.access_key_id,
        secret_access_key=s.secret_access_key,
        lock_mode="" if s.object_lock == "off" else s.object_lock,
    )
    return TieredStore(spool, remote)


def open_index(
    config: cfg.Config, *, create: bool = False, service: bool = False, lazy: bool = False
) -> Index:
    """The configured index: PostgreSQL when [index] url is set, else the SQLite file.

    `service`: for `gateway run` and its workers. An index that is out of reach (now, or later:
    PostgreSQL away, or the SQLite file held by another writer) must not stop calls: writes go
    to a local journal until it is back (journal.py).
    The CLI gets the index itself, and a clear error when it is away; `lazy`: unless the
    command can say something useful without it (`gateway status` during an outage).
    """
    if config.index.postgres:
        from ..storage.index_pg import PgIndex

        if service:
            return _journaled(PgIndex(config.index.url, lazy=True), config)
        return PgIndex(config.index.url, lazy=lazy)
    if service:
        # Another writer may hold the file for long (a large retention purge, an operator's
        # sqlite3 shell): a worker's calls wait for it no longer than SERVICE_LOCK_WAIT_S.
        return _journaled(SqliteIndex(config.paths.index, lock_wait_s=SERVICE_LOCK_WAIT_S), config)
    return SqliteIndex(config.paths.index, create=create)


# How long a running gateway's write waits for another writer of the SQLite index before it goes
# to the journal: well inside Kamailio's 3 s for a worker to answer an INVITE (fr_timer) and the
# supervisor's 2 s heartbeat.
SERVICE_LOCK_WAIT_S = 1.0


def _journaled(backend: Index, config: cfg.Config) -> Index:
    from ..storage.journal import JournaledIndex
    from ..storage.journal import directory_of as journal_dir

    return JournaledIndex(backend, journal_dir(config.paths.data_dir))


def initialised(index: Index, config: cfg.Config, config_path: Path) -> str:
    """A node made by `gateway init`: its signing key published in the index (signers.py) and
    the audit log's first word about it. The key's fingerprint."""
    from ..governance import signers

    fingerprint = signers.publish(index, signing.load_private(config.paths.signing_key), config.node.name)
    index.append_audit(
        "cli:init",
        "gateway.initialized",
        str(config_path),
        {
            "recipients": len(config.recording.recipients),
            "mode": config.consent.mode,
            "signing_key": fingerprint,
        },
    )
    return fingerprint


def check_owner(data_dir: Path) -> None:
    """Root must not write into a data directory that belongs to the gateway's user: files it
    creates there (the index's WAL, the users database, spool files) would be root's, and the
    service could no longer open them. Commands run as that user instead."""
    if os.geteuid() != 0:
        return
    try:
        owner = data_dir.stat().st_uid
    except OSError:
        return
    if owner == 0:
        return
    try:
        import pwd

        name = pwd.getpwuid(owner).pw_name
    except KeyError:
        name = str(owner)
    raise ConfigError(
        f"{data_dir} belongs to {name}, not root: run the command as that user (`runuser -u {name} -- "
        f"gateway ...`); for an export, pass the identity on stdin and take the audio on stdout: "
        f"`runuser -u {name} -- gateway ... recordings export ID -i - -o - < key.txt > call.wav`"
    )


@dataclass
class Gateway:
    config: cfg.Config
    store: Store
    index: Index
    audit_head_at_open: tuple[int, str] = (0, "")
    closed: bool = False

    @classmethod
    def open(cls, config_path: str | Path, *, service: bool = False, lazy_index: bool = False) -> Gateway:
        """`service`: the running gateway; `lazy_index`: a shared index out of reach is no error
        yet (see open_index)."""
        config = cfg.load(config_path)
        check_owner(config.paths.data_dir)
        try:
            store = open_store(config)
            index = open_index(config, service=service, lazy=lazy_index)
        except (StoreError, IndexAccessError) as e:
            raise StorageError(str(e)) from None
        try:
            head = index.audit_head()
        except IndexUnavailable:
            head = (0, "")  # the journal keeps what happens; anchoring resumes once it is back
        gw = cls(config, store, index, head)
        gw.remove_legacy_lookup_secret()
        return gw

    @property
    def layout(self) -> RunLayout:
        """The running gateway's files (layout.py)."""
        return RunLayout.of(self.config)

    def anchor_audit(self, *, log_stream: bool = False) -> None:
        """If the audit log grew since this gateway was opened (or last anchored), sign its head
        and send the checkpoint to the witnesses. Never raises: the next checkpoint covers it."""
        from ..governance import witness

        try:
            w = witness.Witness(self.config.witness, log_stream=log_stream)
            try:
                cp = witness.checkpoint(self.index, self.signing_key(), w, since=self.audit_head_at_open)
            finally:
                w.close()
            if cp is not None:
                self.audit_head_at_open = (cp.seq, cp.hash)
        except Exception as e:
            logging.getLogger(__name__).warning("audit checkpoint not made: %s", e)

    def remove_legacy_lookup_secret(self) -> None:
        """Gateways before schema 2 kept an HMAC key beside the caller-number hashes; with the
        hashes gone (index migration 2) the key only serves to brute-force the subject labels
        of old audit entries. It is overwritten and removed, and that is audited."""
        path = self.config.paths.legacy_lookup_secret
        if not path.exists():
            return
        try:
            size = path.stat().st_size
            with open(path, "r+b") as f:
                f.write(bytes(size))
                f.flush()
                os.fsync(f.fileno())
            path.unlink()
        except OSError as e:
            raise StorageError(f"cannot remove the old lookup secret {path}: {e.strerror}") from None
        self.index.append_audit(
            "gateway",
            "secret.removed",
            "lookup.key",
            {"why": "caller numbers are no longer hashed (schema 2)"},
        )

    def signing_key(self) -> Ed25519PrivateKey | None:
        """The recording-signing key, or None for a gateway initialised before signing existed."""
        path = self.config.paths.signing_key
        if not path.exists():
            return None
        try:
            return signing.load_private(path)
        except (OSError, ValueError) as e:
            raise ConfigError(f"signing key {path}: {e}") from None

    def publish_signing_key(self) -> str | None:
        """Put this node's signing key in the index for the other nodes (signers.py); its
        fingerprint. Never raises: an index out of reach gets it from the journal later."""
        from ..governance import signers

        key = self.signing_key()
        if key is None:
            return None
        try:
            return signers.publish(self.index, key, self.config.node.name)
        except IndexAccessError as e:
            logging.getLogger(__name__).warning("signing key not published in the index yet: %s", e)
            return None

    def signers(self, given: list[Ed25519PublicKey] | tuple[Ed25519PublicKey, ...] = ()) -> Signers:
        """The keys this system's signatures are checked with (signers.py)."""
        from ..governance.signers import Signers

        return Signers.of(self.index, self.signing_public(), self.config.witness.signers, given)

    def signing_public(self) -> Ed25519PublicKey | None:
        path = self.config.paths.signing_public
        if not path.exists():
            return None
        try:
            return signing.load_public(path)
        except (OSError, ValueError) as e:
            raise ConfigError(f"signing public key {path}: {e}") from None

    def uploader(self) -> Uploader | None:
        """What moves finished recordings from the spool to the object store (None: no store)."""
        from ..storage.s3 import TieredStore
        from ..storage.uploader import Uploader

        if not isinstance(self.store, TieredStore):
            return None
        return Uploader(
            self.store.spool,
            self.store.remote,
            self.index,
            self.config.recording.retention_days,
            self.config.store.upload_interval_s,
            self.config.store.upload_max_backoff_s,
        )

    def set_legal_hold(self, rec_id: str, object_name: str, on: bool) -> None:
        """Mirror a hold onto the object when the store keeps it (and has Object Lock)."""
        from ..storage.s3 import TieredStore

        if isinstance(self.store, TieredStore) and self.config.store.object_lock != "off":
            try:
                self.store.remote.set_legal_hold(object_name, on)
            except StoreError as e:  # still in the spool: the upload sets it
                logging.getLogger(__name__).info("legal hold of %s not mirrored yet: %s", rec_id, e)

    def shared_index(self) -> PgIndex | None:
        """The PostgreSQL index under the journal, when the index is shared; else None."""
        from ..storage.index_pg import PgIndex
        from ..storage.journal import JournaledIndex

        index = self.index.backend if isinstance(self.index, JournaledIndex) else self.index
        return index if isinstance(index, PgIndex) else None

    def user_store(self) -> UserStore:
        """Dashboard accounts: in the shared index when there is one (every node's dashboard
        knows them), else in secrets/users.sqlite3."""
        from ..accounts.users import UserStore
        from ..accounts.users_pg import PgUserStore

        d = self.config.dashboard
        shared = self.shared_index()
        if shared is not None:
            return PgUserStore(shared, d.lockout_after, d.lockout_s)
        return UserStore(self.config.paths.secrets_dir / "users.sqlite3", d.lockout_after, d.lockout_s)

    def recording_service(self, engine: RecorderEngine | None, actor: str = "gateway") -> RecordingService:
        r = self.config.recording
        return RecordingService(
            self.store,
            self.index,
            self.config.tenancy,
            engine,
            sample_rate=r.sample_rate,
            pause_mode=r.pause_mode,
            actor=actor,
            signer=self.signing_key(),
            key_per_recording=r.key_per_recording,
            node=self.config.node.name,
        )

    def review(self) -> Review:
        """Access requests and grants for review, under [review]'s policy."""
        from ..governance.grants import Policy

        r = self.config.review
        return Review(self.index, self.store, Policy(r.four_eyes, r.grant_s, r.allow_download))

    def close(self) -> None:
        if self.closed:
            return
        self.anchor_audit()
        self.closed = True
        self.index.close()
