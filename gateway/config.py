"""The gateway's TOML configuration: schema, validation with clear messages, and the commented
file `gateway init` writes.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import age
from .errors import ConfigError

MODES = ("opt-out", "opt-in")


def parse_hostport(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{what} must be HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def check_sip_uri(text: str, what: str) -> str:
    if not text.startswith(("sip:", "sips:")) or len(text.split(":", 1)[1]) == 0:
        raise ConfigError(f"{what} must be a SIP URI such as sip:helpline@10.0.0.5:5060, got {text!r}")
    return text


@dataclass
class Paths:
    data_dir: Path
    spool_dir: Path
    index: Path
    secrets_dir: Path

    @property
    def lookup_secret(self) -> Path:
        return self.secrets_dir / "lookup.key"


@dataclass
class RecordingConfig:
    recipients: list[age.Recipient]
    sample_rate: int = 8000
    pause_mode: str = "silence"
    queue_frames: int = 500
    retention_days: int = 90


@dataclass
class Config:
    path: Path
    paths: Paths
    recording: RecordingConfig
    sip_listen: tuple[str, int] = ("127.0.0.1", 5060)
    pbx_uri: str = "sip:helpline@127.0.0.1:5070"
    consent_mode: str = "opt-out"
    decline_key: str = "9"
    accept_key: str = "1"
    grace_s: float = 3.0
    raw: dict[str, Any] = field(default_factory=dict)


# section -> key -> (types, default)
SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], Any]]] = {
    "paths": {"data_dir": ((str,), None), "spool_dir": ((str,), "spool"), "index": ((str,), "index.sqlite3"),
              "secrets_dir": ((str,), "secrets")},
    "recording": {"recipients": ((list,), []), "sample_rate": ((int,), 8000), "pause_mode": ((str,), "silence"),
                  "queue_frames": ((int,), 500), "retention_days": ((int,), 90)},
    "sip": {"listen": ((str,), "127.0.0.1:5060")},
    "pbx": {"uri": ((str,), "sip:helpline@127.0.0.1:5070")},
    "consent": {"mode": ((str,), "opt-out"), "decline_key": ((str,), "9"), "accept_key": ((str,), "1"),
                "grace_s": ((int, float), 3.0)},
}


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _section(raw: dict[str, Any], name: str) -> dict[str, Any]:
    values = raw.get(name, {})
    if not isinstance(values, dict):
        raise ConfigError(f"[{name}] must be a table")
    out = {}
    for key, value in values.items():
        if key not in SCHEMA[name]:
            raise ConfigError(f"unknown setting [{name}] {key}{_suggest(key, list(SCHEMA[name]))}")
        types, _ = SCHEMA[name][key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ConfigError(f"[{name}] {key} must be {' or '.join(t.__name__ for t in types)}, got {value!r}")
        out[key] = value
    return {k: out.get(k, default) for k, (_, default) in SCHEMA[name].items()}


def parse_recipients(values: list[Any], where: str) -> list[age.Recipient]:
    recipients = []
    for i, text in enumerate(values):
        if not isinstance(text, str):
            raise ConfigError(f"{where}[{i}] must be a string")
        try:
            recipients.append(age.parse_recipient(text))
        except age.KeyFormatError as e:
            raise ConfigError(f"{where}[{i}]: {e}") from None
    return recipients


def load(path: str | Path) -> Config:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found (create one with `gateway init`)") from None
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config {path} is not valid TOML: {e}") from None
    for name in raw:
        if name not in SCHEMA:
            raise ConfigError(f"unknown section [{name}] in {path}{_suggest(name, list(SCHEMA))}")
    p, r, sip, pbx, consent = (_section(raw, s) for s in ("paths", "recording", "sip", "pbx", "consent"))
    if not p["data_dir"]:
        raise ConfigError(f"[paths] data_dir is required in {path}")
    base = (path.parent / p["data_dir"]).resolve()
    paths = Paths(base, base / p["spool_dir"], base / p["index"], base / p["secrets_dir"])
    if r["sample_rate"] not in (8000, 16000):
        raise ConfigError(f"[recording] sample_rate must be 8000 or 16000, got {r['sample_rate']}")
    if r["pause_mode"] not in ("silence", "skip"):
        raise ConfigError(f"[recording] pause_mode must be \"silence\" or \"skip\", got {r['pause_mode']!r}")
    if r["queue_frames"] < 10 or r["retention_days"] < 1:
        raise ConfigError("[recording] queue_frames must be >= 10 and retention_days >= 1")
    if consent["mode"] not in MODES:
        raise ConfigError(f"[consent] mode must be one of {', '.join(MODES)}, got {consent['mode']!r}")
    for key in ("decline_key", "accept_key"):
        if consent[key] not in list("0123456789*#"):
            raise ConfigError(f"[consent] {key} must be one DTMF key (0-9, *, #), got {consent[key]!r}")
    return Config(
        path=path,
        paths=paths,
        recording=RecordingConfig(parse_recipients(r["recipients"], "[recording] recipients"),
                                  r["sample_rate"], r["pause_mode"], r["queue_frames"], r["retention_days"]),
        sip_listen=parse_hostport(sip["listen"], "[sip] listen"),
        pbx_uri=check_sip_uri(pbx["uri"], "[pbx] uri"),
        consent_mode=consent["mode"],
        decline_key=consent["decline_key"],
        accept_key=consent["accept_key"],
        grace_s=float(consent["grace_s"]),
        raw=raw,
    )


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(*, data_dir: Path, recipients: list[str], sip_listen: str, pbx_uri: str, mode: str) -> str:
    """The complete, commented configuration `gateway init` writes."""
    rlist = "\n".join(f"    {_toml_str(r)}," for r in recipients)
    rblock = f"recipients = [\n{rlist}\n]" if recipients else "recipients = []"
    return f"""\
