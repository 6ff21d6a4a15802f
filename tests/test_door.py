"""The front door's word on an INVITE (telephony/door.py): exactly one header with this start's
key, and the source address the front door took the request from."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.telephony import door

KEY = "0123456789abcdef0123456789abcdef"
INVITE = (
    "INVITE sip:1177@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060\r\n{extra}Content-Length: 0\r\n\r\n"
)


def invite(*headers: str) -> str:
    return INVITE.format(extra="".join(h + "\r\n" for h in headers))


def test_the_front_doors_header_gives_the_source() -> None:
    assert (
        door.check(invite(f"{door.HEADER}: {door.header_value(KEY, '192.0.2.7')}"), KEY).source == "192.0.2.7"
    )
    assert door.check(invite(f"x-gateway-door:{KEY};src=2001:db8::7"), KEY).source == "2001:db8::7"


@pytest.mark.parametrize(
    "headers,why",
    [
        ((), "0 X-Gateway-Door headers"),
        ((f"X-Gateway-Door: {'f' * 32};src=192.0.2.7",), "another key"),
        ((f"X-Gateway-Door: {KEY}",), "without the source"),
        ((f"X-Gateway-Door: {KEY};src=1.2.3.4", f"X-Gateway-Door: {KEY};src=5.6.7.8"), "2 X-Gateway-Door"),
    ],
)
def test_anything_else_is_refused(headers: tuple[str, ...], why: str) -> None:
    with pytest.raises(door.DoorError, match=why):
        door.check(invite(*headers), KEY)


def test_a_header_in_the_body_does_not_count() -> None:
    message = invite() + f"X-Gateway-Door: {KEY};src=1.2.3.4\r\n"
    with pytest.raises(door.DoorError):
        door.check(message, KEY)


def test_the_key_file_is_private_and_checked(tmp_path: Path) -> None:
    with pytest.raises(door.DoorError, match="no front-door key"):
        door.read_key(tmp_path)
    key = door.new_key()
    door.write_key(tmp_path, key)
    assert door.read_key(tmp_path) == key
    assert (tmp_path / door.KEY_FILE).stat().st_mode & 0o777 == 0o600
    (tmp_path / door.KEY_FILE).write_text("not a key\n")
    with pytest.raises(door.DoorError, match="malformed"):
        door.read_key(tmp_path)
