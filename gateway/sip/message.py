"""SIP policy and parsing for the incoming INVITE. Pure: text in, values out.

The display name and numbers are attacker-controlled; they are parsed defensively, bounded,
and never used to build anything but a quoted header value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_DISPLAY = 64
_HEADER = re.compile(r"^([A-Za-z0-9!%*_+`'~.-]+)[ \t]*:[ \t]*(.*)$")
_COMPACT = {"f": "from", "t": "to", "i": "call-id", "m": "contact"}
_URI_USER = re.compile(r"sips?:([^@;>\s]+)@")
_DISPLAY = re.compile(r'^\s*(?:"((?:[^"\\]|\\.)*)"|([^<"]*?))\s*<')


@dataclass(frozen=True)
class Party:
    display: str
    number: str


@dataclass(frozen=True)
class Invite:
    dialled: str  # the user part of the Request-URI
    caller: Party  # From, or P-Asserted-Identity when present
    call_id: str
    headers: dict[str, str] = field(default_factory=dict)  # first value of each, lower-case names


def headers(message: str) -> dict[str, str]:
    """The first value of each header of a SIP message (lower-case names, compact forms expanded)."""
    out: dict[str, str] = {}
    lines = message.replace("\r\n", "\n").split("\n")
    for line in lines[1:]:
        if not line:
            break
        m = _HEADER.match(line)
        if m:
            name = m.group(1).lower()
            out.setdefault(_COMPACT.get(name, name), m.group(2).strip())
    return out


def _clean(text: str, limit: int) -> str:
    return "".join(c for c in text if c.isprintable() and c not in '"\\<>')[:limit]


def _printable(text: str, limit: int) -> str:
    """The display name as sent, bounded, without control characters, quotes or backslashes.
    It keeps `<` and `>`: operators see what the caller sent (as text; docs/events.md), and
    `quoted_display` strips them before the name goes into a SIP header."""
    return "".join(c for c in text if c.isprintable() and c not in '"\\')[:limit]


def party(value: str) -> Party:
    m = _DISPLAY.match(value)
    display = ""
    if m:
        display = (m.group(1) if m.group(1) is not None else m.group(2) or "").replace('\\"', '"')
    user = _URI_USER.search(value)
    number = user.group(1) if user else ""
    return Party(_printable(display.strip(), MAX_DISPLAY), _clean(number, 32))


def parse_invite(message: str) -> Invite:
    first = message.split("\r\n", 1)[0].split("\n", 1)[0]
    parts = first.split(" ")
    uri = parts[1] if len(parts) >= 3 else ""
    m = _URI_USER.search(uri + "@") if "@" not in uri else _URI_USER.search(uri)
    dialled = _clean(m.group(1), 32) if m else ""
    h = headers(message)
    caller = party(h.get("p-asserted-identity") or h.get("from", ""))
    return Invite(dialled, caller, h.get("call-id", "")[:128], h)


# A SIP URI as configuration may give it (RFC 3261 section 19.1, restricted): the user part
# without '$', quotes, backslashes or spaces, a host that is an IPv4 address, a bracketed IPv6
# address or a DNS name, an optional port and simple parameters. Values of this shape are safe
# to place inside a double-quoted string of Kamailio's configuration.
_CONFIG_URI = re.compile(
    r"^(?P<scheme>sips?):(?:(?P<user>[A-Za-z0-9\-_.!~*'()&=+,;?/%]{1,64})@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)"
    r"(?::(?P<port>[0-9]{1,5}))?(?P<params>(?:;[A-Za-z0-9\-_.!~*'()%=+:]{1,64}){0,8})$"
)


@dataclass(frozen=True)
class SipUri:
    scheme: str
    user: str
    host: str
    port: int | None
    params: str


class UriError(ValueError):
    pass


def parse_config_uri(text: str) -> SipUri:
    """A SIP URI from configuration, or UriError saying what is wrong with it."""
    m = _CONFIG_URI.fullmatch(text)
    if m is None:
        raise UriError(
            "not a SIP URI of the form sip:user@host[:port][;params] (letters, digits and "
            "-_.!~*'()&=+,;?/% only)"
        )
    port = int(m["port"]) if m["port"] else None
    if port is not None and not 0 < port < 65536:
        raise UriError(f"port {port} is out of range")
    return SipUri(m["scheme"], m["user"] or "", m["host"].strip("[]"), port, m["params"])


def media_count(message: str) -> int:
    """How many media descriptions ("m=" lines) the message's body offers, in every part."""
    _, sep, body = message.replace("\r\n", "\n").partition("\n\n")
    return sum(1 for line in body.split("\n") if line.startswith("m=")) if sep else 0


def quoted_display(display: str) -> str:
    """A display name safe to put between quotes in a From header."""
    return _clean(display, MAX_DISPLAY)
