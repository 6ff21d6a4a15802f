"""Policy for encrypted signalling and media, pure: which SRTP a leg accepts, which URIs reach a
peer over TLS, and what an SDP offer carries. Nothing here opens a socket or reads a file.

SDES (RFC 4568) puts the SRTP master keys in the SDP itself, so an SDP with `a=crypto` lines is
only as secret as the hop that carries it: the gateway sends such keys over TLS only.
"""

from __future__ import annotations

import enum
import re

from .message import parse_config_uri


class SrtpPolicy(enum.StrEnum):
    OFF = "off"  # plain RTP only; an SRTP-only offer is refused
    OPTIONAL = "optional"  # SRTP when the peer offers it, plain RTP otherwise
    MANDATORY = "mandatory"  # SRTP or nothing: a plain offer gets 488, never a silent fallback

    @classmethod
    def parse(cls, text: str, where: str) -> SrtpPolicy:
        try:
            return cls(text)
        except ValueError:
            names = ", ".join(f'"{p.value}"' for p in cls)
            raise ValueError(f"{where} must be one of {names}, got {text!r}") from None


def uri_transport(uri: str) -> str:
    """How a configured SIP URI is reached: "tls" (`sips:` or `;transport=tls`), "tcp" or "udp"."""
    parsed = parse_config_uri(uri)
    params = {p.partition("=")[0].lower(): p.partition("=")[2].lower() for p in parsed.params.split(";") if p}
    if parsed.scheme.lower() == "sips" or params.get("transport") == "tls":
        return "tls"
    return "tcp" if params.get("transport") == "tcp" else "udp"


def is_tls_uri(uri: str) -> bool:
    """Whether a configured SIP URI is reached over TLS: `sips:`, or `;transport=tls`."""
    return uri_transport(uri) == "tls"


_CRYPTO = re.compile(r"^a=crypto:", re.IGNORECASE | re.MULTILINE)
_SAVP = re.compile(r"^m=audio [0-9]+(?:/[0-9]+)? (?:RTP/SAVPF?|UDP/TLS/RTP/SAVPF?) ", re.MULTILINE)


def sdp_of(message: str) -> str:
    """The body of a SIP message (every part of a multipart body, as one text)."""
    _, sep, body = message.replace("\r\n", "\n").partition("\n\n")
    return body if sep else ""


_VIA = re.compile(
    r"^(?:via|v)[ \t]*:[ \t]*SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*([A-Za-z]+)", re.IGNORECASE | re.MULTILINE
)


def hop_is_tls(message: str) -> bool:
    """Whether the last hop carried the message over TLS: the transport of its top Via (the
    sender's own, which a relay adds above the others). No Via: not TLS."""
    head = message.replace("\r\n", "\n").partition("\n\n")[0]
    m = _VIA.search(head)
    return m is not None and m.group(1).upper() == "TLS"


def carries_sdes_keys(message: str) -> bool:
    """Whether the message's SDP holds SDES keys (`a=crypto`): never to cross a clear hop."""
    return bool(_CRYPTO.search(sdp_of(message)))


def offers_srtp(message: str) -> bool:
    """Whether the message's SDP offers secure audio (an RTP/SAVP-family profile, or keys)."""
    body = sdp_of(message)
    return bool(_SAVP.search(body) or _CRYPTO.search(body))
