"""Pcap files of G.711 RTP made from PCM, for sipp's play_pcap_audio: what a trunk would send,
with keypad tones (or anything else) in the audio itself."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # G.711 encoding (deprecated in 3.11, present until 3.13)

PCMA = 8


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def write_rtp_pcap(path: Path, pcm_8k: bytes, ssrc: int = 0x1234ABCD) -> Path:
    """8 kHz 16-bit mono PCM as 20 ms A-law RTP packets (payload type 8), 127.0.0.1:6000 to
    127.0.0.1:6002 over Ethernet, timed 20 ms apart; sipp rewrites the addresses."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # pcap, Ethernet
    alaw = audioop.lin2alaw(pcm_8k, 2)
    for seq, off in enumerate(range(0, len(alaw) - 159, 160)):
        rtp = struct.pack("!BBHII", 0x80, PCMA, seq & 0xFFFF, seq * 160, ssrc) + alaw[off : off + 160]
        udp = struct.pack("!HHHH", 6000, 6002, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), seq & 0xFFFF, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))  # fmt: skip
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        frame = b"\0" * 6 + b"\0\1\2\3\4\5" + b"\x08\x00" + ip + udp
        t_us = seq * 20000
        out.append(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))
    return path


LINK_HEADER = {1: 14, 101: 0, 12: 0, 228: 0, 113: 16}  # Ethernet, raw IP (three codes), Linux cooked


def read_rtp(path: Path) -> dict[tuple[int, int], list[tuple[int, int, bytes]]]:
    """The RTP packets of a pcap by stream, (SSRC, source port): (payload type, sequence
    number, payload) in file order.
    IPv4/UDP over Ethernet, raw IP or Linux cooked capture; anything else is skipped."""
    raw = path.read_bytes()
    link = struct.unpack("<I", raw[20:24])[0]
    skip = LINK_HEADER.get(link)
    if skip is None:
        raise ValueError(f"{path}: link type {link} not supported")
    streams: dict[tuple[int, int], list[tuple[int, int, bytes]]] = {}
    off = 24
    while off + 16 <= len(raw):
        caplen = struct.unpack("<I", raw[off + 8 : off + 12])[0]
        frame = raw[off + 16 : off + 16 + caplen]
        off += 16 + caplen
        ip = frame[skip:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        udp = ip[(ip[0] & 0x0F) * 4 :]
        rtp = udp[8:]
        if len(rtp) < 12 or rtp[0] >> 6 != 2:
            continue
        ssrc = (struct.unpack("!I", rtp[8:12])[0], struct.unpack("!H", udp[0:2])[0])
        header = 12 + (rtp[0] & 0x0F) * 4
        streams.setdefault(ssrc, []).append((rtp[1] & 0x7F, struct.unpack("!H", rtp[2:4])[0], rtp[header:]))
    return streams


def alaw_to_pcm(payload: bytes) -> bytes:
    return audioop.alaw2lin(payload, 2)
