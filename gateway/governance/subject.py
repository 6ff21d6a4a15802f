"""Data-subject requests (GDPR Art. 15 and 17).

The gateway cannot find a number by itself: the index holds caller numbers only age-encrypted,
with no lookup hash. Whoever holds an operator identity runs the request, and `find` decrypts
every stored number, spread over the machine's cores, and compares them in E.164 form.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from .. import age
from ..recording import export as ex
from ..recording import keys
from ..storage import pii
from ..storage.index import Index, NotFound
from ..storage.rows import CallRow, RecordingRow, RecordingStatus
from ..storage.store import Store

BATCH = 2000  # encrypted numbers a worker process takes at a time
PARALLEL_FROM = 4 * BATCH  # fewer numbers than this are decrypted in this process


@dataclass
class SubjectRecords:
    label: str  # how the audit log names this request: a random id, never derived from the number
    searched: str  # the E.164 form searched for
    calls: list[CallRow] = field(default_factory=list)
    recordings: list[RecordingRow] = field(default_factory=list)
    numbers_checked: int = 0
    numbers_unreadable: int = 0  # stored numbers these identities do not open
    tenant: str | None = None  # the tenant whose calls alone were searched (None: every one's)


# -- matching, in worker processes ------------------------------------------------------------

_job: tuple[list[age.AnyIdentity], str, pii.Numbering] | None = None


def _init(identities: list[age.AnyIdentity], target: str, numbering: pii.Numbering) -> None:
    global _job
    _job = (identities, target, numbering)


def _match(batch: list[tuple[str, bytes]]) -> tuple[list[str], int]:
    """The call ids in `batch` whose number is the target, and how many did not open."""
    assert _job is not None
    identities, target, numbering = _job
    hits, unreadable = [], 0
    for call_id, sealed in batch:
        try:
            opened = pii.open_value(sealed, identities)
        except age.AgeError:
            opened = None
        if opened is None:
            unreadable += 1
        elif any(pii.same_number(n, target, numbering) for n in pii.opened_numbers(opened)):
            hits.append(call_id)
    return hits, unreadable


def _batches(index: Index, tenants: frozenset[str] | None) -> Iterator[list[tuple[str, bytes]]]:
    after = ""
    while True:
        batch = index.encrypted_callers(after, BATCH, tenants=tenants)
        if not batch:
            return
        yield batch
        after = batch[-1][0]


def matching_calls(
    index: Index,
    identities: Sequence[age.AnyIdentity],
    target: str,
    numbering: pii.Numbering,
    processes: int | None = None,
    tenants: frozenset[str] | None = None,
) -> tuple[list[str], int, int]:
    """(call ids whose number is `target`, numbers checked, numbers unreadable); of `tenants`'
    calls alone, if given."""
    ids: list[str] = []
    checked = unreadable = 0
    batches = _batches(index, tenants)
    first = []
    for batch in batches:
        first.append(batch)
        if sum(len(b) for b in first) >= PARALLEL_FROM:
            break
    processes = processes or os.cpu_count() or 1
    if sum(len(b) for b in first) < PARALLEL_FROM or processes == 1:
        _init(list(identities), target, numbering)
        try:
            for batch in [*first, *batches]:
                hits, bad = _match(batch)
                ids += hits
                checked += len(batch)
                unreadable += bad
        finally:
            _init([], "", numbering)
        return ids, checked, unreadable
    # fork: the children inherit the identities in memory (nothing is written anywhere) and
    # the parent's hardening (no core dumps, not dumpable). Imported here: every command loads
    # this module with its parser, and a node's supervisor and workers never search (1.5 MB).
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        processes, mp_context=ctx, initializer=_init, initargs=(list(identities), target, numbering)
    ) as pool:
        pending: list[tuple[Future[tuple[list[str], int]], int]] = []
        for batch in [*first, *batches]:
            pending.append((pool.submit(_match, batch), len(batch)))
            if len(pending) >= 4 * processes:  # bounded: the index is read as the work proceeds
                fut, n = pending.pop(0)
                hits, bad = fut.result()
                ids += hits
                checked += n
                unreadable += bad
        for fut, n in pending:
            hits, bad = fut.result()
            ids += hits
            checked += n
            unreadable += bad
    return ids, checked, unreadable


# -- requests ---------------------------------------------------------------------------------


def find(
    index: Index,
    identities: Sequence[age.AnyIdentity],
    number: str,
    numbering: pii.Numbering,
    processes: int | None = None,
    tenant: str | None = None,
) -> SubjectRecords:
    """A data subject's calls and recordings (of `tenant`'s calls alone, if given). NumberError
    if the number is ambiguous."""
    target = pii.search_form(number, numbering)
    scope = None if tenant is None else frozenset({tenant})
    ids, checked, unreadable = matching_calls(index, identities, target, numbering, processes, scope)
    ids = list(dict.fromkeys(ids))  # a session's caller may also be among its participants
    found = SubjectRecords(
        label=f"request:{secrets.token_hex(8)}",
        searched=target,
        calls=index.calls_by_ids(ids),
        numbers_checked=checked,
        numbers_unreadable=unreadable,
        tenant=tenant,
    )
    for call in found.calls:
        found.recordings += [
            r
            for r in index.recordings_of_call(call.id)
            if r.status not in (RecordingStatus.DELETED, RecordingStatus.DISCARDED)
        ]
    return found


class ExportDirError(Exception):
    pass


def prepare_output(out: Path) -> None:
    """The export directory: created now (0700), or an existing empty directory of ours that
    only we can enter. Never a directory with files in it: nothing there is overwritten."""
    try:
        out.mkdir(mode=0o700)
    except FileExistsError:
        st = out.lstat()
        if not out.is_dir() or out.is_symlink():
            raise ExportDirError(f"{out} exists and is not a directory") from None
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise ExportDirError(
                f"{out} exists and is not a private directory of yours (0700): give a new directory"
            ) from None
        if any(out.iterdir()):
            raise ExportDirError(f"{out} is not empty: give a new directory") from None


def _create(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def export(
    store: Store, index: Index, found: SubjectRecords, identities: list[age.AnyIdentity], out: Path
) -> list[Path]:
    """Decrypt the subject's recordings and write their receipts into `out` (see
    prepare_output; files 0600, created exclusively). On any failure every file written so far
    is removed, so no partial plaintext is left behind, and the error is raised."""
    prepare_output(out)
    written: list[Path] = []
    try:
        for call in found.calls:
            try:
                receipt = index.get_consent_receipt(call.id)
            except NotFound:
                receipt = None
            path = out / f"call-{call.id}.json"
            written.append(path)
            record: dict[str, object] = {
                "call": call.id,
                "kind": call.kind,
                "started_at": call.started_at,
                "ended_at": call.ended_at,
                "route": call.route,
                "consent_receipt": receipt,
            }
            if call.parties_enc is not None:  # a recording session: who took part, as the client said
                opened = pii.open_value(call.parties_enc, identities)
                record["participants"] = json.loads(opened) if opened else None
            with os.fdopen(_create(path), "w") as f:
                json.dump(
                    record,
                    f,
                    indent=2,
                    sort_keys=True,
                )
        for rec in found.recordings:
            fmt = ex.MEDIA_EXTENSIONS.get(rec.media_type, ".wav")
            path = out / f"recording-{rec.id}{fmt}"
            with store.open(rec.object_name) as src:
                reader = age.AgeReader(
                    src,
                    keys.identities_for(rec.key_enc, identities),
                    recover=rec.status != RecordingStatus.COMPLETE,
                )
                written.append(path)
                with os.fdopen(_create(path), "wb") as dest:
                    ex.write_export(reader.chunks(), rec.media_type, fmt, dest)
    except BaseException:
        for p in written:
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        raise
    return written
