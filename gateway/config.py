"""The gateway's TOML configuration: schema, validation with clear messages, and the commented
file `gateway init` writes.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import age
from .errors import ConfigError
from .storage.pii import Numbering
from .telephony.sip import UriError, parse_config_uri

MODES = ("opt-out", "opt-in")


_HOSTNAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


def parse_hostport(text: str, what: str, *, ip_only: bool = False) -> tuple[str, int]:
    """HOST:PORT with a host that is an IP address (IPv6 in brackets) or, unless `ip_only`,
    a DNS name. Nothing else gets through: these values reach Kamailio's configuration."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{what} must be HOST:PORT, got {text!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if ip_only or not _HOSTNAME.fullmatch(host):
            kind = "an IP address" if ip_only else "an IP address or a host name"
            raise ConfigError(f"{what}: the host must be {kind}, got {text!r}") from None
    return host, int(port)


def check_sip_uri(text: str, what: str) -> str:
    try:
        parse_config_uri(text)
    except UriError as e:
        raise ConfigError(
            f"{what} must be a SIP URI such as sip:helpline@10.0.0.5:5060, got {text!r}: {e}"
        ) from None
    return text


def parse_ipv4_network(text: Any, what: str) -> str:
    """An allowlist entry: an IPv4 address or network (IP/mask) no wider than /8; never 0.0.0.0."""
    if not isinstance(text, str):
        raise ConfigError(f"{what} must be an IPv4 address or IP/mask string, got {text!r}")
    try:
        net = ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        raise ConfigError(f"{what} must be an IPv4 address or IP/mask, got {text!r}") from None
    if net.prefixlen < 8:
        raise ConfigError(
            f"{what} {text!r} admits {net.num_addresses} addresses: the allowlist takes "
            "networks of /8 or narrower"
        )
    if (
        net.network_address.is_unspecified
        or net.is_multicast
        or net.network_address == ipaddress.IPv4Address("255.255.255.255")
    ):
        raise ConfigError(f"{what} {text!r} is not a host or network address")
    return str(net) if net.prefixlen < 32 else str(net.network_address)


@dataclass
class Paths:
    data_dir: Path
    spool_dir: Path
    index: Path
    secrets_dir: Path

    @property
    def legacy_lookup_secret(self) -> Path:
        """Where gateways before schema 2 kept the key of their lookup hashes (now removed)."""
        return self.secrets_dir / "lookup.key"

    @property
    def signing_key(self) -> Path:
        return self.secrets_dir / "signing.key"

    @property
    def signing_public(self) -> Path:
        return self.secrets_dir / "signing.pub"


@dataclass
class RecordingConfig:
    recipients: list[age.Recipient]
    sample_rate: int = 8000
    pause_mode: str = "silence"
    queue_frames: int = 500
    retention_days: int = 90
    tap_ptime_ms: int = 40


@dataclass
class Route:
    """What happens to a call by the number dialled; number "*" is the default route."""

    number: str
    mode: str
    language: str
    pbx: str
    retention_days: int
    prompts_dir: Path


@dataclass
class CallsConfig:
    max_duration_s: float = 4 * 3600.0
    pbx_timeout_s: float = 30.0
    rtp_port: int = 40000
    rtp_port_range: int = 1000
    withdraw_sequence: str = "*9"
    pause_sequence: str = "*1"
    resume_sequence: str = "*2"
    event_socket: Path = Path("run/events.sock")


@dataclass
class NodeConfig:
    kamailio: bool = False  # Kamailio in front of a worker pool; False: one worker on [sip] listen
    workers: int = 2
    worker_base_port: int = 5100  # workers listen on 127.0.0.1:base+index
    fail_closed: bool = False  # no worker free: 503 instead of the PBX unrecorded
    trunks: list[str] = field(default_factory=list)  # allowlisted source addresses (IP or IP/mask)
    drain_s: float = 300.0  # SIGTERM: how long current calls may go on
    metrics_listen: tuple[str, int] = ("127.0.0.1", 9464)
    max_workers: int = 0  # the pool grows up to this many workers (0: no growth, = workers)
    spare_calls: int = 2  # free call capacity the supervisor keeps ready, growing the pool
    idle_retire_s: float = 60.0  # a grown worker idle this long, with spare capacity left, retires
    peers: list[tuple[str, int]] = field(default_factory=list)  # other nodes' front doors: overflow

    @property
    def pool_max(self) -> int:
        return max(self.workers, self.max_workers)


