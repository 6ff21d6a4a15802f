"""What a configuration value may be: addresses, SIP URIs, allowlist networks, syslog targets.
Pure checks with one-line errors that name the setting; nothing here reads the file."""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any
from urllib.parse import unquote

from .. import age
from ..errors import ConfigError
from ..sip.dtmf import DtmfMethod
from ..sip.message import UriError, parse_config_uri
from ..sip.secure import SrtpPolicy

HOSTNAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """True for "localhost" and loopback IP addresses; a DNS name never counts, whatever it
    looks like ("127.example.org" is not loopback)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_hostport(text: str, what: str, *, ip_only: bool = False) -> tuple[str, int]:
    """HOST:PORT with a host that is an IP address (IPv6 in brackets) or, unless `ip_only`,
    a DNS name. Nothing else gets through: these values reach Kamailio's configuration."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"{what} must be HOST:PORT, got {text!r}")
    if not 0 < int(port) < 65536:
        raise ConfigError(f"{what}: port {port} is out of range (1 to 65535), got {text!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not is_ip(host) and (ip_only or not HOSTNAME.fullmatch(host)):
        kind = "an IP address" if ip_only else "an IP address or a host name"
        raise ConfigError(f"{what}: the host must be {kind}, got {text!r}")
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


def dtmf_keys(text: str, what: str, longest: int) -> str:
    if not 1 <= len(text) <= longest or any(c not in "0123456789*#" for c in text):
        kind = "one DTMF key (0-9, *, #)" if longest == 1 else f"1 to {longest} DTMF keys"
        raise ConfigError(f"{what} must be {kind}, got {text!r}")
    return text


# libpq's connection parameters that carry a secret (a URI may give them in its query string).
_SECRET_PARAMS = frozenset({"password", "sslpassword"})


def redact_url(url: str) -> str:
    """A database or store URL fit for a message: the password of its user part and every
    secret query parameter (`?password=`, `sslpassword=`, in any percent-encoding libpq
    decodes) replaced by ***. Anything else is kept as written."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest, hash_, fragment = rest.partition("#")
    head, q, query = rest.partition("?")
    authority, slash, path = head.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    if at and ":" in userinfo:
        authority = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
    if q:
        parts = []
        for part in query.split("&"):
            key, eq, _ = part.partition("=")
            parts.append(f"{key}=***" if eq and unquote(key).strip().lower() in _SECRET_PARAMS else part)
        query = "&".join(parts)
    return f"{scheme}://{authority}{slash}{path}{q}{query}{hash_}{fragment}"


def parse_s3_url(url: str) -> tuple[str, str]:
    """s3://bucket/prefix -> (bucket, "prefix/"); ValueError when it is not one."""
    if not url.startswith("s3://"):
        raise ValueError(f"must be s3://BUCKET[/PREFIX], got {url!r}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket or not all(c.isalnum() or c in ".-" for c in bucket) or not 3 <= len(bucket) <= 63:
        raise ValueError(f"{bucket!r} is not an S3 bucket name")
    prefix = prefix.strip("/")
    if any(c in prefix for c in "\\\n\r\t") or ".." in prefix.split("/"):
        raise ValueError(f"{prefix!r} is not a usable key prefix")
    return bucket, (prefix + "/" if prefix else "")


# -- the sections' and routes' value parsers: (TOML value, "[section] key") -> Python value --

MODES = ("opt-out", "opt-in")


def parse_recipients(values: list[Any], where: str) -> list[age.AnyRecipient]:
    for i, text in enumerate(values):
        if not isinstance(text, str):
            raise ConfigError(f"{where}[{i}] must be a string")
    try:
        return age.parse_recipients(values)
    except age.RecipientListError as e:
        raise ConfigError(f"{where}[{e.index}]: {e}" if e.index is not None else f"{where}: {e}") from None


def parse_listen_hostport(text: str, where: str) -> tuple[str, int]:
    return parse_hostport(text, where)


def parse_ip_hostport(text: str, where: str) -> tuple[str, int]:
    return parse_hostport(text, where, ip_only=True)


def parse_optional_ip_hostport(text: str, where: str) -> tuple[str, int] | None:
    return parse_hostport(text, where, ip_only=True) if text else None


def parse_sip_uri(text: str, where: str) -> str:
    return check_sip_uri(text, where)


def parse_dtmf(text: str, where: str) -> DtmfMethod:
    try:
        return DtmfMethod(text)
    except ValueError:
        names = ", ".join(f'"{m.value}"' for m in DtmfMethod)
        raise ConfigError(f"{where} must be one of {names}, got {text!r}") from None


LANGUAGE = re.compile(r"^[a-z]{2,3}$")

HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")


def parse_language(text: Any, where: str) -> str:
    if not isinstance(text, str) or not LANGUAGE.fullmatch(text):
        raise ConfigError(f'{where} must be a language code such as "sv" (ISO 639-1), got {text!r}')
    return text


def parse_languages(values: Any, where: str) -> tuple[str, ...]:
    if not isinstance(values, (list, tuple)):
        raise ConfigError(f"{where} must be a list of language codes")
    langs = tuple(parse_language(v, f"{where} entry") for v in values)
    if len(set(langs)) != len(langs):
        raise ConfigError(f"{where} lists a language twice")
    if len(langs) == 1:
        raise ConfigError(f"{where}: a menu needs two languages or more (one language: set language)")
    return langs


def parse_header_name(text: Any, where: str) -> str:
    if not isinstance(text, str) or (text and not HEADER_NAME.fullmatch(text)):
        raise ConfigError(f"{where} must be a SIP header name such as Accept-Language, got {text!r}")
    return text


def parse_beep(value: Any, where: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (value == 0 or 5 <= value <= 600)
    ):
        raise ConfigError(f"{where} must be 0 (no beep) or 5 to 600 seconds, got {value!r}")
    return float(value)


def parse_srtp(text: str, where: str) -> SrtpPolicy:
    try:
        return SrtpPolicy.parse(text, where)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def parse_node_name(text: str, where: str) -> str:
    import re
    import socket

    if not text:  # the host's name, made fit
        host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname().split(".")[0])[:63].lstrip("._-")
        return host or "node"
    name = text
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", name):
        raise ConfigError(f"{where} must be letters, digits, '.', '_' or '-' (at most 63), got {name!r}")
    return name


def parse_trunks(values: list[Any], where: str) -> list[str]:
    return [parse_ipv4_network(t, f"{where} entry") for t in values]


def parse_peers(values: list[Any], where: str) -> list[tuple[str, int]]:
    peers = []
    for text in values:
        if not isinstance(text, str):
            raise ConfigError(f"{where} must be HOST:PORT strings, got {text!r}")
        peer = parse_hostport(text, f"{where} entry", ip_only=True)
        parse_ipv4_network(peer[0], f"{where} entry")
        peers.append(peer)
    return peers


def parse_server_names(values: list[Any], where: str) -> tuple[str, ...]:
    for n in values:
        if not isinstance(n, str) or not (HOSTNAME.fullmatch(n) or is_ip(n)):
            raise ConfigError(f"{where} must be host names or IP addresses, got {n!r}")
    return tuple(n.lower() for n in values)


def parse_index_url(text: str, where: str) -> str:
    if text and not text.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            f"{where} must be empty (the SQLite index) or a postgresql:// URL, got {redact_url(text)[:40]!r}"
        )
    return text


def parse_store_url(text: str, where: str) -> str:
    if text:
        try:
            parse_s3_url(text)
        except ValueError as e:
            raise ConfigError(f"{where} {e}") from None
    return text


def parse_fingerprints(values: list[Any], where: str) -> list[str]:
    for i, v in enumerate(values):
        if not isinstance(v, str) or not re.fullmatch(r"[0-9a-f]{32}", v):
            raise ConfigError(f"{where}[{i}] must be a signing key's fingerprint (32 hex digits), got {v!r}")
    return list(values)


SIPREC_REFUSAL = ("idle", "end")


def parse_siprec_refusal(value: Any, where: str) -> str:
    if value not in SIPREC_REFUSAL:
        raise ConfigError(f"{where} must be one of {', '.join(SIPREC_REFUSAL)}, got {value!r}")
    return str(value)


def parse_label(value: Any, where: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.:+-]{0,64}", str(value)):
        raise ConfigError(f"{where} must be an SDP label (letters, digits and _.:+-), got {value!r}")
    return str(value)
