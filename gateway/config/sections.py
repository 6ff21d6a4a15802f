"""The sections of gateway.toml, each with its settings (declared once: default, comment,
conversion) and its own checks. The order here is the order of the file `gateway init` writes."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import age
from ..errors import ConfigError
from ..sip.dtmf import DtmfMethod
from ..sip.secure import SrtpPolicy
from .fields import NUMBER, Section, as_float, setting
from .values import (
    MODES,
    dtmf_keys,
    is_ip,
    is_loopback,
    parse_beep,
    parse_dtmf,
    parse_fingerprints,
    parse_header_name,
    parse_index_url,
    parse_ip_hostport,
    parse_label,
    parse_language,
    parse_languages,
    parse_listen_hostport,
    parse_node_name,
    parse_optional_ip_hostport,
    parse_peers,
    parse_recipients,
    parse_server_names,
    parse_sip_uri,
    parse_siprec_refusal,
    parse_srtp,
    parse_store_url,
    parse_syslog_target,
    parse_trunks,
)


@dataclass
class Paths(Section):
    """Where everything is: data_dir relative to the configuration file, the rest to data_dir."""

    NAME = "paths"
    data_dir: Path = setting(
        "",
        "Everything the gateway writes lives below data_dir (relative paths are relative to it).",
        path=True,
    )
    spool_dir: Path = setting(
        "spool", "Encrypted recordings only: a 0700 directory of 0600 age files with random names.", path=True
    )
    index: Path = setting(
        "index.sqlite3",
        "SQLite index: calls, recordings, consent receipts, the hash-chained audit log.",
        path=True,
    )
    secrets_dir: Path = setting(
        "secrets", "The recording-signing key and dashboard accounts (0700 directory, 0600 files).", path=True
    )

    @classmethod
    def load(cls, raw: dict[str, Any], base: Path) -> Any:
        """`base`: the configuration file's directory (the loader has checked data_dir is set)."""
        data_dir = (base / raw["paths"]["data_dir"]).resolve()
        paths = super().load(raw, data_dir)
        paths.data_dir = data_dir
        return paths

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

    @property
    def cluster_key(self) -> Path:
        """The key every node of a PostgreSQL-shared system seals its messages with (the
        same file on each: supervisor/channel.py)."""
        return self.secrets_dir / "cluster.key"


@dataclass
class IndexConfig(Section):
    NAME = "index"
    url: str = setting(
        "",
        "Where calls, recordings, receipts, holds and the audit log are kept. Empty: the SQLite file\n"
        "[paths] index (one node). postgresql://USER@HOST/DB, or postgresql://USER@/DB?host=/run/postgresql\n"
        "for a local socket: one index shared by several nodes. The password can come from PGPASSWORD\n"
        "or ~/.pgpass rather than this file (libpq's own conventions).",
        parse_index_url,
    )

    @property
    def postgres(self) -> bool:
        return bool(self.url)


