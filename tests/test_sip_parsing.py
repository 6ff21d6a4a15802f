from gateway.sip import message as sip

INVITE = (
    "INVITE sip:1177@127.0.0.1:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK1\r\n"
    'From: "Anna <img src=x onerror=alert(1)>" <sip:+46701234567@127.0.0.1>;tag=1\r\n'
    "To: <sip:1177@127.0.0.1>\r\n"
    "Call-ID: abc@host\r\n"
    "\r\n"
)


def test_invite_fields_and_hostile_display_name() -> None:
    inv = sip.parse_invite(INVITE)
    assert inv.dialled == "1177" and inv.call_id == "abc@host"
    assert inv.caller.number == "+46701234567"
    # Kept as sent for the operators (the dashboard shows it as text), never raw in a header.
    assert inv.caller.display == "Anna <img src=x onerror=alert(1)>"
    assert "<" not in sip.quoted_display(inv.caller.display) and '"' not in sip.quoted_display('a"b')


def test_p_asserted_identity_wins_and_compact_headers() -> None:
    msg = INVITE.replace(
        "Call-ID: abc@host", 'i: compact@host\r\nP-Asserted-Identity: "Nurse" <sip:+4686@pbx>'
    )
    inv = sip.parse_invite(msg)
    assert inv.caller == sip.Party("Nurse", "+4686") and inv.call_id == "compact@host"


def test_garbage_does_not_raise() -> None:
    for junk in ["", "\x00\x01", "INVITE", "INVITE sip: SIP/2.0\r\nFrom: <<<>>>\r\n\r\n"]:
        sip.parse_invite(junk)


def test_media_count_counts_m_lines_of_the_body_only() -> None:
    from gateway.sip.message import media_count

    head = (
        "INVITE sip:1177@gw SIP/2.0\r\nX-Note: m=audio in a header\r\nContent-Type: application/sdp\r\n\r\n"
    )
    sdp = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\nm=video 4002 RTP/AVP 96\r\n"
    assert media_count(head + sdp) == 2
    assert media_count(head) == 0
    assert media_count("INVITE sip:x SIP/2.0\r\nVia: x") == 0
