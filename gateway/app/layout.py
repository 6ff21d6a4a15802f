"""The running gateway's files in its run directory (the directory of [calls] event_socket,
0700): one object names every path, for the supervisor that makes them, the workers that use
them, and the commands (status, demo, the exposure scan) that read them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Config


@dataclass(frozen=True)
class RunLayout:
    root: Path  # the run directory
    events: Path  # a lone worker's event socket ([calls] event_socket)

    @classmethod
    def of(cls, config: Config) -> RunLayout:
        return cls(config.calls.event_socket.parent, config.calls.event_socket)

    def worker_events(self, index: int | None) -> Path:
        """The event and control socket of a node's worker `index` (None: a lone worker's)."""
        return self.events if index is None else self.events.with_name(f"worker-{index}.sock")

    @property
    def node_status(self) -> Path:
        """The node's status, rewritten by its supervisor every turn (`gateway status`)."""
        return self.root / "node.json"

    @property
    def kamailio(self) -> Path:
        """Kamailio's rendered configuration, control socket and pid file."""
        return self.root / "kamailio"

    @property
    def tls(self) -> Path:
        """The internal hop's certificate and key, made at every start of a node."""
        return self.root / "tls"
