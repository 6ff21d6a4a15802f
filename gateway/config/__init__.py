"""The gateway's TOML configuration: its sections (sections.py: each setting declared once,
with its default, its comment and its checks), loading with one-line errors that name the
setting, and the commented file `gateway init` writes (derived from the same declarations).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..sip.secure import SrtpPolicy, is_tls_uri
from .fields import Section, render_section, suggest
from .routes import ROUTE_KEYS, Route, default_route, load_routes, routes_example
from .sections import (
    DEFAULT_PROMPTS,
    MODES,
    SECTIONS,
    CallsConfig,
    ConsentConfig,
    DashboardConfig,
    IndexConfig,
    NodeConfig,
    NumbersConfig,
    Paths,
    PbxConfig,
    PromptsConfig,
    RecordingConfig,
    ReviewConfig,
    SipConfig,
    SiprecConfig,
    StoreConfig,
    WitnessConfig,
)
from .tenants import Tenant, Tenants, bind_routes, load_tenants, tenants_example
from .values import check_sip_uri, is_loopback, parse_hostport, parse_ipv4_network, parse_syslog_target

__all__ = [
    "DEFAULT_PROMPTS",
    "MODES",
    "CallsConfig",
    "Config",
    "ConsentConfig",
    "DashboardConfig",
    "ReviewConfig",
    "IndexConfig",
    "NodeConfig",
    "NumbersConfig",
    "Paths",
    "PbxConfig",
    "PromptsConfig",
    "RecordingConfig",
    "Route",
    "Tenant",
    "Tenants",
    "SipConfig",
    "SiprecConfig",
    "StoreConfig",
    "WitnessConfig",
    "check_sip_uri",
    "is_loopback",
    "load",
    "parse_hostport",
    "parse_ipv4_network",
    "parse_syslog_target",
    "render",
]


@dataclass
class Config:
    path: Path
    paths: Paths
    recording: RecordingConfig
    index: IndexConfig = field(default_factory=IndexConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    sip: SipConfig = field(default_factory=SipConfig)
    pbx: PbxConfig = field(default_factory=PbxConfig)
    consent: ConsentConfig = field(default_factory=ConsentConfig)
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    node: NodeConfig = field(default_factory=NodeConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    review: ReviewConfig = field(default_factory=ReviewConfig)
    witness: WitnessConfig = field(default_factory=WitnessConfig)  # the [audit] section
    numbering: NumbersConfig = field(default_factory=NumbersConfig)  # the [numbers] section
    siprec: SiprecConfig = field(default_factory=SiprecConfig)
    routes: list[Route] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    tenants: Tenants | None = None  # None: built from [recording] recipients (see tenancy)

    @property
    def tenancy(self) -> Tenants:
        """The system's tenants (config/tenants.py): [[tenants]], or the implicit one."""
        if self.tenants is None:
            self.tenants = Tenants.of([], self.recording.recipients)
        return self.tenants

    def tenant_of(self, route: Route) -> Tenant:
        """The tenant whose keys a call on this route is recorded to."""
        return self.tenancy.get(route.tenant or None)

    def route_for(self, number: str) -> Route | None:
        """The route for a dialled number: an exact match, else the "*" route, else None."""
        by_number = {r.number: r for r in self.routes}
        return by_number.get(number) or by_number.get("*")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found (create one with `gateway init`)") from None
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from None


def _parse(path: Path, data: bytes) -> dict[str, Any]:
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config {path} is not valid TOML: {e}") from None


# A configuration a node's fork server loaded before forking its workers, with the file's bytes
# then. A worker's first load() of that file takes it if the file is unchanged: parsing and
# checking it again would write to hundreds of shared pages (reference counts of the code it
# runs), each copied into every worker (BENCHMARKS.md, node memory, third pass).
_preloaded: dict[Path, tuple[bytes, Config]] = {}


def preload(path: str | Path) -> Config:
    """load(), kept for the next load() of the same unchanged file in this process or a fork."""
    path = Path(path)
    data = _read_bytes(path)
    config = _load(path, data)
    _preloaded[path] = (data, config)
    return config


def load(path: str | Path) -> Config:
    path = Path(path)
    data = _read_bytes(path)
    kept = _preloaded.pop(path, None)
    if kept is not None and kept[0] == data:
        # The same bytes give the same configuration: the file is its only input (the TLS files
        # it names were found readable at the preload, and are read again where they are used).
        return kept[1]
    return _load(path, data)


