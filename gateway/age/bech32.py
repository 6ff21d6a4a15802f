"""Bech32 (BIP 173) as age uses it: no 90-character limit, one case per string."""

from .errors import KeyFormatError

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _GEN[i]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convertbits(data: bytes | list[int], frombits: int, tobits: int, pad: bool) -> list[int]:
    acc = 0
    bits = 0
    out: list[int] = []
    maxv = (1 << tobits) - 1
    for value in data:
        if value < 0 or value >> frombits:
            raise KeyFormatError("invalid bech32 data value")
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        raise KeyFormatError("invalid bech32 padding")
    return out


def encode(hrp: str, data: bytes) -> str:
    """Encode `data` under the human-readable part `hrp` (lowercase result)."""
    hrp = hrp.lower()
    values = _convertbits(data, 8, 5, True)
    checksum_in = _hrp_expand(hrp) + values + [0] * 6
    mod = _polymod(checksum_in) ^ 1
    checksum = [(mod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[d] for d in values + checksum)


def decode(s: str) -> tuple[str, bytes]:
    """Decode a bech32 string to (hrp, data); raise KeyFormatError on any defect."""
    if s.lower() != s and s.upper() != s:
        raise KeyFormatError("mixed case in bech32 string")
    if any(ord(c) < 33 or ord(c) > 126 for c in s):
        raise KeyFormatError("invalid character in bech32 string")
    s = s.lower()
    pos = s.rfind("1")
    if pos < 1 or pos + 7 > len(s):
        raise KeyFormatError("bech32 separator or checksum missing")
    hrp = s[:pos]
    try:
        values = [CHARSET.index(c) for c in s[pos + 1 :]]
    except ValueError:
        raise KeyFormatError("invalid character in bech32 data") from None
    if _polymod(_hrp_expand(hrp) + values) != 1:
        raise KeyFormatError("bech32 checksum does not match")
    return hrp, bytes(_convertbits(values[:-6], 5, 8, False))
