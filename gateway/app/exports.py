"""Access to one recording from the command line, audited: the ciphertext as stored (no key
needed) or the audio decrypted with an operator's identity. The audit log says what happened:
a refused destination is refused before anything is decrypted; a file export is logged once it
is complete (a failure is logged as one); on stdout the audio leaves as it is decrypted, so the
export is logged before the first byte. An access that cannot be logged does not happen."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from .. import age
from ..errors import GatewayError, NotFoundError
from ..recording import export as ex
from ..recording import keys
from ..storage.index import NotFound
from ..storage.rows import RecordingRow, RecordingStatus
from .gateway import Gateway


def recording(gw: Gateway, rec_id: str, what: str) -> RecordingRow:
    """The recording, which must still hold audio (`what`: "fetch", "export")."""
    try:
        row = gw.index.get_recording(rec_id)
    except NotFound:
        raise NotFoundError(f"no recording {rec_id}") from None
    if row.status in (RecordingStatus.DISCARDED, RecordingStatus.DELETED):
        raise NotFoundError(f"recording {row.id} was {row.status} ({row.finished_at}); nothing to {what}")
    return row


def fetch(gw: Gateway, row: RecordingRow, output: str, actor: str) -> list[str]:
    """Write the stored age file as it is to `output` and, for a recording with a key of its
    own, that key (wrapped to the operators) to OUTPUT.key. The files written."""
    if output == "-":
        raise GatewayError("fetch writes files (-o FILE): the ciphertext, and its wrapped key beside it")
    outputs = [output] + ([output + ".key"] if row.key_enc is not None else [])
    written: list[str] = []
    try:
        for path in outputs:
            with ex.open_destination(path, False) as dest:
                written.append(path)
                if path == output:
                    with gw.store.open(row.object_name) as src:
                        for block in iter(lambda: src.read(1 << 20), b""):
                            dest.write(block)
                else:
                    assert row.key_enc is not None
                    dest.write(row.key_enc)
        gw.index.append_audit(
            actor, "recording.fetched", row.id, {"ciphertext": True, "wrapped_key": len(outputs) == 2}
        )
    except BaseException as e:
        for path in written:
            os.unlink(path)
        if isinstance(e, ex.ExportError):
            raise GatewayError(str(e)) from None
        raise
    return outputs


@dataclass
class Exported:
    bytes_out: int
    truncated: bool  # the end of the recording was never written


def export(
    gw: Gateway,
    row: RecordingRow,
    identities: Sequence[age.AnyIdentity],
    output: str,
    actor: str,
    *,
    force: bool = False,
    recover: bool = False,
) -> Exported:
    """Decrypt the recording into `output` ("-": stdout) as WAV, or the format its name asks for."""
    try:
        fmt = ex.output_format(output, row.media_type)
    except ex.ExportError as e:
        raise GatewayError(str(e)) from None
    recover = recover or row.status in (RecordingStatus.TRUNCATED, RecordingStatus.INCOMPLETE)
    to_stdout = output == "-"
    try:
        dest = ex.open_destination(output, force)
    except ex.ExportError as e:
        gw.index.append_audit(
            actor, "recording.export_refused", row.id, {"reason": str(e).split(" (")[0][:200]}
        )
        raise GatewayError(str(e)) from None
    details = {"format": fmt, "destination": "stdout" if to_stdout else "file", "recover": recover}
    try:
        with gw.store.open(row.object_name) as src, dest:
            reader = age.AgeReader(src, keys.identities_for(row.key_enc, list(identities)), recover=recover)
            if to_stdout:
                gw.index.append_audit(actor, "recording.exported", row.id, details)
            result = ex.write_export(reader.chunks(), row.media_type, fmt, dest)
    except BaseException as e:
        if not to_stdout:
            os.unlink(output)  # never leave a half-written plaintext file behind
        gw.index.append_audit(actor, "recording.export_failed", row.id, {"error": e.__class__.__name__})
        if isinstance(e, ex.ExportError):
            raise GatewayError(str(e)) from None
        raise
    if not to_stdout:
        try:
            gw.index.append_audit(actor, "recording.exported", row.id, {**details, "bytes": result.bytes_out})
        except Exception:
            os.unlink(output)  # an access that cannot be logged does not happen
            raise
    return Exported(result.bytes_out, reader.truncated)