def _load(path: Path, data: bytes) -> Config:
    raw = _parse(path, data)
    names = [s.NAME for s in SECTIONS]
    for name in raw:
        if name not in names and name not in ("routes", "tenants"):
            raise ConfigError(f"unknown section [{name}] in {path}{suggest(name, names)}")
    paths_raw = raw.get("paths", {})
    if (
        not isinstance(paths_raw, dict)
        or not isinstance(paths_raw.get("data_dir"), str)
        or not paths_raw["data_dir"]
    ):
        raise ConfigError(f"[paths] data_dir is required in {path}")
    paths: Paths = Paths.load(raw, path.parent)
    loaded: dict[str, Any] = {s.NAME: s.load(raw, paths.data_dir) for s in SECTIONS if s is not Paths}
    node: NodeConfig = loaded["node"]
    calls: CallsConfig = loaded["calls"]
    # Rules that tie two sections together.
    if node.kamailio and calls.rtp_port_range < 8 * node.pool_max:
        raise ConfigError(
            f"[calls] rtp_port_range {calls.rtp_port_range} is too small for {node.pool_max} workers: "
            f"each needs 8 RTP ports (two calls, two legs, RTP and RTCP); use at least {8 * node.pool_max}"
        )
    recording: RecordingConfig = loaded["recording"]
    if loaded["store"].object_lock == "compliance" and not recording.key_per_recording:
        raise ConfigError(
            '[store] object_lock = "compliance" needs [recording] key_per_recording = true: nobody can '
            "delete a locked object before its date, so erasure must destroy the recording's key instead"
        )
    consent: ConsentConfig = loaded["consent"]
    routes = load_routes(raw.get("routes"), default_route(loaded), paths.data_dir)
    listed = load_tenants(raw.get("tenants"))
    tenants = Tenants.of(listed, recording.recipients)
    routes = bind_routes(routes, tenants, raw.get("routes"), recording)
    if loaded["sip"].srtp is not SrtpPolicy.OFF and node.peers:
        raise ConfigError(
            "[node] peers relays overflow calls to other nodes over plain SIP, which would carry "
            "the callers' SDES keys in clear: with [sip] srtp, leave peers empty"
        )
    pbx: PbxConfig = loaded["pbx"]
    if pbx.srtp is not SrtpPolicy.OFF:
        clear = sorted({r.pbx for r in routes if not is_tls_uri(r.pbx)})
        if clear:
            raise ConfigError(
                f'[pbx] srtp = "{pbx.srtp}" needs the helpline leg on TLS (SDES keys travel in the '
                f"SDP), but {', '.join(clear)} is not sips: or ;transport=tls"
            )
    siprec = loaded["siprec"]
    if siprec.listen is not None:
        if not node.kamailio:
            raise ConfigError(
                "[siprec] listen needs [node] kamailio = true: a lone worker cannot tell which of "
                "its addresses a request arrived on (leave it empty to take sessions on [sip] listen)"
            )
        if siprec.listen == loaded["sip"].listen:
            raise ConfigError("[siprec] listen must differ from [sip] listen (or be left empty)")
    return Config(
        path=path,
        paths=paths,
        recording=recording,
        index=loaded["index"],
        store=loaded["store"],
        sip=loaded["sip"],
        pbx=loaded["pbx"],
        consent=consent,
        prompts=loaded["prompts"],
        calls=calls,
        node=node,
        dashboard=loaded["dashboard"],
        review=loaded["review"],
        witness=loaded["audit"],
        numbering=loaded["numbers"],
        siprec=siprec,
        routes=routes,
        raw=raw,
        tenants=tenants,
    )


HEADER = """\
# Consent gateway configuration, written by `gateway init`.
# Every setting is shown; the values are the defaults unless init was told otherwise.
"""


def render_with(overrides: dict[str, dict[str, Any]]) -> str:
    """The complete, commented configuration: every setting at its default, except the TOML
    values in `overrides` ({section: {key: value}})."""
    for section, values in overrides.items():
        cls = next((s for s in SECTIONS if s.NAME == section), None)
        if cls is None or any(k not in {f.name for f in cls.settings()} for k in values):
            raise ValueError(f"no such setting in [{section}]: {sorted(values)}")
    parts = (
        [HEADER]
        + [render_section(s, overrides.get(s.NAME, {})) for s in SECTIONS]
        + [
            tenants_example(),
            routes_example(),
        ]
    )
    return "\n".join(parts)


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
    index_url: str = "",
    node_name: str = "",
    extra: dict[str, dict[str, Any]] | None = None,
) -> str:
    """What `gateway init` writes; `extra`: further settings ({section: {key: TOML value}})."""
    overrides: dict[str, dict[str, Any]] = {
        "paths": {"data_dir": str(data_dir)},
        "index": {"url": index_url},
        "recording": {"recipients": list(recipients)},
        "sip": {"listen": sip_listen},
        "pbx": {"uri": pbx_uri},
        "consent": {"mode": mode},
        "node": {
            "name": node_name,
            "kamailio": bool(workers),
            "workers": workers or 2,
            "trunks": list(trunks or []),
        },
        "dashboard": {"listen": dashboard_listen},
    }
    for section, values in (extra or {}).items():
        overrides.setdefault(section, {}).update(values)
    return render_with(overrides)


# deploy/gateway.toml.example: a production node of two (the other at 10.0.0.21), generated from
# the same declarations (tests/test_config.py keeps the file equal to it):
#   .venv/bin/python -m gateway.config example > deploy/gateway.toml.example
EXAMPLE: dict[str, dict[str, Any]] = {
    "paths": {"data_dir": "/var/lib/consent-gateway"},
    "recording": {"recipients": ["age1replacewithyourrecipientreplacewithyourrecipientreplace"]},
    "sip": {"listen": "0.0.0.0:5060"},
    "pbx": {"uri": "sip:helpline@10.0.0.5:5060"},
    "node": {
        "kamailio": True,
        "workers": 8,
        "max_workers": 24,
        "spare_calls": 4,
        "idle_retire_s": 300,
        "trunks": ["192.0.2.10", "198.51.100.0/24"],
        "peers": ["10.0.0.21:5060"],
    },
    "dashboard": {
        "listen": "10.0.0.20:8443",
        "tls_cert": "/etc/consent-gateway/dashboard.crt",
        "tls_key": "/etc/consent-gateway/dashboard.key",
        "server_names": ["gateway.helpline.example"],
    },
    "audit": {"witness_syslog": "udp:10.0.0.9:514"},
    "numbers": {"country_code": "46"},
}


def example() -> str:
    return render_with(EXAMPLE)


__all__ += ["EXAMPLE", "ROUTE_KEYS", "Section", "example", "render_with"]