@dataclass
class StoreConfig(Section):
    NAME = "store"
    DOC = (
        "Where finished recordings go. Empty url: they stay in the spool (one node). s3://BUCKET/PREFIX:\n"
        "an S3-compatible object store (AWS S3, MinIO, Ceph, SeaweedFS); the spool stays the write-ahead\n"
        "buffer, and a finished recording is uploaded (its SHA-256 checked by the store) and then\n"
        "removed locally. Credentials: here, or the standard AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY\n"
        "environment and ~/.aws files (better: keep secrets out of this file)."
    )
    url: str = setting("", "", parse_store_url)
    endpoint: str = setting(
        "", "The store's address for anything but AWS (https://minio.example:9000); empty: AWS."
    )
    region: str = setting("", "")
    access_key_id: str = setting("", "")
    secret_access_key: str = setting("", "")
    object_lock: str = setting(
        "off",
        '"governance" or "compliance": each object gets a retain-until date from its route\'s retention\n'
        "(and the legal-hold flag mirrors `gateway hold`); the bucket must have Object Lock enabled.\n"
        '"off": no lock.',
    )
    upload_interval_s: float = setting(
        10,
        "Seconds between upload rounds. A store that is down is retried with a back-off that\n"
        "doubles up to upload_max_backoff_s (the longest a recording waits once the store is back).",
        as_float,
        types=NUMBER,
    )
    upload_max_backoff_s: float = setting(300, "", as_float, types=NUMBER)

    @property
    def remote(self) -> bool:
        return bool(self.url)

    def check(self) -> None:
        if self.object_lock not in ("off", "governance", "compliance"):
            raise ConfigError(
                f'[store] object_lock must be "off", "governance" or "compliance", got {self.object_lock!r}'
            )
        if self.object_lock != "off" and not self.url:
            raise ConfigError("[store] object_lock needs [store] url (an object store)")
        if bool(self.access_key_id) != bool(self.secret_access_key):
            raise ConfigError("[store] access_key_id and secret_access_key go together: set both or neither")
        if self.endpoint and not self.endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"[store] endpoint must be an http:// or https:// URL, got {self.endpoint!r}")
        if not 1 <= self.upload_interval_s <= 3600:
            raise ConfigError("[store] upload_interval_s must be 1 to 3600")
        if not self.upload_interval_s <= self.upload_max_backoff_s <= 3600:
            raise ConfigError("[store] upload_max_backoff_s must be from upload_interval_s to 3600")


@dataclass
class RecordingConfig(Section):
    NAME = "recording"
    recipients: list[age.AnyRecipient] = setting(
        [],
        "age recipients: public keys, as `age-keygen -y key.txt` prints them (X25519, age1...) or\n"
        "`gateway keygen --pq` (hybrid post-quantum, age1pq1...), all of one kind. Every recording\n"
        "(and every stored caller number) is encrypted to all of them. The gateway never holds a\n"
        "private key: decrypt with `gateway recordings export` or `age -d -i key.txt`.\n"
        "With no recipient the gateway records nothing (calls still go through).",
        parse_recipients,
    )
    tenant: str = setting(
        "",
        "With [[tenants]]: the tenant whose keys record a call whose route names none (the\n"
        "default route's). Each tenant's recordings are encrypted to its own recipients only.",
    )
    sample_rate: int = setting(8000, "Bridge clock and WAV sample rate: 8000 (default, cheapest) or 16000.")
    pause_mode: str = setting(
        "silence",
        'What a paused recording contains: "silence" keeps the timeline, "skip" cuts the pause out.',
    )
    queue_frames: int = setting(
        500,
        "Frames a call may queue between the media thread and the writer before frames are\n"
        "dropped (and counted). 500 frames = 5 s of both channels at 20 ms.",
    )
    retention_days: int = setting(90, "Days a recording is kept before retention deletes it.")
    key_per_recording: bool = setting(
        False,
        "true: each recording is encrypted to a key of its own, kept only wrapped to the recipients\n"
        "in the index; erasing a recording destroys that key, so a copy the store may not delete\n"
        "(Object Lock compliance mode, a backup) can no longer be decrypted. Needed with\n"
        '[store] object_lock = "compliance".',
    )
    tap_ptime_ms: int = setting(
        40,
        "Milliseconds of audio the recording taps take at a time (20, 40, 60, 80 or 100). "
        "Longer\nframes cost less CPU per recorded call; a recording may miss up to one frame "
        "at its very end.",
    )

    def check(self) -> None:
        if self.sample_rate not in (8000, 16000):
            raise ConfigError(f"[recording] sample_rate must be 8000 or 16000, got {self.sample_rate}")
        if self.pause_mode not in ("silence", "skip"):
            raise ConfigError(f'[recording] pause_mode must be "silence" or "skip", got {self.pause_mode!r}')
        if self.tap_ptime_ms not in (20, 40, 60, 80, 100):
            raise ConfigError(
                f"[recording] tap_ptime_ms must be 20, 40, 60, 80 or 100, got {self.tap_ptime_ms}"
            )
        if self.queue_frames < 10 or self.retention_days < 1:
            raise ConfigError("[recording] queue_frames must be >= 10 and retention_days >= 1")


