"""Recordings as the rest of the gateway sees them: start one for a call, and have the store,
the index and the audit log agree about what became of it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .. import age
from ..age import format as fmt
from ..config.tenants import Tenant, Tenants
from ..consent import receipt as rc
from ..errors import GatewayError
from ..recording import keys, signing
from ..recording.recorder import Recorder, RecorderEngine, RecordingResult
from ..storage import index as ix
from ..storage.index import Index, IndexUnavailable
from ..storage.liveness import process_token, writer_is_gone
from ..storage.rows import RecordingRow, RecordingStatus, utcnow
from ..storage.store import ObjectNotFound, Store, StoreError
from .checkpointer import Checkpointer

log = logging.getLogger(__name__)


def new_id() -> str:
    return secrets.token_hex(8)


def object_sha256(store: Store, name: str) -> str:
    return prefix_sha256(store, name, None)


def prefix_sha256(store: Store, name: str, length: int | None) -> str:
    """SHA-256 of an object's first `length` bytes (None: all of it)."""
    h = hashlib.sha256()
    left = length
    with store.open(name) as f:
        while left is None or left > 0:
            block = f.read(1 << 20 if left is None else min(1 << 20, left))
            if not block:
                break
            h.update(block)
            if left is not None:
                left -= len(block)
    return h.hexdigest()


