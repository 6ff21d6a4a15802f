"""What reaches Kamailio's rendered configuration: only validated values, checked by Kamailio itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.supervisor.kamailio import FrontDoor
from gateway.supervisor.node import pbx_addresses
from tests.conftest import require_tool


def test_pbx_addresses_from_an_ip_or_a_resolvable_name() -> None:
    assert pbx_addresses("sip:helpline@10.0.0.5:5060;transport=udp") == ["10.0.0.5"]
    assert pbx_addresses("sip:helpline@localhost:5070") == ["127.0.0.1"]
    with pytest.raises(ConfigError, match="does not resolve"):
        pbx_addresses("sip:helpline@no-such-host.invalid")
    with pytest.raises(ConfigError, match="not a host or network"):
        pbx_addresses("sip:helpline@0.0.0.0")


@pytest.mark.parametrize(
    "field,value",
    [
        ("rundir", Path('/var/lib/gw"; loadmodule "evil.so')),
        ("pbx_uri", 'sip:x@10.0.0.5";exit;"'),
        ("trusted", ["10.0.0.1\n1 0.0.0.0 0 0"]),
    ],
)
def test_front_door_refuses_values_that_break_out_of_the_config(
    tmp_path: Path, field: str, value: object
) -> None:
    args = {
        "host": "127.0.0.1",
        "port": 5060,
        "rundir": tmp_path,
        "pbx_uri": "sip:h@10.0.0.5",
        "fail_closed": False,
        "trusted": ["10.0.0.5"],
    }
    args[field] = value
    with pytest.raises(ValueError, match="cannot be placed in Kamailio's configuration"):
        FrontDoor(**args)  # type: ignore[arg-type]


def test_rendered_config_passes_kamailios_own_check(tmp_path: Path) -> None:
    require_tool("kamailio")
    front = FrontDoor(
        "127.0.0.1",
        5060,
        tmp_path / "run",
        "sip:helpline@10.0.0.5:5060;transport=udp",
        False,
        ["192.0.2.0/24", "10.0.0.5", "127.0.0.1"],
        (("127.0.0.2", 5060),),
    )
    front.write([("127.0.0.1", 5100)])
    assert front.check() is None
    assert (tmp_path / "run" / "address.list").read_text().splitlines()[:2] == [
        "1 192.0.2.0 24 0",
        "1 10.0.0.5 32 0",
    ]