@dataclass
class SipConfig(Section):
    NAME = "sip"
    listen: tuple[str, int] = setting(
        "127.0.0.1:5060", "Where SIP from the trunk arrives (HOST:PORT), over UDP and TCP.", parse_ip_hostport
    )
    tls_listen: tuple[str, int] | None = setting(
        "",
        "SIP over TLS as well: HOST:PORT, with a PEM certificate and private key. Empty: no TLS.",
        parse_optional_ip_hostport,
    )
    tls_cert: Path | None = setting("", "", path=True)
    tls_key: Path | None = setting("", "", path=True)
    tls_ca: Path | None = setting(
        "",
        "PEM file of the authorities whose client certificates tls_verify_clients accepts.",
        path=True,
    )
    tls_verify_clients: bool = setting(
        False,
        "Trunks connecting over TLS must present a certificate signed by tls_ca (node mode).\n"
        "The allowlist ([node] trunks) applies to TLS peers as well.",
    )
    srtp: SrtpPolicy = setting(
        "off",
        'SRTP on the caller leg: "off", "optional" (when the caller offers it) or "mandatory"\n'
        "(a plain offer is refused with 488). SDES keys travel in the SDP, so anything but\n"
        '"off" needs tls_listen; an offer with keys over plain UDP/TCP is refused (488).',
        lambda v, where: parse_srtp(v, where or "[sip] srtp"),
    )
    max_message_bytes: int = setting(
        8192,
        "Limits for hostile or broken peers: a larger SIP request is refused (513), an INVITE\n"
        "with a larger body (488), and an offer with more media streams (488).",
    )
    max_sdp_bytes: int = setting(4096, "")
    max_media_streams: int = setting(4, "")

    @property
    def tls(self) -> tuple[str, int, Path, Path] | None:
        if self.tls_listen is None or self.tls_cert is None or self.tls_key is None:
            return None
        return (*self.tls_listen, self.tls_cert, self.tls_key)

    def check(self) -> None:
        if self.tls_listen is not None:
            for key in ("tls_cert", "tls_key"):
                f = getattr(self, key)
                if f is None:
                    raise ConfigError(f"[sip] tls_listen needs [sip] {key}")
                _readable(f, f"[sip] {key}")
        if self.tls_verify_clients and self.tls_ca is None:
            raise ConfigError("[sip] tls_verify_clients needs [sip] tls_ca (the authorities to accept)")
        if self.tls_ca is not None:
            _readable(self.tls_ca, "[sip] tls_ca")
        if self.srtp is not SrtpPolicy.OFF and self.tls_listen is None:
            raise ConfigError(
                f'[sip] srtp = "{self.srtp}" needs [sip] tls_listen: SDES keys travel in the SDP, '
                "and the gateway sends them over TLS only"
            )
        if not 1024 <= self.max_message_bytes <= 65535:
            raise ConfigError("[sip] max_message_bytes must be 1024 to 65535")
        if not 256 <= self.max_sdp_bytes <= self.max_message_bytes:
            raise ConfigError("[sip] max_sdp_bytes must be from 256 to max_message_bytes")
        if not 1 <= self.max_media_streams <= 16:
            raise ConfigError("[sip] max_media_streams must be 1 to 16")


def _readable(f: Path, what: str) -> None:
    try:
        f.read_bytes()
    except OSError as e:
        raise ConfigError(f"{what} {f}: {e.strerror}") from None