# Consent gateway configuration, written by `gateway init`.
# Every setting is shown; the values are the defaults unless init was told otherwise.

[paths]
# Everything the gateway writes lives below data_dir (relative paths are relative to it).
data_dir = {_toml_str(str(data_dir))}
# Encrypted recordings only: a 0700 directory of 0600 age files with random names.
spool_dir = "spool"
# SQLite index: calls, recordings, consent receipts, the hash-chained audit log.
index = "index.sqlite3"
# The local secret that keys caller-number lookup hashes (0700 directory, 0600 file).
secrets_dir = "secrets"

[recording]
# age X25519 recipients: public keys, as `age-keygen -y key.txt` prints them. Every recording
# (and every stored caller number) is encrypted to all of them. The gateway never holds a
# private key: decrypt with `gateway recordings export` or `age -d -i key.txt`.
# With no recipient the gateway records nothing (calls still go through).
{rblock}
# Bridge clock and WAV sample rate: 8000 (default, cheapest) or 16000.
sample_rate = 8000
# What a paused recording contains: "silence" keeps the timeline, "skip" cuts the pause out.
pause_mode = "silence"
# Frames a call may queue between the media thread and the writer before frames are
# dropped (and counted). 500 frames = 5 s of both channels at 20 ms.
queue_frames = 500
# Days a recording is kept before retention deletes it.
retention_days = 90

[sip]
# Where SIP from the trunk arrives (HOST:PORT).
listen = {_toml_str(sip_listen)}

[pbx]
# The helpline PBX that calls are bridged to.
uri = {_toml_str(pbx_uri)}

[consent]
# "opt-out": recorded unless the caller presses decline_key during the notice.
# "opt-in": recorded only if the caller presses accept_key.
mode = {_toml_str(mode)}
decline_key = "9"
accept_key = "1"
# Seconds after the notice ends before silence counts as the caller's answer.
grace_s = 3.0
"""
