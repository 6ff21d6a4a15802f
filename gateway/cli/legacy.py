"""`gateway import-legacy`: encrypt an existing plaintext archive into the store."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..app import legacy, retention
from ..app.legacy import ImportSummary, LegacyImporter, NotAudio, candidates
from ..app.runtime import harden_process
from ..errors import ConfigError, StorageError
from ..storage.store import StoreError
from . import actor, open_gateway
from .exitcodes import EXIT_INPUT


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-legacy", help="encrypt an existing WAV/MP3 archive into the store")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument(
        "--shred-originals",
        action="store_true",
        help="overwrite and delete each original once its ciphertext is durable",
    )
    p.add_argument(
        "--retention-days",
        type=int,
        metavar="DAYS",
        help="retention of the imported recordings, counted from each file's date (default: "
        "[recording] retention_days); applies to files already imported too",
    )
    p.add_argument(
        "--hold",
        metavar="REASON",
        help="place a legal hold on every imported recording (kept until `gateway hold remove`)",
    )
    p.add_argument(
        "--tenant",
        metavar="NAME",
        help="with [[tenants]]: whose archive this is (its recordings are encrypted to that "
        "tenant's recipients and escrow only); required then",
    )
    p.set_defaults(func=run)


class Progress:
    def __init__(self, total: int) -> None:
        self.total, self.done, self.tty = total, 0, sys.stderr.isatty()
        self._last_decile = -1

    def step(self, name: str) -> None:
        self.done += 1
        pct = self.done * 100 // max(self.total, 1)
        if self.tty:
            bar = "#" * (pct // 4)
            print(f"\r[{bar:<25}] {self.done}/{self.total} {pct:3d}%", end="", file=sys.stderr, flush=True)
        elif pct // 10 != self._last_decile:
            self._last_decile = pct // 10
            print(f"import-legacy: {self.done}/{self.total} files ({pct}%)", file=sys.stderr, flush=True)

    def end(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def _past_retention(files: list[Path], days: int) -> int:
    """How many of `files` are dated (by mtime, as the import dates them) beyond `days`."""
    cutoff = time.time() - days * 86400
    n = 0
    for p in files:
        try:
            n += p.stat().st_mtime < cutoff
        except OSError:
            pass
    return n


def run(args: argparse.Namespace) -> int:
    harden_process()
    gw = open_gateway(args)
    tenants = gw.config.tenancy
    if tenants.listed and not args.tenant:
        raise ConfigError(f"with [[tenants]], say whose archive this is: --tenant one of {tenants.names}")
    try:
        tenant = tenants.get(args.tenant)
    except KeyError:
        raise ConfigError(
            f"--tenant {args.tenant!r} is not in [[tenants]] (configured: {tenants.names or 'none'})"
        ) from None
    if not tenant.recipients:
        raise ConfigError("no recipient configured in [recording] recipients: nothing can be encrypted")
    if args.retention_days is not None and not 1 <= args.retention_days <= 36500:
        raise ConfigError("--retention-days must be 1 to 36500")
    days = args.retention_days or tenant.retention_days or gw.config.recording.retention_days
    importer = LegacyImporter(
        gw.store,
        gw.index,
        tenant.sealing,
        actor(),
        tenant=tenant.stored,
        signer=gw.signing_key(),
        default_retention_days=days,
        key_per_recording=gw.config.recording.key_per_recording,
        node=gw.config.node.name,
    )
    cleaned = importer.clean_interrupted()
    if cleaned:
        print(f"removed {cleaned} partial import(s) of an earlier interrupted run", file=sys.stderr)
    summary = ImportSummary()
    files = list(candidates(args.paths, summary))
    doomed = _past_retention(files, days) if not args.hold else 0
    if doomed:
        print(
            f"gateway: warning: {doomed} of these files are older than their retention ({days} days): the "
            "next retention run (`gateway run` does one at start and every hour) deletes them once "
            "imported. To keep them, stop and import with --retention-days DAYS or --hold REASON.",
            file=sys.stderr,
        )
    touched: list[str] = []
    progress = Progress(len(files))
    try:
        for path in files:
            try:
                size = path.stat().st_size
                outcome, rec_id = importer.import_file(path, shred_original=args.shred_originals)
                touched.append(rec_id)
            except NotAudio as e:
                summary.rejected.append((str(path), str(e)))
            except StoreError as e:
                raise StorageError(
                    f"{path}: {e}; files imported so far are safe, run again to resume"
                ) from None
            except OSError as e:
                summary.rejected.append((str(path), e.strerror or str(e)))
            else:
                if outcome == "imported":
                    summary.imported += 1
                    summary.bytes_in += size
                else:
                    summary.skipped += 1
            progress.step(path.name)
    finally:
        progress.end()
    summary.shredded = importer.shredded
    held = legacy.keep(gw, touched, importer.actor, retention_days=args.retention_days, hold=args.hold)
    if args.hold and touched:
        print(f"held {len(held)} imported recording(s): {args.hold}", file=sys.stderr)
    mine = set(touched)
    expiring = [
        r.id
        for r in retention.expired(gw.index, retention.Retention.of(gw.config))
        if r.id in mine and not gw.index.active_holds(r.id)
    ]
    print(
        f"imported {summary.imported} file(s) ({summary.bytes_in / 1e6:.1f} MB), "
        f"skipped {summary.skipped} already imported, rejected {len(summary.rejected)}, "
        f"ignored {summary.ignored} non-audio file(s)"
        + (f", shredded {summary.shredded} original(s)" if args.shred_originals else "")
    )
    if expiring:
        print(
            f"warning: {len(expiring)} imported recording(s) are past their retention: the next retention "
            "run deletes them (and audits it). To keep them: run this import again with "
            "--retention-days DAYS or --hold REASON, or `gateway hold add ID --reason ...`."
        )
    for name, reason in summary.rejected:
        print(f"  rejected {name}: {reason}")
    for name, reason in importer.shred_refused:
        print(f"  not shredded {name}: {reason}")
    return EXIT_INPUT if summary.rejected or importer.shred_refused else 0