class RecordingService:
    def __init__(
        self,
        store: Store,
        index: Index,
        tenants: Tenants,
        engine: RecorderEngine | None,
        *,
        sample_rate: int = 8000,
        pause_mode: str = "silence",
        actor: str = "gateway",
        signer: Ed25519PrivateKey | None = None,
        key_per_recording: bool = False,
        node: str = "",
    ) -> None:
        self.store = store
        self.node = node  # this node's name: whose writers crash recovery may declare gone
        self.key_per_recording = key_per_recording  # recording/keys.py
        self.index = index
        self.tenants = tenants  # whose keys each recording is sealed to (config/tenants.py)
        self.engine = engine
        self.sample_rate = sample_rate
        self.pause_mode = pause_mode
        self.actor = actor
        self.signer = signer
        # Withdrawals that may find their recording already finished (stopped by a supervisor,
        # or ended by a storage failure). The lock orders them against _finished.
        self._lock = threading.Lock()
        self._withdrawn: set[str] = set()
        self._results: dict[str, RecordingResult] = {}  # finished, their call still up: newest last
        self._over: set[str] = set()  # their call has ended, the recording not yet finished
        self._unsigned: set[str] = set()  # finalised while the index was away: signed once it is back
        self.checkpoints = Checkpointer(index)  # off the recorder engine's thread

    def close(self) -> None:
        """Write the checkpoints still waiting, once the engine has finished every recording."""
        self.checkpoints.close()

    @property
    def enabled(self) -> bool:
        """Without a recipient the gateway records nothing: there is no one to encrypt to."""
        return self.tenants.records

    def start(
        self,
        call_id: str | None,
        *,
        route: str | None = None,
        retention_days: int | None = None,
        since: float | None = None,
        backlog: Sequence[tuple[int, float, bytes]] = (),
        receipt: dict[str, Any] | None = None,
        tenant: Tenant | None = None,
    ) -> tuple[str, Recorder] | None:
        """A new recorder for `call_id`, or None if recording is disabled or storage refuses.
        `receipt`: the call's consent receipt as decided, for the list's language and outcome.

        `since` (monotonic time) starts the recording's timeline earlier than now, and `backlog`
        holds the frames (channel, captured at, PCM) held in memory since then: a recording
        session decided after a window is written from its start.

        `tenant`: whose keys it is sealed to (its recipients and escrow); None: the implicit
        tenant's. A refusal is logged and audited; the caller's call goes on unrecorded either way.
        """
        tenant = tenant if tenant is not None else self.tenants.implicit
        if not tenant.recipients or self.engine is None:
            return None
        rec_id = new_id()
        recipients, key_enc = tenant.sealing, None
        if self.key_per_recording:
            own, key_enc = keys.new_recording_key(tenant.sealing)
            recipients = [own]
        try:
            writer = self.store.create()
        except StoreError as e:
            log.error("recording not started: %s", e)
            self.index.append_audit(self.actor, "recording.failed", call_id or "-", {"error": str(e)})
            return None
        self.index.add_recording(
            RecordingRow(
                id=rec_id,
                object_name=writer.name,
                started_at=utcnow(),
                call_id=call_id,
                sample_rate=self.sample_rate,
                channels=2,
                route=route,
                retention_days=retention_days,
                writer=process_token(node=self.node),
                key_enc=key_enc,
                node=self.node or None,
                language=rc.language(receipt) if receipt else None,
                consent=rc.outcome(receipt) if receipt else None,
                tenant=tenant.stored,
            )
        )
        self.index.append_audit(self.actor, "recording.started", rec_id, {"call": call_id})
        recorder = Recorder(
            writer,
            recipients,
            sample_rate=self.sample_rate,
            pause_mode=self.pause_mode,
            queue_frames=500 + 2 * len(backlog),
            start=since,
        )
        for channel, at, pcm in backlog:  # before the engine sees it: none of it is late yet
            recorder.push_frame(channel, pcm, at)
        recorder.on_sealed = lambda n, digest: self.checkpoints.note(rec_id, n, digest)
        recorder.done.add_done_callback(lambda fut: self._finished(rec_id, fut))
        self.engine.add(recorder)
        return rec_id, recorder

    # -- what happens to a recording during its call, audited -----------------------------------

    def consent_decided(self, call_id: str, receipt: dict[str, Any], decision: str, reason: str) -> None:
        """The decision, provable: the receipt stored and its digest in the audit log."""
        self.index.put_consent_receipt(call_id, receipt)
        self.index.append_audit(
            "gateway",
            "consent.decided",
            call_id,
            {"decision": decision, "reason": reason, "receipt": rc.digest(receipt)},
        )

    def consent_withdrawn(self, call_id: str, receipt: dict[str, Any], rec_id: str | None) -> None:
        """`*9` after a grant: the receipt says so, and the audit log names the recording deleted."""
        self.index.put_consent_receipt(call_id, receipt)
        if rec_id is not None:
            try:
                self.index.update_recording(rec_id, consent=rc.Outcome.WITHDRAWN)
            except ix.NotFound:  # never listed (its row was not written): nothing to mark
                pass
        self.index.append_audit("caller", "consent.withdrawn", call_id, {"recording": rec_id})

    def controlled(self, rec_id: str | None, call_id: str, op: str, actor: str) -> None:
        """A recording paused, resumed or stopped during its call, by a helpline key or a
        supervisor (`actor`)."""
        verb = {"pause": "paused", "resume": "resumed", "stop": "stopped"}[op]
        self.index.append_audit(actor, f"recording.{verb}", rec_id or "-", {"call": call_id})

    def withdraw(self, rec_id: str, recorder: Recorder) -> None:
        """Consent withdrawn: a running recording is discarded (the engine drops it and
        `_finished` deletes its object); one that had already been finalised is deleted now.
        If it is being finalised at this very moment, `_finished` deletes it when done. What
        became of each recording is known here, so nothing is read from the index (which may
        be out of reach mid-call)."""
        recorder.discard()
        with self._lock:
            result = self._results.get(rec_id)
            if result is None:
                self._withdrawn.add(rec_id)
                return
        self._delete_withdrawn(rec_id, result)

    def _delete_withdrawn(self, rec_id: str, result: RecordingResult) -> None:
        from .retention import delete_object

        if result.status in (RecordingStatus.COMPLETE, RecordingStatus.INCOMPLETE):
            delete_object(
                self.store,
                self.index,
                rec_id,
                result.object_name,
                result.bytes,
                None,
                "caller",
                "consent withdrawn",
                has_key=self.key_per_recording,
            )

    def call_over(self, rec_id: str) -> None:
        """The recording's call has ended: nobody can withdraw from it any more, so what became
        of the recording need not be kept (a worker would otherwise hold it for thousands of
        calls)."""
        with self._lock:
            if self._results.pop(rec_id, None) is None:
                self._over.add(rec_id)  # its result is still to come

    def _finished(self, rec_id: str, fut: Future[RecordingResult]) -> None:
        result = fut.result()
        with self._lock:
            self._finalise(rec_id, result)
            if rec_id in self._over:
                self._over.discard(rec_id)
            else:  # a live call can still withdraw (a recording a supervisor stopped)
                self._results[rec_id] = result
                while len(self._results) > 10_000:  # bounded whatever happens
                    self._results.pop(next(iter(self._results)))
            withdrawn = rec_id in self._withdrawn
            self._withdrawn.discard(rec_id)
        if withdrawn:
            self._delete_withdrawn(rec_id, result)  # a no-op if the engine had discarded it anyway

    def _finalise(self, rec_id: str, result: RecordingResult) -> None:
        try:
            if result.status == RecordingStatus.DISCARDED:
                if self.key_per_recording:
                    self.index.update_recording(rec_id, key_enc=None)
                self._delete_object(result.object_name)
                self.index.update_recording(
                    rec_id,
                    status=RecordingStatus.DISCARDED,
                    finished_at=utcnow(),
                    bytes=0,
                    sha256=None,
                    duration_s=0.0,
                )
                self.index.append_audit(
                    self.actor,
                    "recording.discarded",
                    rec_id,
                    {"reason": "consent withdrawn", "bytes_deleted": result.bytes},
                )
                return
            status = result.status
            self.index.update_recording(
                rec_id,
                status=status,
                finished_at=utcnow(),
                bytes=result.bytes,
                sha256=result.sha256,
                duration_s=round(result.duration_s, 3),
                error=result.error,
            )
            details = {
                "bytes": result.bytes,
                "duration_s": round(result.duration_s, 3),
                "frames_overflowed": result.stats.get("frames_overflowed", 0),
                # What a reviewer needs to read the recording right: how much of it is silence
                # the gateway put in for audio that never came, and how much came and was not kept.
                "silence_filled_s": result.silence_s,
                "audio_dropped_s": result.dropped_s,
            }
            if result.error:
                details["error"] = result.error
            self.index.append_audit(self.actor, f"recording.{status}", rec_id, details)
            try:
                self.sign(rec_id)
            except IndexUnavailable:
                self._unsigned.add(rec_id)
        except Exception:
            log.exception("index update for recording %s failed", rec_id)

    def retry_signatures(self, _replayed: int = 0) -> None:
        """Sign what was finalised while the index was out of reach (once it is back)."""
        for rec_id in sorted(self._unsigned):
            try:
                self.sign(rec_id)
            except IndexUnavailable:
                return
            except Exception:
                log.exception("signing recording %s failed", rec_id)
            self._unsigned.discard(rec_id)

    def sign(self, rec_id: str) -> None:
        """Sign the recording's manifest as it now stands in the index (no-op without a key)."""
        if self.signer is None:
            return
        row = self.index.get_recording(rec_id)
        receipt = None
        if row.call_id is not None:
            try:
                receipt = self.index.get_consent_receipt(row.call_id)
            except ix.NotFound:
                receipt = None
        self.index.update_recording(rec_id, signature=signing.sign(self.signer, row, receipt))

    def rewrap(self, rec_id: str, identities: Sequence[age.AnyIdentity]) -> bool:
        """Re-encrypt one finished recording to its tenant's configured recipients and escrow
        (none: the implicit tenant, [recording] recipients) without decrypting its
        audio: only its header changes (its file key, or with a key of its own a new such key,
        wrapped anew); the sealed payload is copied as it is, into a new object. The index then
        names the new object and is signed again, the old object is deleted, and it is audited.
        False: `identities` do not open it (rewrapped already, or someone else's key); nothing
        changes then. StoreError, IndexUnavailable: stopped; run again to go on."""
        row = self.index.get_recording(rec_id)
        try:
            recipients = self.tenants.get(row.tenant).sealing
        except KeyError:
            raise GatewayError(
                f"recording {rec_id} belongs to tenant {row.tenant!r}, which [[tenants]] no longer "
                "lists: add it back (with its new recipients) to move its recordings"
            ) from None
        if (
            row.status
            not in (RecordingStatus.COMPLETE, RecordingStatus.TRUNCATED, RecordingStatus.INCOMPLETE)
            or not recipients
        ):
            return False
        writer = None
        try:
            with self.store.open(row.object_name) as f:
                header = fmt.parse(f)
                old_len = len(header.marshal())
                key_enc = row.key_enc
                try:
                    if row.key_enc is not None:  # its own key: a new one, of the recipients' kind
                        own = keys.unwrap(row.key_enc, identities)
                        recipient, key_enc = keys.new_recording_key(recipients)
                        new_header = age.rewrap_header(header, own, [recipient])
                    else:
                        new_header = age.rewrap_header(header, identities, recipients)
                except age.NoIdentityMatchError:
                    return False
                writer = self.store.create()
                writer.append(new_header)
                for block in iter(lambda: f.read(1 << 20), b""):
                    writer.append(block)
                writer.close()
        except BaseException:
            if writer is not None:
                writer.close()
                self._delete_object(writer.name)
            raise
        # A truncated recording's row covers the prefix its writer committed (recover()).
        covered = row.bytes - old_len + len(new_header) if row.status == RecordingStatus.TRUNCATED else None
        size = self.store.size(writer.name) if covered is None else covered
        self.index.update_recording(
            rec_id,
            object_name=writer.name,
            bytes=size,
            sha256=prefix_sha256(self.store, writer.name, covered),
            key_enc=key_enc,
        )
        self.sign(rec_id)
        old_removed = True
        try:
            self._delete_object(row.object_name)
        except StoreError as e:  # Object Lock: the old version stays until its date
            log.warning("recording %s rewrapped; its old object stays in the store: %s", rec_id, e)
            old_removed = False
        self.index.append_audit(
            self.actor,
            "recording.rewrapped",
            rec_id,
            {
                "recipients": len(recipients),
                "post_quantum": any(map(age.is_post_quantum, recipients)),
                **({"tenant": row.tenant} if row.tenant else {}),
                "own_key": key_enc is not None,
                "old_object_removed": old_removed,
            },
        )
        return True

    def _recover_truncated(self, row: RecordingRow) -> None:
        size = self.store.size(row.object_name)
        committed, digest = row.bytes, row.sha256
        if not committed or digest is None:
            self.index.update_recording(
                row.id,
                status=RecordingStatus.TRUNCATED,
                bytes=size,
                sha256=None,
                error="writer stopped before its first checkpoint: nothing is signed",
            )
            self.index.append_audit(
                self.actor, "recording.truncated", row.id, {"bytes": size, "signed_bytes": 0}
            )
            return
        if size < committed or prefix_sha256(self.store, row.object_name, committed) != digest:
            self.index.update_recording(
                row.id,
                status=RecordingStatus.TRUNCATED,
                sha256=None,
                error=(
                    "ciphertext does not match the writer's last checkpoint: altered, replaced or cut "
                    "after it was written; not signed"
                ),
            )
            self.index.append_audit(
                self.actor,
                "recording.checkpoint_mismatch",
                row.id,
                {"bytes_found": size, "bytes_committed": committed},
            )
            return
        tail = size - committed
        error = "writer stopped before the final chunk"
        if tail:
            error += f"; {tail} bytes after the writer's last checkpoint are kept but not signed"
        self.index.update_recording(row.id, status=RecordingStatus.TRUNCATED, error=error)
        self.index.append_audit(
            self.actor, "recording.truncated", row.id, {"bytes": size, "signed_bytes": committed}
        )
        self.sign(row.id)

    def _older_than(self, name: str, seconds: float) -> bool:
        try:
            return self.store.age_s(name) > seconds
        except ObjectNotFound:
            return False

    def _delete_object(self, name: str) -> None:
        try:
            self.store.delete(name)
        except ObjectNotFound:
            pass

    def recover(self) -> list[str]:
        """After a crash: recordings whose writer died are marked truncated, kept, and audited.

        Only what the writer itself committed is signed: while recording it checkpoints, after
        every durable chunk, the size and SHA-256 of the object so far (`checkpoint_recording`).
        Recovery checks that the object still begins with exactly those bytes and signs that
        prefix; bytes after the last checkpoint (at most the chunk that was being appended)
        are kept but not signed, and an object that no longer matches its checkpoint is marked
        and never signed: recovery cannot launder altered ciphertext into a valid signature.

        Their sealed chunks decrypt (`gateway recordings export` recovers every sealed chunk;
        `age -d` prints them, then reports the missing end). Recordings of live writers, of
        writers on other hosts, and partial legacy imports (import-legacy cleans those) are left
        alone, so this is safe to run at any time.
        """
        recovered = []
        for row in self.index.list_recordings(RecordingStatus.RECORDING):
            if row.origin == "legacy" or not writer_is_gone(row.writer, self.node):
                continue
            if self.store.exists(row.object_name):
                self._recover_truncated(row)
            else:
                self.index.update_recording(
                    row.id,
                    status=RecordingStatus.INCOMPLETE,
                    bytes=0,
                    sha256=None,
                    error="object missing after restart",
                )
                self.index.append_audit(self.actor, "recording.lost", row.id, {})
            recovered.append(row.id)
        known = {r.object_name for r in self.index.list_recordings()}
        for name in self.store.local_names():
            # A writer creates its object just before the index row: skip objects that new.
            if name not in known and self._older_than(name, 60):
                rec_id = new_id()
                self.index.add_recording(
                    RecordingRow(
                        id=rec_id,
                        object_name=name,
                        started_at=utcnow(),
                        status=RecordingStatus.TRUNCATED,
                        bytes=self.store.size(name),
                        sha256=object_sha256(self.store, name),
                        error="found in the store without an index row",
                    )
                )
                self.index.append_audit(self.actor, "recording.orphan_found", rec_id, {})
                recovered.append(rec_id)
        return recovered
