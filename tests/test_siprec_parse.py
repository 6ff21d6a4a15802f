"""Reading recording clients' INVITEs (gateway/sip/siprec.py): the RFC-style examples in
tests/siprec/, a vendor-style one, and what must be refused."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.sip import siprec as sr

VECTORS = Path(__file__).parent / "siprec"


def invite(name: str) -> str:
    text = (VECTORS / name).read_bytes().decode()  # CRLF kept, as on the wire
    for key, value in (("[local_port]", "5099"), ("[branch]", "z9hG4bK-1"), ("[call_number]", "1")):
        text = text.replace(key, value)
    return text.replace("[call_id]", "siprec-1@127.0.0.1").replace("[len]", "0")


HELPLINE = frozenset({"116117"})


def test_rfc7866_style_invite_is_a_recording_session_with_two_labelled_streams() -> None:
    msg = invite("rfc7866.txt")
    assert sr.is_recording_session(msg)
    offer = sr.read_offer(msg, helpline_numbers=HELPLINE)
    assert isinstance(offer, sr.RecordingOffer)
    assert [m.label for m in offer.audio] == ["96", "97"]
    assert all(m.direction == "sendonly" for m in offer.audio)
    assert offer.channels == {0: 0, 1: 1}
    assert offer.roles_by is sr.RolesBy.METADATA
    assert offer.caller is not None and offer.caller.number == "+4640123456"
    assert offer.helpline is not None and offer.helpline.number == "116117"
    assert offer.consent is None  # nothing signalled: the window and the route decide
    md = offer.metadata
    assert md.sessions == {
        "hVpd7YQgRW2nD22h7q60JQ==": "ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2"
    }
    assert md.group == "7+OTCyoxTmqmqyA/1weDAg=="
    summary = md.summary()
    assert "+4640123456" not in str(summary) and "Caller" not in str(summary)
    assert summary["senders"] == {"96": "srfBElmCRp2QB23b7Mpk0w==", "97": "zSfPoSvdSDCmU3A3TRDxAw=="}


def test_draft_form_metadata_maps_the_caller_by_number_whatever_the_stream_order() -> None:
    # The caller sends the second stream here: the helpline's number (a route's) says which is which.
    offer = sr.read_offer(invite("rfc8068.txt"), helpline_numbers=HELPLINE)
    assert isinstance(offer, sr.RecordingOffer)
    assert offer.channels == {1: 0, 0: 1}
    assert offer.roles_by is sr.RolesBy.METADATA
    # Without a helpline number to go by, the order of the streams decides.
    plain = sr.read_offer(invite("rfc8068.txt"))
    assert isinstance(plain, sr.RecordingOffer)
    assert plain.channels == {0: 0, 1: 1} and plain.roles_by is sr.RolesBy.ORDER
    # Configured labels win over both.
    labelled = sr.read_offer(
        invite("rfc8068.txt"), caller_label="1", helpline_label="2", helpline_numbers=HELPLINE
    )
    assert isinstance(labelled, sr.RecordingOffer)
    assert labelled.channels == {0: 0, 1: 1} and labelled.roles_by is sr.RolesBy.LABELS


def test_vendor_invite_signals_consent_in_a_header() -> None:
    msg = invite("vendor.txt")
    assert sr.is_recording_session(msg)
    offer = sr.read_offer(msg, helpline_numbers=HELPLINE)
    assert isinstance(offer, sr.RecordingOffer)
    assert (offer.consent, offer.consent_from) == ("granted", "header")
    declined = msg.replace("X-Recording-Consent: granted", "X-Recording-Consent: declined")
    offer = sr.read_offer(declined)
    assert isinstance(offer, sr.RecordingOffer) and offer.consent == "declined"
    # "unavailable" (this gateway's own fail-open marker) decides nothing.
    offer = sr.read_offer(msg.replace("X-Recording-Consent: granted", "X-Recording-Consent: unavailable"))
    assert isinstance(offer, sr.RecordingOffer) and offer.consent is None


def test_consent_from_the_metadata_extension() -> None:
    msg = invite("rfc7866.txt").replace(
        "</recording>", f'<consent xmlns="{sr.CONSENT_NS}">declined</consent></recording>'
    )
    offer = sr.read_offer(msg)
    assert isinstance(offer, sr.RecordingOffer)
    assert (offer.consent, offer.consent_from) == ("declined", "metadata")


@pytest.mark.parametrize(
    ("name", "code", "words"),
    [
        ("no-metadata.txt", 400, "rs-metadata"),
        ("no-label.txt", 400, "a=label"),
        ("bad-metadata.txt", 400, "well-formed"),
    ],
)
def test_what_rfc7866_has_refused(name: str, code: int, words: str) -> None:
    verdict = sr.read_offer(invite(name))
    assert isinstance(verdict, sr.Rejection)
    assert verdict.code == code and words in verdict.reason


def test_one_mixed_stream_is_refused_with_488() -> None:
    msg = invite("rfc7866.txt")
    one = msg.split("m=audio 12242")[0] + msg.split("a=label:97\r\n", 1)[1]
    verdict = sr.read_offer(one)
    assert isinstance(verdict, sr.Rejection) and verdict.code == 488


def test_entities_are_refused_before_parsing() -> None:
    bomb = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><recording xmlns="urn:ietf:params:xml:ns:recording:1">&a;</recording>'
    with pytest.raises(sr.MetadataError, match="DOCTYPE"):
        sr.parse_metadata(bomb)
    with pytest.raises(sr.MetadataError, match="not <recording>"):
        sr.parse_metadata("<other/>")


def test_an_ordinary_call_is_not_a_recording_session() -> None:
    msg = "INVITE sip:116117@gw SIP/2.0\r\nContact: <sip:a@b>\r\nSupported: timer\r\n\r\n"
    assert not sr.is_recording_session(msg)


@given(st.text(max_size=400))
def test_any_text_is_answered_with_an_offer_or_a_rejection(text: str) -> None:
    verdict = sr.read_offer(
        "INVITE sip:r@h SIP/2.0\r\nContent-Type: multipart/mixed;boundary=b\r\n\r\n" + text
    )
    assert isinstance(verdict, sr.RecordingOffer | sr.Rejection)


def test_metadata_in_an_unknown_encoding_is_refused_not_a_crash() -> None:
    """Found by bench/fuzz.py within seconds: expat raised LookupError for the declaration's
    encoding, out of read_offer, instead of a rejection."""
    xml = '<?xml version="1.0" encoding="bogus-enc"?><recording xmlns="urn:ietf:params:xml:ns:recording:1"/>'
    with pytest.raises(sr.MetadataError, match="encoding"):
        sr.parse_metadata(xml)
    verdict = sr.read_offer(
        "INVITE sip:r@h SIP/2.0\r\nContent-Type: multipart/mixed;boundary=b\r\n\r\n--b\r\n"
        "Content-Type: application/rs-metadata+xml\r\n\r\n" + xml + "\r\n--b--"
    )
    assert isinstance(verdict, sr.Rejection)


@given(st.text(max_size=300))
def test_metadata_parser_only_ever_raises_metadata_error(text: str) -> None:
    try:
        sr.parse_metadata(text)
    except sr.MetadataError:
        pass
