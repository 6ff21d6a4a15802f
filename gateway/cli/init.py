"""`gateway init`: a complete commented config, its directories, the signing key and the index."""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import sys
from pathlib import Path

from .. import age
from .. import config as cfg
from ..app.gateway import check_owner, initialised, open_index
from ..errors import ConfigError, KeyMaterialError, StorageError
from ..recording import signing
from ..storage.index import IndexAccessError
from ..storage.spool import ensure_private_dir
from ..supervisor import channel


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="write a configuration and create the data directories")
    p.add_argument("--dir", required=True, type=Path, help="data directory (created 0700)")
    p.add_argument(
        "--recipient",
        action="append",
        default=[],
        metavar="AGE1...",
        help="an operator's age recipient (public key): X25519 (age1...) or post-quantum (age1pq1..., from "
        "`gateway keygen --pq`); repeat for several, all of one kind",
    )
    p.add_argument("--sip-listen", default="127.0.0.1:5060", metavar="HOST:PORT")
    p.add_argument("--pbx", default="sip:helpline@127.0.0.1:5070", metavar="SIP_URI")
    p.add_argument("--mode", default="opt-out", choices=cfg.MODES)
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="run a node: Kamailio on --sip-listen in front of N workers (0: one worker, no Kamailio)",
    )
    p.add_argument(
        "--trunk",
        action="append",
        default=[],
        metavar="ADDR",
        help="trunk address allowed to send SIP (repeatable; the PBX is always allowed)",
    )
    p.add_argument(
        "--dashboard-listen",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="the operators' dashboard (a non-loopback address needs TLS in [dashboard])",
    )
    p.add_argument(
        "--index-url",
        default="",
        metavar="postgresql://...",
        help="a PostgreSQL index shared by several nodes (default: the SQLite file in --dir)",
    )
    p.add_argument(
        "--node-name",
        default="",
        metavar="NAME",
        help="this node's name among the nodes sharing an index (default: the host's name)",
    )
    p.add_argument(
        "--cluster-key",
        type=Path,
        metavar="FILE",
        help="with --index-url: the cluster key of the system's first node (its secrets/cluster.key), "
        "for every further node; without it a new key is made",
    )
    p.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="another node's front door, for overflow calls ([node] peers; repeatable)",
    )
    p.add_argument(
        "--worker-base-port",
        type=int,
        metavar="PORT",
        help="the first worker's port ([node] worker_base_port; two nodes on one host need distinct ones)",
    )
    p.add_argument("--metrics-listen", metavar="HOST:PORT", help="the node's metrics ([node] metrics_listen)")
    p.add_argument("--rtp-port", type=int, metavar="PORT", help="the first RTP port ([calls] rtp_port)")
    p.add_argument(
        "--store-url",
        metavar="s3://BUCKET/PREFIX",
        help="finished recordings go to this bucket ([store] url)",
    )
    p.add_argument(
        "--store-endpoint", metavar="URL", help="an S3-compatible endpoint (MinIO, Ceph, SeaweedFS)"
    )
    p.add_argument("--store-region", metavar="REGION", help="the bucket's region")
    p.add_argument(
        "--object-lock",
        choices=("off", "governance", "compliance"),
        help="[store] object_lock (the bucket must have Object Lock enabled)",
    )
    p.add_argument("--force", action="store_true", help="rewrite an existing config (keeps data and secrets)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config_path, config, fingerprint = create(args)
    print(f"wrote {config_path}")
    print(
        f"signing key fingerprint: {fingerprint} (what this node's signatures name; on a shared index, "
        "list every node's in [audit] signers)"
    )
    if not config.recording.recipients:
        print(
            "warning: no recipient configured: this gateway will record nothing. Add one to "
            "[recording] recipients (age-keygen -y KEYFILE prints it)."
        )
    gateway = _as_owner(config_path)
    if config.node.kamailio:
        print(f"next: {gateway} user add NAME --role admin   # a dashboard account")
    print(f"then: {gateway} run")
    return 0


def _as_owner(config_path: Path) -> str:
    """How to run `gateway` on this configuration: as a service user (no login shell, as
    deploy/install.sh makes it), through runuser as root, which is how an administrator runs
    it; otherwise as oneself."""
    me = pwd.getpwuid(os.getuid())
    command = f"{sys.argv[0] if sys.argv[0].endswith('gateway') else 'gateway'} --config {config_path}"
    if os.getuid() != 0 and me.pw_shell.endswith(("nologin", "false")):
        return f"runuser -u {me.pw_name} -- {command}"
    return command


def create(args: argparse.Namespace) -> tuple[Path, cfg.Config, str | None]:
    """Everything `gateway init` makes: (configuration path, configuration, the signing key's
    fingerprint). All or nothing: if any step fails, what this run created is removed again, so
    that the retry needs no --force (an existing configuration is only replaced at the end)."""
    try:
        age.parse_recipients(args.recipient)  # refused here, with init's own words, before anything is made
    except age.RecipientListError as e:
        where = f"--recipient #{e.index + 1}" if e.index is not None else "--recipient"
        raise KeyMaterialError(f"{where} refused: {e}") from None
    cluster_key = getattr(args, "cluster_key", None)
    if cluster_key is not None:
        if not getattr(args, "index_url", ""):
            raise ConfigError("--cluster-key goes with --index-url: only nodes sharing PostgreSQL have one")
        try:
            channel.load_key(cluster_key)
        except ValueError as e:
            raise KeyMaterialError(f"--cluster-key refused: {e}") from None
    cfg.parse_hostport(args.sip_listen, "--sip-listen")
    cfg.check_sip_uri(args.pbx, "--pbx")
    dash_host, _ = cfg.parse_hostport(
        getattr(args, "dashboard_listen", "127.0.0.1:8080"), "--dashboard-listen"
    )
    if not cfg.is_loopback(dash_host):
        raise ConfigError(
            f"--dashboard-listen {dash_host} is not a loopback address: the dashboard needs TLS "
            "to listen on the network. Initialise on 127.0.0.1, then set [dashboard] listen, "
            "tls_cert and tls_key together"
        )
    data_dir: Path = args.dir.resolve()
    check_owner(data_dir)  # as root, into a service user's directory: run init as that user
    config_path = data_dir / "gateway.toml"
    if config_path.exists() and not args.force:
        raise ConfigError(f"{config_path} exists (use --force to rewrite it; data and secrets are kept)")
    text = cfg.render(
        data_dir=data_dir,
        recipients=[r.strip() for r in args.recipient],
        sip_listen=args.sip_listen,
        pbx_uri=args.pbx,
        mode=args.mode,
        workers=getattr(args, "workers", 0),
        trunks=getattr(args, "trunk", []),
        dashboard_listen=getattr(args, "dashboard_listen", "127.0.0.1:8080"),
        index_url=getattr(args, "index_url", ""),
        node_name=getattr(args, "node_name", ""),
        extra=_node_settings(args),
    )
    created = _Created()
    try:
        created.dir(data_dir)
        tmp = config_path.with_suffix(".toml.new")
        tmp.unlink(missing_ok=True)
        created.file(tmp)
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o640)
        config = cfg.load(tmp)
        created.dir(config.paths.spool_dir)
        created.dir(config.paths.secrets_dir)
        if not config.paths.signing_key.exists():
            created.file(config.paths.signing_key)
            created.file(config.paths.signing_public)
            signing.create_key(config.paths.signing_key, config.paths.signing_public)
        if config.index.postgres:
            if not config.paths.cluster_key.exists():
                created.file(config.paths.cluster_key)
            _cluster_key(config.paths.cluster_key, cluster_key)
        if not config.index.postgres and not config.paths.index.exists():
            for suffix in ("", "-wal", "-shm"):
                created.file(config.paths.index.with_name(config.paths.index.name + suffix))
        try:
            index = open_index(config, create=True)
        except IndexAccessError as e:
            raise StorageError(str(e)) from None
        try:
            fingerprint = initialised(index, config, config_path)
        finally:
            index.close()
        tmp.replace(config_path)
    except BaseException:
        created.remove()
        raise
    return config_path, cfg.load(config_path), fingerprint


