"""Helpers for tests that need an initialised gateway and some recordings in it."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gateway.app.gateway import Gateway
from gateway.cli import main
from gateway.recording.recorder import RecorderEngine
from gateway.storage import pii
from gateway.storage.rows import CallRow, utcnow
from tests.audio import frames, tone


@dataclass
class GatewayUnderTest:
    dir: Path
    config: Path
    key: Path
    recipient: str

    def run(self, *args: str) -> int:
        return main(["--config", str(self.config), *args])

    def open(self) -> Gateway:
        return Gateway.open(self.config)

    def set(self, section: str, key: str, value: object) -> None:
        """Change one setting in the written configuration (`value` as a JSON literal, which
        TOML reads the same for strings, numbers and booleans)."""
        lines = self.config.read_text().splitlines()
        inside = False
        for i, line in enumerate(lines):
            if line.startswith("["):
                inside = line.strip() == f"[{section}]"
            elif inside and line.startswith(f"{key} = "):
                if line.rstrip().endswith("[") and "]" not in line:  # a multi-line array
                    end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "]")
                    del lines[i + 1 : end + 1]
                lines[i] = f"{key} = {json.dumps(value)}"
                self.config.write_text("\n".join(lines) + "\n")
                return
        raise KeyError(f"[{section}] {key} is not in {self.config}")

    def share_index(self, url: str, *others: GatewayUnderTest) -> None:
        """This gateway and `others` on one PostgreSQL index, as one system: the same cluster
        key in each one's secrets (what `gateway init --index-url ... --cluster-key` does)."""
        from gateway.supervisor import channel

        key = self.dir / "secrets" / "cluster.key"
        if not key.exists():
            channel.create_key(key)
        for gw in (self, *others):
            gw.set("index", "url", url)
            if gw is not self:
                (gw.dir / "secrets" / "cluster.key").unlink(missing_ok=True)
                shutil.copy2(key, gw.dir / "secrets" / "cluster.key")

    def record(self, seconds: float = 3.0, call_id: str | None = None, number: str | None = None) -> str:
        """A complete recording of a 440 Hz caller and a 1000 Hz helpline, made without waiting.
        With `number`, a call from that number is created for it."""
        gw = self.open()
        if number is not None:
            call_id = new_call(
                gw.index, call_id or f"call-{number[-4:]}-{len(gw.index.list_recordings())}", number, gw
            )
        engine = RecorderEngine(start_thread=False)
        service = gw.recording_service(engine, actor="test")
        started = service.start(call_id)
        assert started is not None
        rec_id, rec = started
        t = 0.0
        for a, b in zip(frames(tone(440, seconds)), frames(tone(1000, seconds)), strict=True):
            rec.push_frame(0, a, at=rec._t0 + t)
            rec.push_frame(1, b, at=rec._t0 + t)
            t += 0.02
            if rec.queued > 100:
                engine.tick()
        rec.finish(at=rec._t0 + t)
        engine.tick()
        rec.done.result(timeout=5)
        gw.close()
        return rec_id


def new_call(index, call_id: str, number: str | None = None, gw=None) -> str:
    """A call row; with a number, stored as the gateway stores it (age-encrypted, nothing else)."""
    row = CallRow(call_id, utcnow(), route="test")
    if number is not None:
        row.caller_enc = pii.seal_value(number, gw.config.recording.recipients)
    index.add_call(row)
    index.put_consent_receipt(call_id, {"call_id": call_id, "decision": "granted", "digits": []})
    return call_id


def make_gateway(tmp_path: Path) -> GatewayUnderTest:
    key = tmp_path / "operator-key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    d = tmp_path / "gw"
    assert main(["init", "--dir", str(d), "--recipient", recipient]) == 0
    return GatewayUnderTest(d, d / "gateway.toml", key, recipient)
