"""`gateway import-legacy`: encrypt an existing plaintext archive into the store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import EXIT_INPUT, ConfigError, StorageError
from ..recording.legacy import ImportSummary, LegacyImporter, NotAudio, candidates
from ..storage.store import StoreError
from . import actor, harden_process, open_gateway


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-legacy", help="encrypt an existing WAV/MP3 archive into the store")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument(
        "--shred-originals",
        action="store_true",
        help="overwrite and delete each original once its ciphertext is durable",
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


def run(args: argparse.Namespace) -> int:
    harden_process()
    gw = open_gateway(args)
    if not gw.config.recording.recipients:
        raise ConfigError("no recipient configured in [recording] recipients: nothing can be encrypted")
    importer = LegacyImporter(
        gw.store,
        gw.index,
        gw.config.recording.recipients,
        actor(),
        signer=gw.signing_key(),
        default_retention_days=gw.config.recording.retention_days,
    )
    cleaned = importer.clean_interrupted()
    if cleaned:
        print(f"removed {cleaned} partial import(s) of an earlier interrupted run", file=sys.stderr)
    summary = ImportSummary()
    files = list(candidates(args.paths, summary))
    progress = Progress(len(files))
    try:
        for path in files:
            try:
                size = path.stat().st_size
                outcome = importer.import_file(path, shred_original=args.shred_originals)
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
    print(
        f"imported {summary.imported} file(s) ({summary.bytes_in / 1e6:.1f} MB), "
        f"skipped {summary.skipped} already imported, rejected {len(summary.rejected)}, "
        f"ignored {summary.ignored} non-audio file(s)"
        + (f", shredded {summary.shredded} original(s)" if args.shred_originals else "")
    )
    for name, reason in summary.rejected:
        print(f"  rejected {name}: {reason}")
    for name, reason in importer.shred_refused:
        print(f"  not shredded {name}: {reason}")
    return EXIT_INPUT if summary.rejected or importer.shred_refused else 0
