"""`gateway store`: the object store a node's finished recordings go to ([store])."""

from __future__ import annotations

import argparse

from ..errors import ConfigError, StorageError
from ..storage.s3 import S3Store, TieredStore
from ..storage.store import StoreError
from . import open_gateway


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("store", help="the object store: make its bucket, check it")
    ssub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = ssub.add_parser(
        "create-bucket",
        help="make [store] url's bucket, with Object Lock when [store] object_lock is set (once per system)",
    )
    c.set_defaults(func=cmd_create_bucket)
    k = ssub.add_parser("check", help="can this node use the bucket, and is it locked as configured")
    k.set_defaults(func=cmd_check)


def _remote(args: argparse.Namespace) -> tuple[S3Store, str, str]:
    """The configured bucket, its [store] object_lock and region."""
    gw = open_gateway(args)
    if not isinstance(gw.store, TieredStore):
        raise ConfigError("[store] url is empty: recordings stay in this node's spool")
    return gw.store.remote, gw.config.store.object_lock, gw.config.store.region


def cmd_create_bucket(args: argparse.Namespace) -> int:
    remote, _, region = _remote(args)
    try:
        made = remote.create_bucket(region)
    except StoreError as e:
        raise StorageError(str(e)) from None
    print(f"{'made' if made else 'already there:'} bucket {remote.bucket}")
    return cmd_check(args)


def cmd_check(args: argparse.Namespace) -> int:
    remote, lock, _ = _remote(args)
    try:
        remote.check()
        locked = remote.bucket_lock()
    except StoreError as e:
        raise StorageError(str(e)) from None
    if lock != "off" and not locked:
        raise StorageError(
            f"bucket {remote.bucket} has no Object Lock, but [store] object_lock is {lock!r}: a bucket "
            "gets Object Lock only when it is made (make a new one with `gateway store create-bucket`)"
        )
    print(
        f"bucket {remote.bucket}: reachable, Object Lock {'enabled' if locked else 'off'}"
        + (f" ([store] object_lock = {lock!r})" if lock != "off" else "")
    )
    return 0