@dataclass
class PbxConfig(Section):
    NAME = "pbx"
    uri: str = setting(
        "sip:helpline@127.0.0.1:5070",
        "The helpline PBX that calls are bridged to (sips: or ;transport=tls to reach it over TLS).",
        parse_sip_uri,
    )
    srtp: SrtpPolicy = setting(
        "off",
        'SRTP on the helpline leg: "off", "optional" or "mandatory" (the PBX must answer with\n'
        "SRTP or the call is not bridged: it goes on as for an unreachable PBX). Anything but\n"
        '"off" needs every route\'s PBX URI to be sips: or ;transport=tls.',
        lambda v, where: parse_srtp(v, where or "[pbx] srtp"),
    )
    tls_ca: Path | None = setting(
        "",
        "PEM file of the authorities that sign the PBX's TLS certificate. Empty: the system's.",
        path=True,
    )
    whisper: bool = setting(
        False,
        'Before a call is put through, tell the helpline in its language: "recorded call", "not\n'
        'recorded" or "recording unavailable" (besides the X-Recording-Consent header).',
    )
    language: str = setting("en", "", lambda v, where: parse_language(v, where or "[pbx] language"))

    def check(self) -> None:
        if self.tls_ca is not None:
            _readable(self.tls_ca, "[pbx] tls_ca")


