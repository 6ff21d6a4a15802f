"""Encrypted signalling and media, the pure part: SRTP policies, TLS URIs, what an SDP carries,
and the settings that would send SDES keys in clear, refused when the configuration loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import config as cfg
from gateway.errors import ConfigError
from gateway.sip.secure import (
    SrtpPolicy,
    carries_sdes_keys,
    hop_is_tls,
    is_tls_uri,
    offers_srtp,
)
from tests.gw import make_gateway
from tests.tlscerts import TestCA

INVITE = (
    "INVITE sip:1177@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/{top} 127.0.0.1:5060;branch=z9hG4bK1\r\n"
    "Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK0\r\n"
    "Content-Type: application/sdp\r\n\r\n"
    "v=0\r\nm=audio 4000 {profile} 8\r\n{crypto}"
)


def invite(top: str = "UDP", profile: str = "RTP/AVP", crypto: str = "") -> str:
    return INVITE.format(top=top, profile=profile, crypto=crypto)


KEY = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"


def test_the_hop_is_the_top_via() -> None:
    assert hop_is_tls(invite("TLS")) and not hop_is_tls(invite("UDP")) and not hop_is_tls(invite("TCP"))
    assert hop_is_tls(invite("tls").replace("Via:", "v:", 1)), "compact form, any case"
    assert not hop_is_tls("INVITE sip:a@b SIP/2.0\r\n\r\n"), "no Via: not TLS"
    # A Via-looking line in the body is not a header.
    assert not hop_is_tls(invite("UDP") + "Via: SIP/2.0/TLS x\r\n")


def test_keys_and_profiles_in_the_sdp() -> None:
    assert carries_sdes_keys(invite(crypto=KEY)) and offers_srtp(invite(crypto=KEY))
    assert not carries_sdes_keys(invite()) and not offers_srtp(invite())
    assert offers_srtp(invite(profile="RTP/SAVP")) and not carries_sdes_keys(invite(profile="RTP/SAVP"))
    assert offers_srtp(invite(profile="UDP/TLS/RTP/SAVPF"))
    assert not carries_sdes_keys(invite().replace("\r\n\r\n", "\r\n" + KEY + "\r\n")), "headers are not SDP"


@given(st.text(max_size=300))
def test_sdp_checks_never_fail_on_any_text(text: str) -> None:
    for f in (carries_sdes_keys, offers_srtp, hop_is_tls):
        assert isinstance(f(text), bool)


def test_tls_uris() -> None:
    assert is_tls_uri("sips:helpline@10.0.0.5") and is_tls_uri("sip:helpline@10.0.0.5:5061;transport=TLS")
    assert not is_tls_uri("sip:helpline@10.0.0.5;transport=udp") and not is_tls_uri(
        "sip:helpline@tls.example"
    )


def test_policy_names() -> None:
    assert [p.value for p in SrtpPolicy] == ["off", "optional", "mandatory"]
    with pytest.raises(ValueError, match='"off", "optional", "mandatory"'):
        SrtpPolicy.parse("required", "[sip] srtp")


@pytest.mark.parametrize(
    "settings,error",
    [
        ([("sip", "srtp", "optional")], "needs \\[sip\\] tls_listen"),
        ([("sip", "srtp", "always")], '\\[sip\\] srtp must be one of "off"'),
        ([("pbx", "srtp", "mandatory")], "not sips: or ;transport=tls"),
        ([("sip", "tls_verify_clients", True)], "needs \\[sip\\] tls_ca"),
        ([("pbx", "tls_ca", "/nonexistent/ca.pem")], "\\[pbx\\] tls_ca /nonexistent/ca.pem"),
    ],
)
def test_settings_that_would_send_keys_in_clear_are_refused(
    tmp_path: Path, settings: list[tuple[str, str, object]], error: str
) -> None:
    gw = make_gateway(tmp_path)
    for section, key, value in settings:
        gw.set(section, key, value)
    with pytest.raises(ConfigError, match=error):
        cfg.load(gw.config)


def test_a_secure_configuration_loads(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "pki")
    cert, key = ca.issue("frontdoor")
    gw = make_gateway(tmp_path)
    for section, k, v in [
        ("sip", "tls_listen", "127.0.0.1:5061"),
        ("sip", "tls_cert", str(cert)),
        ("sip", "tls_key", str(key)),
        ("sip", "tls_ca", str(ca.path)),
        ("sip", "tls_verify_clients", True),
        ("sip", "srtp", "mandatory"),
        ("pbx", "uri", "sip:helpline@127.0.0.1:5071;transport=tls"),
        ("pbx", "srtp", "optional"),
        ("pbx", "tls_ca", str(ca.path)),
    ]:
        gw.set(section, k, v)
    loaded = cfg.load(gw.config)
    assert loaded.sip.srtp is SrtpPolicy.MANDATORY and loaded.pbx.srtp is SrtpPolicy.OPTIONAL


def test_srtp_with_plain_overflow_to_peer_nodes_is_refused(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "pki")
    cert, key = ca.issue("frontdoor")
    gw = make_gateway(tmp_path)
    for section, k, v in [
        ("sip", "tls_listen", "127.0.0.1:5061"),
        ("sip", "tls_cert", str(cert)),
        ("sip", "tls_key", str(key)),
        ("sip", "srtp", "optional"),
        ("node", "peers", ["127.0.0.3:5060"]),
    ]:
        gw.set(section, k, v)
    with pytest.raises(ConfigError, match="leave peers empty"):
        cfg.load(gw.config)