def is_loopback(host: str) -> bool:
    """True for "localhost" and loopback IP addresses; a DNS name never counts, whatever it
    looks like ("127.example.org" is not loopback)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class WitnessConfig:
    checkpoint_interval_s: float = 300.0
    syslog: str = ""  # "udp:HOST:PORT", "tcp:HOST:PORT" or "unix:/dev/log"; empty: none
    file: Path | None = None  # append-only file; None: none


def parse_syslog_target(text: str) -> tuple[str | tuple[str, int], int]:
    """(address, socket type) for SysLogHandler, or ValueError saying what is wrong."""
    kind, _, rest = text.partition(":")
    if kind == "unix" and rest.startswith("/"):
        return rest, socket.SOCK_DGRAM
    if kind in ("udp", "tcp"):
        host, _, port = rest.rpartition(":")
        if host and port.isdigit() and 0 < int(port) < 65536:
            return (host.strip("[]"), int(port)), socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    raise ValueError(f"must be udp:HOST:PORT, tcp:HOST:PORT or unix:/PATH, got {text!r}")


@dataclass
class DashboardConfig:
    enabled: bool = True
    listen: tuple[str, int] = ("127.0.0.1", 8080)
    tls: tuple[Path, Path] | None = None  # certificate, key
    idle_timeout_s: float = 900.0
    lockout_after: int = 5  # failed logins in a row before the account is locked
    lockout_s: float = 900.0
    session_max_s: float = 12 * 3600.0  # absolute lifetime of a login, whatever the activity
    server_names: tuple[str, ...] = ()  # Host names browsers use; empty: the listen address (+ localhost)


@dataclass
class Config:
    path: Path
    paths: Paths
    recording: RecordingConfig
    sip_listen: tuple[str, int] = ("127.0.0.1", 5060)
    tls: tuple[str, int, Path, Path] | None = None  # host, port, certificate, key
    pbx_uri: str = "sip:helpline@127.0.0.1:5070"
    consent_mode: str = "opt-out"
    decline_key: str = "9"
    accept_key: str = "1"
    grace_s: float = 3.0
    calls: CallsConfig = field(default_factory=CallsConfig)
    node: NodeConfig = field(default_factory=NodeConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    routes: list[Route] = field(default_factory=list)
    numbering: Numbering = field(default_factory=Numbering)
    witness: WitnessConfig = field(default_factory=WitnessConfig)
    raw: dict[str, Any] = field(default_factory=dict)

    def route_for(self, number: str) -> Route | None:
        """The route for a dialled number: an exact match, else the "*" route, else None."""
        by_number = {r.number: r for r in self.routes}
        return by_number.get(number) or by_number.get("*")


# section -> key -> (types, default)
SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], Any]]] = {
    "paths": {
        "data_dir": ((str,), None),
        "spool_dir": ((str,), "spool"),
        "index": ((str,), "index.sqlite3"),
        "secrets_dir": ((str,), "secrets"),
    },
    "recording": {
        "recipients": ((list,), []),
        "sample_rate": ((int,), 8000),
        "pause_mode": ((str,), "silence"),
        "queue_frames": ((int,), 500),
        "retention_days": ((int,), 90),
        "tap_ptime_ms": ((int,), 40),
    },
    "sip": {
        "listen": ((str,), "127.0.0.1:5060"),
        "tls_listen": ((str,), ""),
        "tls_cert": ((str,), ""),
        "tls_key": ((str,), ""),
    },
    "pbx": {"uri": ((str,), "sip:helpline@127.0.0.1:5070")},
    "consent": {
        "mode": ((str,), "opt-out"),
        "decline_key": ((str,), "9"),
        "accept_key": ((str,), "1"),
        "grace_s": ((int, float), 3.0),
    },
    "prompts": {"dir": ((str,), "")},
    "calls": {
        "max_duration_s": ((int, float), 4 * 3600.0),
        "pbx_timeout_s": ((int, float), 30.0),
        "rtp_port": ((int,), 40000),
        "rtp_port_range": ((int,), 1000),
        "withdraw_sequence": ((str,), "*9"),
        "pause_sequence": ((str,), "*1"),
        "resume_sequence": ((str,), "*2"),
        "event_socket": ((str,), "run/events.sock"),
    },
    "node": {
        "kamailio": ((bool,), False),
        "workers": ((int,), 2),
        "worker_base_port": ((int,), 5100),
        "fail_closed": ((bool,), False),
        "trunks": ((list,), []),
        "drain_s": ((int, float), 300.0),
        "metrics_listen": ((str,), "127.0.0.1:9464"),
        "max_workers": ((int,), 0),
        "spare_calls": ((int,), 2),
        "idle_retire_s": ((int, float), 60.0),
        "peers": ((list,), []),
    },
    "audit": {
        "checkpoint_interval_s": ((int, float), 300.0),
        "witness_syslog": ((str,), ""),
        "witness_file": ((str,), ""),
    },
    "numbers": {
        "country_code": ((str,), ""),
        "national_prefix": ((str,), "0"),
        "international_prefix": ((str,), "00"),
    },
    "dashboard": {
        "enabled": ((bool,), True),
        "listen": ((str,), "127.0.0.1:8080"),
        "tls_cert": ((str,), ""),
        "tls_key": ((str,), ""),
        "idle_timeout_s": ((int, float), 900.0),
        "lockout_after": ((int,), 5),
        "lockout_s": ((int, float), 900.0),
        "session_max_s": ((int, float), 43200.0),
        "server_names": ((list,), []),
    },
}
ROUTE_KEYS: dict[str, tuple[tuple[type, ...], Any]] = {
    "number": ((str,), None),
    "mode": ((str,), None),
    "language": ((str,), "en"),
    "pbx": ((str,), None),
    "retention_days": ((int,), None),
    "prompts": ((str,), ""),
}
DEFAULT_PROMPTS = Path(__file__).resolve().parent.parent / "ivr_prompts"


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
            raise ConfigError(
                f"[{name}] {key} must be {' or '.join(t.__name__ for t in types)}, got {value!r}"
            )
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
        if name not in SCHEMA and name != "routes":
            raise ConfigError(f"unknown section [{name}] in {path}{_suggest(name, list(SCHEMA))}")
    p, r, sip, pbx, consent, prompts, calls, node, dash, numbers, audit_ = (
        _section(raw, s)
        for s in (
            "paths",
            "recording",
            "sip",
            "pbx",
            "consent",
            "prompts",
            "calls",
            "node",
            "dashboard",
            "numbers",
            "audit",
        )
    )
    if not 1 <= node["workers"] <= 256 or not 1024 <= node["worker_base_port"] <= 64000:
        raise ConfigError("[node] workers must be 1..256 and worker_base_port 1024..64000")
    if node["max_workers"] and not node["workers"] <= node["max_workers"] <= 256:
        raise ConfigError(
            f"[node] max_workers must be 0 (no growth) or from workers ({node['workers']}) to 256, "
            f"got {node['max_workers']}"
        )
    if node["spare_calls"] < 0 or node["idle_retire_s"] < 1:
        raise ConfigError("[node] spare_calls must be >= 0 and idle_retire_s >= 1")
    peers = []
    for text in node["peers"]:
        if not isinstance(text, str):
            raise ConfigError(f"[node] peers must be HOST:PORT strings, got {text!r}")
        peer = parse_hostport(text, "[node] peers entry", ip_only=True)
        parse_ipv4_network(peer[0], "[node] peers entry")
        peers.append(peer)
    pool_max = max(node["workers"], node["max_workers"])
    if node["kamailio"] and calls["rtp_port_range"] < 8 * pool_max:
        raise ConfigError(
            f"[calls] rtp_port_range {calls['rtp_port_range']} is too small for {pool_max} workers: "
            f"each needs 8 RTP ports (two calls, two legs, RTP and RTCP); use at least {8 * pool_max}"
        )
    if node["worker_base_port"] + pool_max > 65535:
        raise ConfigError("[node] worker_base_port + max_workers must stay below 65536")
    trunks = [parse_ipv4_network(t, "[node] trunks entry") for t in node["trunks"]]
    if not p["data_dir"]:
        raise ConfigError(f"[paths] data_dir is required in {path}")
    base = (path.parent / p["data_dir"]).resolve()
    paths = Paths(base, base / p["spool_dir"], base / p["index"], base / p["secrets_dir"])
    if r["sample_rate"] not in (8000, 16000):
        raise ConfigError(f"[recording] sample_rate must be 8000 or 16000, got {r['sample_rate']}")
    if r["pause_mode"] not in ("silence", "skip"):
        raise ConfigError(f'[recording] pause_mode must be "silence" or "skip", got {r["pause_mode"]!r}')
    if r["tap_ptime_ms"] not in (20, 40, 60, 80, 100):
        raise ConfigError(f"[recording] tap_ptime_ms must be 20, 40, 60, 80 or 100, got {r['tap_ptime_ms']}")
    if r["queue_frames"] < 10 or r["retention_days"] < 1:
        raise ConfigError("[recording] queue_frames must be >= 10 and retention_days >= 1")
    if consent["mode"] not in MODES:
        raise ConfigError(f"[consent] mode must be one of {', '.join(MODES)}, got {consent['mode']!r}")
    for key in ("decline_key", "accept_key"):
        if consent[key] not in list("0123456789*#"):
            raise ConfigError(f"[consent] {key} must be one DTMF key (0-9, *, #), got {consent[key]!r}")
    for key in ("withdraw_sequence", "pause_sequence", "resume_sequence"):
        seq = calls[key]
        if not (1 <= len(seq) <= 4) or any(c not in "0123456789*#" for c in seq):
            raise ConfigError(f"[calls] {key} must be 1 to 4 DTMF keys, got {seq!r}")
    if calls["max_duration_s"] <= 0 or calls["pbx_timeout_s"] <= 0:
        raise ConfigError("[calls] max_duration_s and pbx_timeout_s must be positive")
    if not (1024 <= calls["rtp_port"] <= 65000) or calls["rtp_port_range"] < 8:
        raise ConfigError("[calls] rtp_port must be 1024..65000 and rtp_port_range at least 8")
    default_prompts = Path(prompts["dir"]) if prompts["dir"] else DEFAULT_PROMPTS
    if not default_prompts.is_absolute():
        default_prompts = base / default_prompts
    check_sip_uri(pbx["uri"], "[pbx] uri")
    routes = _routes(
        raw.get("routes"), consent["mode"], pbx["uri"], r["retention_days"], default_prompts, base
    )
    event_socket = Path(calls["event_socket"])
    tls = None
    if sip["tls_listen"]:
        host, port = parse_hostport(sip["tls_listen"], "[sip] tls_listen", ip_only=True)
        files = []
        for key in ("tls_cert", "tls_key"):
            if not sip[key]:
                raise ConfigError(f"[sip] tls_listen needs [sip] {key}")
            f = Path(sip[key]) if Path(sip[key]).is_absolute() else base / sip[key]
            try:
                f.read_bytes()
            except OSError as e:
                raise ConfigError(f"[sip] {key} {f}: {e.strerror}") from None
            files.append(f)
        tls = (host, port, files[0], files[1])
    dashboard = _dashboard(dash, base)
    return Config(
        path=path,
        paths=paths,
        recording=RecordingConfig(
            parse_recipients(r["recipients"], "[recording] recipients"),
            r["sample_rate"],
            r["pause_mode"],
            r["queue_frames"],
            r["retention_days"],
            r["tap_ptime_ms"],
        ),
        sip_listen=parse_hostport(sip["listen"], "[sip] listen", ip_only=True),
        tls=tls,
        pbx_uri=check_sip_uri(pbx["uri"], "[pbx] uri"),
        consent_mode=consent["mode"],
        decline_key=consent["decline_key"],
        accept_key=consent["accept_key"],
        grace_s=float(consent["grace_s"]),
        calls=CallsConfig(
            float(calls["max_duration_s"]),
            float(calls["pbx_timeout_s"]),
            calls["rtp_port"],
            calls["rtp_port_range"],
            calls["withdraw_sequence"],
            calls["pause_sequence"],
            calls["resume_sequence"],
            event_socket if event_socket.is_absolute() else base / event_socket,
        ),
        node=NodeConfig(
            node["kamailio"],
            node["workers"],
            node["worker_base_port"],
            node["fail_closed"],
            trunks,
            float(node["drain_s"]),
            parse_hostport(node["metrics_listen"], "[node] metrics_listen"),
            node["max_workers"],
            node["spare_calls"],
            float(node["idle_retire_s"]),
            peers,
        ),
        dashboard=dashboard,
        routes=routes,
        numbering=_numbering(numbers),
        witness=_witness(audit_, base),
        raw=raw,
    )


def _witness(a: dict[str, Any], base: Path) -> WitnessConfig:
    if not 10 <= a["checkpoint_interval_s"] <= 86400:
        raise ConfigError(
            f"[audit] checkpoint_interval_s must be 10 to 86400, got {a['checkpoint_interval_s']}"
        )
    if a["witness_syslog"]:
        try:
            parse_syslog_target(a["witness_syslog"])
        except ValueError as e:
            raise ConfigError(f"[audit] witness_syslog {e}") from None
    file = None
    if a["witness_file"]:
        file = Path(a["witness_file"]) if Path(a["witness_file"]).is_absolute() else base / a["witness_file"]
    return WitnessConfig(float(a["checkpoint_interval_s"]), a["witness_syslog"], file)


def _numbering(n: dict[str, Any]) -> Numbering:
    if n["country_code"] and not re.fullmatch(r"[1-9][0-9]{0,2}", n["country_code"]):
        raise ConfigError(
            f"[numbers] country_code must be 1 to 3 digits without '+' (46 for Sweden), "
            f"got {n['country_code']!r}"
        )
    for key in ("national_prefix", "international_prefix"):
        if not re.fullmatch(r"[0-9]{0,4}", n[key]):
            raise ConfigError(f"[numbers] {key} must be up to 4 digits, got {n[key]!r}")
    return Numbering(n["country_code"], n["national_prefix"], n["international_prefix"])


def _dashboard(d: dict[str, Any], base: Path) -> DashboardConfig:
    host, port = parse_hostport(d["listen"], "[dashboard] listen")
    if bool(d["tls_cert"]) != bool(d["tls_key"]):
        raise ConfigError("[dashboard] tls_cert and tls_key go together: set both or neither")
    tls = None
    if d["tls_cert"]:
        files = []
        for key in ("tls_cert", "tls_key"):
            f = Path(d[key]) if Path(d[key]).is_absolute() else base / d[key]
            try:
                f.read_bytes()
            except OSError as e:
                raise ConfigError(f"[dashboard] {key} {f}: {e.strerror}") from None
            files.append(f)
        tls = (files[0], files[1])
    if d["enabled"] and tls is None and not is_loopback(host):
        raise ConfigError(
            f"[dashboard] listen {host}:{port} is not a loopback address: the dashboard "
            "serves logins and live call data, so it needs [dashboard] tls_cert and tls_key "
            "to listen on the network (or listen on 127.0.0.1 behind a TLS proxy)"
        )
    if d["idle_timeout_s"] < 30 or d["lockout_after"] < 1 or d["lockout_s"] < 1:
        raise ConfigError("[dashboard] idle_timeout_s must be >= 30, lockout_after >= 1 and lockout_s >= 1")
    if not d["idle_timeout_s"] <= d["session_max_s"] <= 7 * 86400:
        raise ConfigError("[dashboard] session_max_s must be from idle_timeout_s to 604800 (a week)")
    names = []
    for n in d["server_names"]:
        if not isinstance(n, str) or not (_HOSTNAME.fullmatch(n) or _is_ip(n)):
            raise ConfigError(f"[dashboard] server_names must be host names or IP addresses, got {n!r}")
        names.append(n.lower())
    if d["enabled"] and not names and _is_ip(host) and ipaddress.ip_address(host).is_unspecified:
        raise ConfigError(
            f"[dashboard] listen {host} is every address: set [dashboard] server_names to the "
            "names operators type in their browsers (other Host names are refused)"
        )
    return DashboardConfig(
        d["enabled"],
        (host, port),
        tls,
        float(d["idle_timeout_s"]),
        d["lockout_after"],
        float(d["lockout_s"]),
        float(d["session_max_s"]),
        tuple(names),
    )


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _routes(
    raw_routes: Any, mode: str, pbx: str, retention_days: int, prompts: Path, base: Path
) -> list[Route]:
    if raw_routes is None:
        return [Route("*", mode, "en", pbx, retention_days, prompts)]
    if not isinstance(raw_routes, list) or not all(isinstance(x, dict) for x in raw_routes):
        raise ConfigError("[[routes]] must be an array of tables")
    routes = []
    for i, entry in enumerate(raw_routes):
        where = f"[[routes]] #{i + 1}"
        for key, value in entry.items():
            if key not in ROUTE_KEYS:
                raise ConfigError(f"unknown setting {key!r} in {where}{_suggest(key, list(ROUTE_KEYS))}")
            if not isinstance(value, ROUTE_KEYS[key][0]) or isinstance(value, bool):
                raise ConfigError(f"{where} {key} has the wrong type: {value!r}")
        number = entry.get("number")
        if not number:
            raise ConfigError(f'{where} needs a number (the dialled number, or "*" for the default route)')
        route_mode = entry.get("mode", mode)
        if route_mode not in MODES:
            raise ConfigError(f"{where} mode must be one of {', '.join(MODES)}, got {route_mode!r}")
        route_prompts = Path(entry["prompts"]) if entry.get("prompts") else prompts
        routes.append(
            Route(
                number,
                route_mode,
                entry.get("language", "en"),
                check_sip_uri(entry.get("pbx", pbx), f"{where} pbx"),
                entry.get("retention_days", retention_days),
                route_prompts if route_prompts.is_absolute() else base / route_prompts,
            )
        )
    numbers = [r.number for r in routes]
    if len(set(numbers)) != len(numbers):
        raise ConfigError("[[routes]] lists a number twice")
    return routes


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(
    *,
    data_dir: Path,
    recipients: list[str],
    sip_listen: str,
    pbx_uri: str,
    mode: str,
    workers: int = 0,
    trunks: list[str] | None = None,
    dashboard_listen: str = "127.0.0.1:8080",
) -> str:
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
# The recording-signing key and dashboard accounts (0700 directory, 0600 files).
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
# Milliseconds of audio the recording taps take at a time (20, 40, 60, 80 or 100). Longer
# frames cost less CPU per recorded call; a recording may miss up to one frame at its very end.
tap_ptime_ms = 40

[sip]
# Where SIP from the trunk arrives (HOST:PORT), over UDP and TCP.
listen = {_toml_str(sip_listen)}
# SIP over TLS as well: HOST:PORT, with a PEM certificate and private key. Empty: no TLS.
tls_listen = ""
tls_cert = ""
tls_key = ""

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

[prompts]
# Directory with manifest.toml and the prompt audio; empty: the ivr_prompts/ shipped with
# the gateway.
dir = ""

[calls]
# Longest call the gateway bridges, in seconds; then both legs are hung up.
max_duration_s = 14400
# Seconds to wait for the PBX to answer before the caller hears "unavailable".
pbx_timeout_s = 30
# RTP ports: rtp_port up to rtp_port + rtp_port_range.
rtp_port = 40000
rtp_port_range = 1000
# Mid-call key sequences: the caller withdraws consent (the recording is deleted); the
# helpline pauses and resumes recording.
withdraw_sequence = "*9"
pause_sequence = "*1"
resume_sequence = "*2"
# Unix socket where the worker publishes call events as JSON lines (docs/events.md).
event_socket = "run/events.sock"

[node]
# true: Kamailio listens on [sip] listen and spreads calls over a pool of workers (each holds
# two calls with the stock pjsua2 wheel). false: one worker listens on [sip] listen itself.
kamailio = {"true" if workers else "false"}
# The pool starts with `workers` workers and keeps `spare_calls` of free call capacity ready,
# starting more workers up to max_workers (0: never more than `workers`). A worker started for
# a peak retires after idle_retire_s without calls, once the spare capacity allows it.
workers = {workers or 2}
max_workers = 0
spare_calls = 2
idle_retire_s = 60
# Workers listen on 127.0.0.1:worker_base_port + index.
worker_base_port = 5100
# No worker free (all busy, all down): send the call to the PBX unrecorded, marked
# X-Recording-Consent: unavailable (false, the default for a medical line) or answer 503 (true).
fail_closed = false
# Who may send SIP to the node besides the PBX: the trunks' addresses (IP or IP/mask).
trunks = [{", ".join(_toml_str(t) for t in (trunks or []))}]
# Other nodes' front doors (IP:PORT), for several machines: a call no worker here can take goes
# to a peer before it fails open; a call from a peer is never sent on. List every node on every
# node (peers are also allowed to send SIP here).
peers = []
# On SIGTERM, how long calls in progress may go on before they are hung up (seconds).
drain_s = 300
# Prometheus metrics (text format) at http://HOST:PORT/metrics. Keep it on loopback.
metrics_listen = "127.0.0.1:9464"

[dashboard]
# The operators' live view, served by the node's supervisor (only when [node] runs Kamailio).
# Users: `gateway user add NAME --role viewer|supervisor|auditor|admin`.
enabled = true
# A non-loopback address is refused unless tls_cert and tls_key are set (PEM files).
listen = {_toml_str(dashboard_listen)}
tls_cert = ""
tls_key = ""
# Sessions end after this many seconds without a request (an open live view may go on
# watching, but acting needs a fresh login), and in any case session_max_s after the login.
idle_timeout_s = 900
session_max_s = 43200
# Host names the browser uses for the dashboard; requests for any other name are refused
# (DNS rebinding). Empty: the listen address, plus localhost when it is a loopback address.
server_names = []
# After lockout_after failed logins in a row an account is locked for lockout_s seconds.
lockout_after = 5
lockout_s = 900

[audit]
# The audit log is a hash chain. Every checkpoint_interval_s (and after each CLI command that
# wrote to it) its head is signed with the gateway's key and sent to witnesses outside the
# gateway's control, so that a rewritten or shortened log cannot pass `gateway audit verify
# --checkpoint FILE`: the JSON log of `gateway run`, and optionally a remote syslog
# ("udp:HOST:PORT", "tcp:HOST:PORT" or "unix:/dev/log") and an append-only file on storage
# the gateway's user cannot rewrite.
checkpoint_interval_s = 300
witness_syslog = ""
witness_file = ""

[numbers]
# How caller numbers are read for data-subject requests (`gateway subject ...`): numbers are
# compared in international E.164 form (+46701234567). country_code places national numbers
# (0701234567 with national_prefix "0") and numbers dialled with the international prefix
# (0046701234567). Empty: a national number given to `subject find` is refused as ambiguous.
country_code = ""
national_prefix = "0"
international_prefix = "00"

# Routes by dialled number. Without any [[routes]], every number uses [consent] mode and
# [pbx] uri. A call to a number with no route and no "*" route is refused with 404.
# [[routes]]
# number = "1177"
# mode = "opt-out"
# language = "en"
# pbx = "sip:nurses@10.0.0.5:5060"
# retention_days = 90
# prompts = ""
"""
