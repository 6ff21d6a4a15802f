"""Sending the audit chain's signed checkpoints to witnesses outside the gateway's control.

A checkpoint (storage/audit.py) is the chain's head signed with the gateway's Ed25519 key.
It is worth something only where the gateway cannot take it back: a remote syslog
(`[audit] witness_syslog`), an append-only file on storage the gateway's user cannot rewrite
(`[audit] witness_file`, e.g. a WORM or another host's mount), and the JSON log stream of
`gateway run` (journald, a log shipper). `gateway audit verify --checkpoint FILE` checks the
chain against what a witness kept.

Emitting never fails the caller: an unreachable witness is logged, and the next checkpoint
covers everything since.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import socket

from ..config import WitnessConfig, parse_syslog_target
from ..storage import audit
from ..storage.index import Index
from ..storage.rows import utcnow

log = logging.getLogger("gateway.audit.witness")


class Witness:
    def __init__(self, config: WitnessConfig, *, log_stream: bool = False) -> None:
        self.config = config
        self.log_stream = log_stream
        self._syslog: logging.Logger | None = None
        if config.witness_syslog:
            address, socktype = parse_syslog_target(config.witness_syslog)
            handler = logging.handlers.SysLogHandler(
                address=address,
                facility=logging.handlers.SysLogHandler.LOG_AUTH,
                socktype=socket.SocketKind(socktype),
            )
            handler.setFormatter(logging.Formatter("consent-gateway: %(message)s"))
            handler.append_nul = False
            self._syslog = logging.getLogger(f"gateway.audit.witness.syslog.{id(self)}")
            self._syslog.propagate = False
            self._syslog.setLevel(logging.INFO)
            self._syslog.addHandler(handler)

    def emit(self, cp: audit.Checkpoint) -> None:
        line = cp.line()
        if self.log_stream:
            log.info("audit checkpoint %s", line)
        if self._syslog is not None:
            try:
                self._syslog.info(line)
            except Exception:
                log.exception(
                    "audit checkpoint not sent to the syslog witness %s", self.config.witness_syslog
                )
        if self.config.witness_file is not None:
            try:
                fd = os.open(
                    self.config.witness_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640
                )
                try:
                    os.write(fd, (line + "\n").encode())
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as e:
                log.error(
                    "audit checkpoint not written to the witness file %s: %s",
                    self.config.witness_file,
                    e.strerror,
                )

    def close(self) -> None:
        if self._syslog is not None:
            for h in list(self._syslog.handlers):
                h.close()
                self._syslog.removeHandler(h)


def checkpoint(
    index: Index, key: object, witness: Witness, *, since: tuple[int, str] | None = None
) -> audit.Checkpoint | None:
    """Sign the chain's head, keep it in the index and send it to the witnesses. Nothing when
    the log is empty or its head is still `since` (nothing new to anchor)."""
    head = index.audit_head()
    if head[0] == 0 or head == since:
        return None
    cp = audit.make_checkpoint(head[0], head[1], utcnow(), key)  # type: ignore[arg-type]
    try:
        index.add_checkpoint(cp)
    except Exception:
        log.exception("cannot keep the audit checkpoint in the index")
    witness.emit(cp)
    return cp
