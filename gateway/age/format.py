"""The age v1 header: stanzas, the MAC line, strict canonical base64. No keys, no files.

age-encryption.org/v1
-> TYPE ARG...
BODY (base64, 64 columns a line, ended by a shorter line)
--- MAC
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import BinaryIO

from .errors import HeaderError

INTRO = b"age-encryption.org/v1\n"
STANZA_PREFIX = b"->"
FOOTER_PREFIX = b"---"
COLUMNS_PER_LINE = 64
BYTES_PER_LINE = COLUMNS_PER_LINE // 4 * 3
# A bound on one header line, so a hostile file cannot make the reader buffer without limit.
MAX_LINE = 8192
MAX_STANZAS = 1024
# A bound on the whole header. A recording's header holds one X25519 stanza (about 100 bytes)
# per recipient; 128 KiB leaves room for a thousand of them, or for large post-quantum or
# plugin stanzas, while a hostile header of hundreds of thousands of lines is refused after a
# few milliseconds instead of being parsed into megabytes.
MAX_HEADER_SIZE = 128 * 1024
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64encode(data: bytes) -> str:
    """Unpadded standard base64, as age writes it."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def b64decode(text: str | bytes) -> bytes:
    """Strict unpadded base64: the alphabet only, no padding, canonical trailing bits."""
    raw = text.encode("ascii") if isinstance(text, str) else bytes(text)
    if raw.translate(None, _B64_ALPHABET) or len(raw) % 4 == 1:
        raise HeaderError("invalid base64")
    try:
        data = base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
    except binascii.Error:
        raise HeaderError("invalid base64") from None
    if b64encode(data).encode("ascii") != raw:
        raise HeaderError("non-canonical base64")
    return data


def _valid_arg(arg: bytes) -> bool:
    return len(arg) > 0 and all(0x21 <= c <= 0x7E for c in arg)


@dataclass
class Stanza:
    type: str
    args: list[str] = field(default_factory=list)
    body: bytes = b""

    def marshal(self) -> bytes:
        out = b"-> " + " ".join([self.type, *self.args]).encode("ascii") + b"\n"
        encoded = b64encode(self.body)
        for i in range(0, len(encoded), COLUMNS_PER_LINE):
            out += encoded[i : i + COLUMNS_PER_LINE].encode("ascii") + b"\n"
        if len(encoded) % COLUMNS_PER_LINE == 0:
            # The body always ends with a line shorter than 64 columns, empty if need be.
            out += b"\n"
        return out


@dataclass
class Header:
    stanzas: list[Stanza]
    mac: bytes = b""
    # The exact bytes the MAC covers: intro through the "---" of the closing line.
    mac_input: bytes = b""

    def marshal_without_mac(self) -> bytes:
        return INTRO + b"".join(s.marshal() for s in self.stanzas) + FOOTER_PREFIX

    def marshal(self) -> bytes:
        return self.marshal_without_mac() + b" " + b64encode(self.mac).encode("ascii") + b"\n"


def _readline(src: BinaryIO, read_so_far: int) -> bytes:
    if read_so_far > MAX_HEADER_SIZE:
        raise HeaderError(f"header larger than {MAX_HEADER_SIZE} bytes")
    line = src.readline(MAX_LINE + 1)
    if not line:
        raise HeaderError("header ends early")
    if not line.endswith(b"\n"):
        raise HeaderError("header line too long or unterminated")
    return line


def _split_args(line: bytes) -> tuple[bytes, list[bytes]]:
    parts = line[:-1].split(b" ")
    return parts[0], parts[1:]


def parse(src: BinaryIO) -> Header:
    """Read a header from `src`, leaving it positioned at the payload nonce."""
    intro = src.readline(len(INTRO))
    if intro != INTRO:
        raise HeaderError("not an age v1 file (unexpected first line)")
    raw = bytearray(intro)
    stanzas: list[Stanza] = []
    while True:
        line = _readline(src, len(raw))
        if line.startswith(FOOTER_PREFIX):
            prefix, args = _split_args(line)
            if prefix != FOOTER_PREFIX or len(args) != 1:
                raise HeaderError("malformed closing line")
            mac = b64decode(args[0])
            if len(mac) != 32:
                raise HeaderError("malformed MAC")
            raw += FOOTER_PREFIX
            return Header(stanzas, mac, bytes(raw))
        if not line.startswith(STANZA_PREFIX):
            raise HeaderError("unexpected line in header")
        prefix, args = _split_args(line)
        if prefix != STANZA_PREFIX or not args or not all(_valid_arg(a) for a in args):
            raise HeaderError("malformed stanza opening line")
        raw += line
        body = bytearray()
        while True:
            line = _readline(src, len(raw))
            try:
                chunk = b64decode(line[:-1])
            except HeaderError:
                if line.startswith(FOOTER_PREFIX) or line.startswith(STANZA_PREFIX):
                    raise HeaderError("stanza body ends without a short line") from None
                raise HeaderError("malformed stanza body") from None
            if len(chunk) > BYTES_PER_LINE:
                raise HeaderError("stanza body line too long")
            raw += line
            body += chunk
            if len(chunk) < BYTES_PER_LINE:
                break
        stanzas.append(Stanza(args[0].decode("ascii"), [a.decode("ascii") for a in args[1:]], bytes(body)))
        if len(stanzas) > MAX_STANZAS:
            raise HeaderError("too many stanzas")
