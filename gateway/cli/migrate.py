"""`gateway migrate`: move an embedded node (SQLite index and local spool) into the shared
PostgreSQL index and S3 bucket its configuration now names. Resumable: run it again after an
interruption, or once the object store is reachable, and it picks up where it stopped."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError, GatewayError, NotFoundError
from ..storage import datalock
from ..storage import migrate as mg
from ..storage.index import IndexAccessError, SqliteIndex
from . import actor, open_gateway
from .exitcodes import EXIT_STORAGE

MAX_UPLOAD_ROUNDS = 1000  # each uploads every finished recording it can; stops at a store error


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "migrate",
        help="move this node's SQLite index, accounts and spooled recordings into the shared "
        "PostgreSQL index and object store its configuration names (resumable)",
    )
    p.add_argument(
        "--from-index",
        type=Path,
        metavar="FILE",
        help="the SQLite index to migrate (default: [paths] index)",
    )
    p.set_defaults(func=cmd_migrate)


def cmd_migrate(args: argparse.Namespace) -> int:
    gw = open_gateway(args)
    cfg = gw.config
    if not cfg.index.postgres:
        raise ConfigError(
            "set [index] url to the PostgreSQL database first (and [store] url to the bucket): "
            "migrate moves this node into what its configuration names"
        )
    holder = datalock.holder(cfg.paths.data_dir)
    if holder is not None:
        raise GatewayError(f"the gateway runs on {cfg.paths.data_dir} (pid {holder}): stop it first")
    source_path = args.from_index or cfg.paths.index
    if not source_path.exists():
        raise NotFoundError(f"no SQLite index at {source_path} to migrate")
    dest = gw.shared_index()
    assert dest is not None
    try:
        source = SqliteIndex(source_path)
    except IndexAccessError as e:
        raise GatewayError(str(e)) from None
    label = f"{cfg.node.name}:{source_path.resolve()}"
    try:
        report = mg.copy_index(source, dest, label, actor())
    finally:
        source.close()
    mg.copy_users(cfg.paths.secrets_dir / "users.sqlite3", dest, report)
    print(
        f"index: {report.calls} call(s), {report.recordings} recording(s), {report.receipts} consent "
        f"receipt(s), {report.holds} hold(s) present in {dest.where}"
    )
    state = "bound now" if report.audit_bound_now else "bound by an earlier run"
    print(
        f"audit log: {report.audit_entries} entries archived whole, {state} (gateway audit verify checks it)"
    )
    if not report.audit_ok:
        print("  warning: this node's own audit chain does not verify; it was archived as it is")
    if report.users or report.users_kept:
        print(f"dashboard accounts: {report.users} copied")
    for name in report.users_kept:
        print(
            f"  account {name!r} exists in the shared index with another password or role: kept as it is there"
        )
    # Recordings whose writer died (a crash before the migration) are named first, then every
    # finished recording in the spool goes to the bucket.
    recovered = gw.recording_service(None).recover()
    if recovered:
        print(f"recordings: {len(recovered)} left by a crashed writer marked truncated")
    uploader = gw.uploader()
    if uploader is None:
        print("recordings: no [store] url: they stay in this node's spool")
        return 0
    for _ in range(MAX_UPLOAD_ROUNDS):
        if uploader.round() == 0:
            break
    st = uploader.stats
    print(f"recordings: {st.uploaded} uploaded to {cfg.store.url}; {st.pending} waiting in the spool")
    if st.failures:
        print(f"  the object store did not take them ({st.last_error}): run gateway migrate again later")
        return EXIT_STORAGE
    if st.refused:
        print(f"  not uploaded, altered in the spool since they were finished: {', '.join(st.refused)}")
        return EXIT_STORAGE
    return 0