@dataclass
class ConsentConfig(Section):
    NAME = "consent"
    mode: str = setting(
        "opt-out",
        '"opt-out": recorded unless the caller presses decline_key during the notice.\n'
        '"opt-in": recorded only if the caller presses accept_key.',
    )
    decline_key: str = setting("9", "")
    accept_key: str = setting("1", "")
    grace_s: float = setting(
        3.0, "Seconds after the notice ends before silence counts as the caller's answer.", as_float
    )
    language: str = setting(
        "en",
        "The notice's language (a route may say otherwise). With languages, the menu's default.",
        lambda v, where: parse_language(v, where or "[consent] language"),
    )
    languages: tuple[str, ...] = setting(
        [],
        'A language menu before the notice ("For English, press 3", each option in its own\n'
        'language, in this order), e.g. ["sv", "en", "fi"]; language is taken on timeout.\n'
        "Empty: no menu.",
        lambda v, where: parse_languages(v, where or "[consent] languages"),
        types=(list,),
    )
    menu_timeout_s: float = setting(
        4.0, "Seconds after the menu before its default language is taken.", as_float, types=NUMBER
    )
    language_header: str = setting(
        "",
        "A SIP header from the trunk naming the caller's language (e.g. Accept-Language); a\n"
        "language it names that the prompts have is used without a menu. Empty: not read.",
        lambda v, where: parse_header_name(v, where or "[consent] language_header"),
    )

    def check(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"[consent] mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        for key in ("decline_key", "accept_key"):
            dtmf_keys(getattr(self, key), f"[consent] {key}", 1)
        if self.languages and self.language not in self.languages:
            raise ConfigError(
                f"[consent] language {self.language!r} is the menu's default, so it must be one of "
                f"[consent] languages {list(self.languages)}"
            )
        if not 1 <= self.menu_timeout_s <= 30:
            raise ConfigError("[consent] menu_timeout_s must be 1 to 30")


DEFAULT_PROMPTS = Path(__file__).resolve().parent.parent.parent / "ivr_prompts"


@dataclass
class PromptsConfig(Section):
    NAME = "prompts"
    dir: Path | None = setting(
        "",
        "Directory with manifest.toml and the prompt audio; empty: the ivr_prompts/ shipped "
        "with\nthe gateway.",
        path=True,
    )

    @property
    def default_dir(self) -> Path:
        return self.dir or DEFAULT_PROMPTS


@dataclass
class CallsConfig(Section):
    NAME = "calls"
    max_duration_s: float = setting(
        14400,
        "Longest call the gateway bridges, in seconds; then both legs are hung up.",
        as_float,
        types=NUMBER,
    )
    pbx_timeout_s: float = setting(
        30,
        'Seconds to wait for the PBX to answer before the caller hears "unavailable".',
        as_float,
        types=NUMBER,
    )
    ack_timeout_s: float = setting(
        8,
        "Seconds an answered caller has to confirm (ACK) the answer; a call still "
        "unconfirmed then\nis ended and its worker slot freed (a caller that never ACKs "
        "would hold it 32 s).",
        as_float,
        types=NUMBER,
    )
    rtp_port: int = setting(40000, "RTP ports: rtp_port up to rtp_port + rtp_port_range.")
    rtp_port_range: int = setting(1000, "")
    bridge_ptime_ms: int = setting(
        40,
        "Milliseconds of audio the media bridge moves per tick: 40 (less CPU per call) or 20.\n"
        "At 40 the audio between caller and helpline is up to 20 ms later, and RTP leaves in\n"
        "pairs of 20 ms packets every 40 ms (what the far end negotiated is unchanged).",
    )
    withdraw_sequence: str = setting(
        "*9",
        "Mid-call key sequences: the caller withdraws consent (the recording is "
        "deleted); the\nhelpline pauses and resumes recording.",
    )
    pause_sequence: str = setting("*1", "")
    resume_sequence: str = setting("*2", "")
    beep_interval_s: float = setting(
        0,
        "While a call is recorded, a short beep into both legs this often (seconds, 5 to 600;\n"
        "some jurisdictions require it). 0: never.",
        lambda v, where: parse_beep(v, where or "[calls] beep_interval_s"),
        types=NUMBER,
    )
    dtmf: DtmfMethod = setting(
        "auto",
        'How keys arrive (a route may say otherwise): "rfc4733" (telephone-event packets), "info"\n'
        '(SIP INFO), "inband" (audio tones, for trunks that carry no events) or "auto" (all of\n'
        "them, each key counted once; tones are listened for until the leg sends an event).",
        lambda v, where: parse_dtmf(v, where or "[calls] dtmf"),
    )
    event_socket: Path = setting(
        "run/events.sock",
        "Unix socket where the worker publishes call events as JSON lines (docs/events.md).",
        path=True,
    )

    def check(self) -> None:
        for key in ("withdraw_sequence", "pause_sequence", "resume_sequence"):
            dtmf_keys(getattr(self, key), f"[calls] {key}", 4)
        if self.max_duration_s <= 0 or self.pbx_timeout_s <= 0:
            raise ConfigError("[calls] max_duration_s and pbx_timeout_s must be positive")
        if not 1 <= self.ack_timeout_s <= 32:
            raise ConfigError("[calls] ack_timeout_s must be 1 to 32")
        if self.bridge_ptime_ms not in (20, 40):
            raise ConfigError(f"[calls] bridge_ptime_ms must be 20 or 40, got {self.bridge_ptime_ms}")
        if not (1024 <= self.rtp_port <= 65000) or self.rtp_port_range < 8:
            raise ConfigError("[calls] rtp_port must be 1024..65000 and rtp_port_range at least 8")


@dataclass
class NodeConfig(Section):
    NAME = "node"
    name: str = setting(
        "",
        "This node's name among the nodes that share one [index] url: on every dashboard and in\n"
        "`gateway status`. Empty: the host's name.",
        parse_node_name,
    )
    kamailio: bool = setting(
        False,
        "true: Kamailio listens on [sip] listen and spreads calls over a pool of workers "
        "(each holds\ntwo calls with the stock pjsua2 wheel). false: one worker listens on [sip] "
        "listen itself.",
    )
    workers: int = setting(
        2,
        "The pool starts with `workers` workers and keeps `spare_calls` of free call capacity "
        "ready,\nstarting more workers up to max_workers (0: never more than `workers`). A worker "
        "started for\na peak retires after idle_retire_s without calls, once the spare capacity "
        "allows it.",
    )
    max_workers: int = setting(0, "")
    spare_calls: int = setting(2, "")
    idle_retire_s: float = setting(60, "", as_float, types=NUMBER)
    worker_base_port: int = setting(
        5100,
        "Workers take calls from Kamailio on 127.0.0.1:worker_base_port + index (they dial the PBX\n"
        "and offer media from [sip] listen's address).",
    )
    fork_workers: bool = setting(
        True,
        "Workers are forks of one parent process that has imported pjsua2, numpy, cryptography and\n"
        "the gateway, sharing those pages (about half a worker's memory). false: each worker is a\n"
        "process of its own.",
    )
    fail_closed: bool = setting(
        False,
        "No worker free (all busy, all down): send the call to the PBX unrecorded, "
        "marked\nX-Recording-Consent: unavailable (false, the default for a medical line) or "
        "answer 503 (true).",
    )
    trunks: list[str] = setting(
        [],
        "Who may send SIP to the node besides the PBX: the trunks' addresses (IP or IP/mask).",
        parse_trunks,
    )
    max_unconfirmed_invites: int = setting(
        8,
        "INVITEs one source may have in flight (not yet answered and ACKed, or refused) at once;\n"
        "more are refused with 503, so that one misbehaving trunk cannot hold every worker.",
    )
    peers: list[tuple[str, int]] = setting(
        [],
        "Other nodes' front doors (IP:PORT), for several machines: a call no worker here can take goes\n"
        "to a peer before it fails open; a call from a peer is never sent on. List every node on every\n"
        "node (peers are also allowed to send SIP here).",
        parse_peers,
    )
    drain_s: float = setting(
        300,
        "On SIGTERM, how long calls in progress may go on before they are hung up (seconds).",
        as_float,
        types=NUMBER,
    )
    metrics_listen: tuple[str, int] = setting(
        "127.0.0.1:9464",
        "Prometheus metrics (text format) at http://HOST:PORT/metrics. Keep it on loopback.",
        parse_listen_hostport,
    )

    @property
    def pool_max(self) -> int:
        return max(self.workers, self.max_workers)

    def check(self) -> None:
        if not 1 <= self.workers <= 256 or not 1024 <= self.worker_base_port <= 64000:
            raise ConfigError("[node] workers must be 1..256 and worker_base_port 1024..64000")
        if self.max_workers and not self.workers <= self.max_workers <= 256:
            raise ConfigError(
                f"[node] max_workers must be 0 (no growth) or from workers ({self.workers}) to 256, "
                f"got {self.max_workers}"
            )
        if self.spare_calls < 0 or self.idle_retire_s < 1:
            raise ConfigError("[node] spare_calls must be >= 0 and idle_retire_s >= 1")
        if self.worker_base_port + self.pool_max > 65535:
            raise ConfigError("[node] worker_base_port + max_workers must stay below 65536")
        if not 1 <= self.max_unconfirmed_invites <= 1000:
            raise ConfigError("[node] max_unconfirmed_invites must be 1 to 1000")


@dataclass
class DashboardConfig(Section):
    NAME = "dashboard"
    DOC = (
        "The operators' live view, served by the node's supervisor (only when [node] runs Kamailio).\n"
        "Users: `gateway user add NAME --role viewer|supervisor|auditor|admin`."
    )
    enabled: bool = setting(True, "")
    listen: tuple[str, int] = setting(
        "127.0.0.1:8080",
        "A non-loopback address is refused unless tls_cert and tls_key are set (PEM files).",
        parse_listen_hostport,
    )
    tls_cert: Path | None = setting("", "", path=True)
    tls_key: Path | None = setting("", "", path=True)
    idle_timeout_s: float = setting(
        900,
        "Sessions end after this many seconds without a request (an open live view may go on\n"
        "watching, but acting needs a fresh login), and in any case session_max_s after the login.",
        as_float,
        types=NUMBER,
    )
    session_max_s: float = setting(43200, "", as_float, types=NUMBER)
    server_names: tuple[str, ...] = setting(
        [],
        "Host names the browser uses for the dashboard; requests for any other name are refused\n"
        "(DNS rebinding). Empty: the listen address, plus localhost when it is a loopback address.",
        parse_server_names,
    )
    lockout_after: int = setting(
        5, "After lockout_after failed logins in a row an account is locked for lockout_s seconds."
    )
    lockout_s: float = setting(900, "", as_float, types=NUMBER)

    @property
    def tls(self) -> tuple[Path, Path] | None:
        return (self.tls_cert, self.tls_key) if self.tls_cert and self.tls_key else None

    def check(self) -> None:
        host, port = self.listen
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("[dashboard] tls_cert and tls_key go together: set both or neither")
        for key in ("tls_cert", "tls_key"):
            f = getattr(self, key)
            if f is not None:
                _readable(f, f"[dashboard] {key}")
        if self.enabled and self.tls is None and not is_loopback(host):
            raise ConfigError(
                f"[dashboard] listen {host}:{port} is not a loopback address: the dashboard "
                "serves logins and live call data, so it needs [dashboard] tls_cert and tls_key "
                "to listen on the network (or listen on 127.0.0.1 behind a TLS proxy)"
            )
        if self.idle_timeout_s < 30 or self.lockout_after < 1 or self.lockout_s < 1:
            raise ConfigError(
                "[dashboard] idle_timeout_s must be >= 30, lockout_after >= 1 and lockout_s >= 1"
            )
        if not self.idle_timeout_s <= self.session_max_s <= 7 * 86400:
            raise ConfigError("[dashboard] session_max_s must be from idle_timeout_s to 604800 (a week)")
        if (
            self.enabled
            and not self.server_names
            and is_ip(host)
            and ipaddress.ip_address(host).is_unspecified
        ):
            raise ConfigError(
                f"[dashboard] listen {host} is every address: set [dashboard] server_names to the "
                "names operators type in their browsers (other Host names are refused)"
            )


@dataclass
class ReviewConfig(Section):
    NAME = "review"
    DOC = (
        "Review in the dashboard: a reviewer asks for access to one recording with a reason, an\n"
        "approver (never the same person) grants it for grant_s seconds; the reviewer then fetches\n"
        "the ciphertext only, and decrypts it on their side with their own identity."
    )
    grant_s: float = setting(86400, "How long an approved grant lasts.", as_float, types=NUMBER)
    four_eyes: bool = setting(
        True,
        "false: a reviewer may approve their own requests (a small site without a second person);\n"
        "every such grant is logged as a warning, shown on the page and audited as self-granted.",
    )
    allow_download: bool = setting(
        False, "Grants allow saving the decrypted recording as a WAV file (else listening only)."
    )
    fetches_per_minute: int = setting(
        30, "Ciphertext fetches one reviewer may make per minute (seeking makes one each)."
    )

    def check(self) -> None:
        if not 60 <= self.grant_s <= 30 * 86400:
            raise ConfigError(f"[review] grant_s must be 60 to 2592000 (30 days), got {self.grant_s:g}")
        if not 1 <= self.fetches_per_minute <= 10000:
            raise ConfigError(
                f"[review] fetches_per_minute must be 1 to 10000, got {self.fetches_per_minute}"
            )


@dataclass
class WitnessConfig(Section):
    NAME = "audit"
    DOC = (
        "The audit log is a hash chain. Every checkpoint_interval_s (and after each CLI command that\n"
        "wrote to it) its head is signed with the gateway's key and sent to witnesses outside the\n"
        "gateway's control, so that a rewritten or shortened log cannot pass `gateway audit verify\n"
        "--checkpoint FILE`: the JSON log of `gateway run`, and optionally a remote syslog\n"
        '("udp:HOST:PORT", "tcp:HOST:PORT" or "unix:/dev/log") and an append-only file on storage\n'
        "the gateway's user cannot rewrite."
    )
    checkpoint_interval_s: float = setting(300, "", as_float, types=NUMBER)
    witness_syslog: str = setting("", "")
    witness_file: Path | None = setting("", "", path=True)
    signers: list[str] = setting(
        [],
        "The signing keys whose recordings and checkpoints count, by the fingerprints `gateway init`\n"
        "prints on each node (compare them out of band). Empty: this node's own key and every key the\n"
        "nodes sharing the index published there (`gateway audit signers` lists them).",
        lambda v, where: parse_fingerprints(v, where or "[audit] signers"),
    )

    def check(self) -> None:
        if not 10 <= self.checkpoint_interval_s <= 86400:
            raise ConfigError(
                f"[audit] checkpoint_interval_s must be 10 to 86400, got {self.checkpoint_interval_s}"
            )
        if self.witness_syslog:
            try:
                parse_syslog_target(self.witness_syslog)
            except ValueError as e:
                raise ConfigError(f"[audit] witness_syslog {e}") from None


@dataclass
class NumbersConfig(Section):
    NAME = "numbers"
    DOC = (
        "How caller numbers are read for data-subject requests (`gateway subject ...`): numbers are\n"
        "compared in international E.164 form (+46701234567). country_code places national numbers\n"
        '(0701234567 with national_prefix "0") and numbers dialled with the international prefix\n'
        "(0046701234567). Empty: a national number given to `subject find` is refused as ambiguous."
    )
    country_code: str = setting("", "")
    national_prefix: str = setting("0", "")
    international_prefix: str = setting("00", "")

    def check(self) -> None:
        if self.country_code and not re.fullmatch(r"[1-9][0-9]{0,2}", self.country_code):
            raise ConfigError(
                f"[numbers] country_code must be 1 to 3 digits without '+' (46 for Sweden), "
                f"got {self.country_code!r}"
            )
        for key in ("national_prefix", "international_prefix"):
            if not re.fullmatch(r"[0-9]{0,4}", getattr(self, key)):
                raise ConfigError(f"[numbers] {key} must be up to 4 digits, got {getattr(self, key)!r}")


@dataclass
class SiprecConfig(Section):
    NAME = "siprec"
    DOC = (
        "Recording server mode (SIPREC, RFC 7866): an SBC or PBX that forks each call's media to the\n"
        "gateway. The client plays the notice; the gateway stores the session only with consent."
    )
    enabled: bool = setting(False, "Accept recording sessions (INVITEs with Require: siprec).")
    listen: tuple[str, int] | None = setting(
        "",
        "A front-door address (IP:PORT) for recording sessions alone, in node mode: sessions are\n"
        "refused anywhere else and calls are refused there. Empty: [sip] listen takes both.",
        parse_optional_ip_hostport,
    )
    clients: list[str] = setting(
        [],
        "The recording clients' addresses (IP or IP/mask): only they may open recording sessions.",
        parse_trunks,
    )
    caller_label: str = setting(
        "",
        "The SDP labels of the caller's and the helpline's streams. Empty: the participant whose number\n"
        "is a route's is the helpline (from the metadata), else the first stream is the caller's.",
        parse_label,
    )
    helpline_label: str = setting("", "", parse_label)
    consent_header: str = setting(
        "X-Recording-Consent",
        "A header the client sets to granted or declined (the decision it collected); a metadata\n"
        '<consent xmlns="urn:x-consent-gateway:siprec:1"> element says the same.',
        parse_header_name,
    )
    window_s: float = setting(
        12,
        "Without a signalled decision: how long the caller may press the route's decline key (opt-out)\n"
        "or accept key (opt-in) in the forked stream, from the session's start; then the route's mode\n"
        "decides. Until then audio is held in memory only.",
        as_float,
        types=NUMBER,
    )
    on_refusal: str = setting(
        "idle",
        'A declined session: "idle" keeps it open and records nothing, "end" sends BYE.',
        parse_siprec_refusal,
    )

    def check(self) -> None:
        if not 1 <= self.window_s <= 60:
            raise ConfigError(f"[siprec] window_s must be 1 to 60, got {self.window_s}")
        if self.enabled and not self.clients:
            raise ConfigError("[siprec] enabled needs the recording clients' addresses in [siprec] clients")
        if bool(self.caller_label) != bool(self.helpline_label) or (
            self.caller_label and self.caller_label == self.helpline_label
        ):
            raise ConfigError("[siprec] caller_label and helpline_label are set together, and differ")


SECTIONS: tuple[type[Section], ...] = (
    Paths,
    IndexConfig,
    StoreConfig,
    RecordingConfig,
    SipConfig,
    PbxConfig,
    ConsentConfig,
    PromptsConfig,
    CallsConfig,
    NodeConfig,
    DashboardConfig,
    ReviewConfig,
    WitnessConfig,
    NumbersConfig,
    SiprecConfig,
)