def _node_settings(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """The settings a further node (README, "The first two nodes") needs besides the defaults,
    from init's flags; checked when the written configuration is loaded."""
    node: dict[str, object] = {}
    store: dict[str, object] = {}
    for flag, section, key in (
        ("peer", node, "peers"),
        ("worker_base_port", node, "worker_base_port"),
        ("metrics_listen", node, "metrics_listen"),
        ("store_url", store, "url"),
        ("store_endpoint", store, "endpoint"),
        ("store_region", store, "region"),
        ("object_lock", store, "object_lock"),
    ):
        value = getattr(args, flag, None)
        if value not in (None, [], ""):
            section[key] = value
    out: dict[str, dict[str, object]] = {}
    if node:
        out["node"] = node
    if store:
        out["store"] = store
    if getattr(args, "rtp_port", None) is not None:
        out["calls"] = {"rtp_port": args.rtp_port}
    if store.get("object_lock") == "compliance":
        # Nobody can delete a locked object before its date: erasure destroys its key instead.
        out["recording"] = {"key_per_recording": True}
    return out


class _Created:
    """What an init run made, to take back if it fails."""

    def __init__(self) -> None:
        self.paths: list[Path] = []

    def dir(self, path: Path) -> None:
        if not path.exists():
            ensure_private_dir(path)
            self.paths.append(path)
        else:
            ensure_private_dir(path)

    def file(self, path: Path) -> None:
        if not path.exists():
            self.paths.append(path)

    def remove(self) -> None:
        for path in reversed(self.paths):
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
            except OSError:
                pass


def _cluster_key(path: Path, source: Path | None) -> None:
    """The node's cluster key: the one given (every node of a system has the same), else the
    one already there, else a new one for the system's first node."""
    if source is not None:
        key = channel.load_key(source)
        if path.exists() and channel.load_key(path) != key:
            raise KeyMaterialError(f"{path} holds another cluster key: remove it first to join this system")
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(source.read_text(encoding="ascii").strip() + "\n")
    elif not path.exists():
        channel.create_key(path)
        print(
            f"made the cluster key {path}: every further node on this index needs a copy "
            "(`gateway init ... --cluster-key` this file, over a safe channel)"
        )
