"""What reaches Kamailio's rendered configuration: only validated values, checked by Kamailio itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.sip.secure import SrtpPolicy
from gateway.supervisor.kamailio import FrontDoor, FrontTls
from gateway.supervisor.node import pbx_addresses
from tests.conftest import require_tool
from tests.tlscerts import TestCA


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


@pytest.mark.parametrize(
    ("siprec", "siprec_listen"),
    [(None, None), (["198.51.100.7", "203.0.113.0/28"], None), (["198.51.100.7"], ("127.0.0.1", 5062))],
    ids=["no-siprec", "siprec", "siprec-own-address"],
)
def test_rendered_config_passes_kamailios_own_check(
    tmp_path: Path, siprec: list[str] | None, siprec_listen: tuple[str, int] | None
) -> None:
    require_tool("kamailio")
    front = FrontDoor(
        "127.0.0.1",
        5060,
        tmp_path / "run",
        "sip:helpline@10.0.0.5:5060;transport=udp",
        False,
        ["192.0.2.0/24", "10.0.0.5", "127.0.0.1"],
        (("127.0.0.2", 5060),),
        siprec_clients=siprec,
        siprec_listen=siprec_listen,
    )
    front.write([("127.0.0.1", 5100)])
    assert front.check() is None
    listed = (tmp_path / "run" / "address.list").read_text().splitlines()
    assert listed[:2] == ["1 192.0.2.0 24 0", "1 10.0.0.5 32 0"]
    assert [line for line in listed if line.startswith("3 ")] == [
        f"3 {c.split('/')[0]} {c.split('/')[1] if '/' in c else 32} 0" for c in siprec or []
    ]


@pytest.mark.parametrize("srtp", list(SrtpPolicy))
def test_rendered_tls_config_passes_kamailios_own_check(tmp_path: Path, srtp: SrtpPolicy) -> None:
    require_tool("kamailio")
    ca = TestCA(tmp_path / "pki")
    cert, key = ca.issue("frontdoor")
    internal = tmp_path / "internal.crt"
    internal.write_bytes(ca.issue("internal")[0].read_bytes())
    tls = FrontTls("127.0.0.1", 5061, cert, key, ca.path, internal, ca.path)
    front = FrontDoor(
        "127.0.0.1",
        5060,
        tmp_path / "run",
        "sips:helpline@10.0.0.5",
        False,
        ["10.0.0.5"],
        tls=tls,
        caller_srtp=srtp,
    )
    front.write([("127.0.0.1", 5100)])
    assert front.check() is None
    cfg = front.cfg_path.read_text()
    assert "listen=tls:127.0.0.1:5061" in cfg
    assert front.worker_uri("127.0.0.1", 5100) == "sip:127.0.0.1:5100;transport=tls"
    tls_cfg = front.tls_cfg_path.read_text()
    assert "method = TLSv1.2+" in tls_cfg and "require_certificate = yes" in tls_cfg
    # The workers' certificate is trusted on their hop, and only beside the named authorities.
    assert (tmp_path / "run" / "tls-servers.pem").read_text().startswith(internal.read_text())
    rule = {SrtpPolicy.OFF: "never answer with SDES", SrtpPolicy.OPTIONAL: "sdp_remove_line_by_prefix"}
    assert rule.get(srtp, 'sl_send_reply("488", "SDES Keys Need TLS")') in cfg


def test_tls_file_names_cannot_break_out_of_tls_cfg(tmp_path: Path) -> None:
    bad = tmp_path / "cert.pem\n[server:any]"
    tls = FrontTls("127.0.0.1", 5061, bad, bad, None, bad, None)
    with pytest.raises(ValueError, match="cannot be placed"):
        FrontDoor("127.0.0.1", 5060, tmp_path, "sip:h@10.0.0.5", False, ["10.0.0.5"], tls=tls)


def test_failing_open_to_a_plain_pbx_removes_the_callers_keys(tmp_path: Path) -> None:
    require_tool("kamailio")
    ca = TestCA(tmp_path / "pki")
    cert, key = ca.issue("frontdoor")
    tls = FrontTls("127.0.0.1", 5061, cert, key, None, cert, None)
    front = FrontDoor(
        "127.0.0.1",
        5060,
        tmp_path / "run",
        "sip:helpline@10.0.0.5",
        False,
        ["10.0.0.5"],
        tls=tls,
        caller_srtp=SrtpPolicy.OPTIONAL,
    )
    front.write([])
    assert front.check() is None, "allowed in the failure routes FAILOPEN is reached from"
    failopen = front.cfg_path.read_text().split("route[FAILOPEN]")[1]
    assert 'sdp_remove_line_by_prefix("a=crypto:")' in failopen


def test_kamailios_log_lines_reach_the_nodes_log_at_their_level_without_caller_numbers() -> None:
    """Kamailio logs to stderr; the node forwards each line (frontproc.py). Its parse errors
    quote what they could not parse, which can hold a caller's number: masked. Addresses,
    ports and the script's own words stay readable."""
    import logging

    from gateway.supervisor.frontproc import _level, redact

    line = " 0(812) ERROR: <core> [core/parser/parse_uri.c:1300]: parse_uri(): bad uri <sip:+46701234567@10.0.0.5:5060>"
    assert _level(line) == logging.ERROR
    assert redact(line).endswith("bad uri <sip:[number]@10.0.0.5:5060>")
    assert redact("tel:070-123-45-67 from 192.168.100.200:5060") == "tel:[number] from 192.168.100.200:5060"
    flood = " 4(816) ALERT: <script>: flood from 127.0.0.9: banned for 5 minutes"
    assert _level(flood) == logging.ERROR and redact(flood) == flood
    assert (
        _level(" 3(815) WARNING: <script>: request from 127.0.0.9, which is not on the allowlist: 403")
        == logging.WARNING
    )
    assert _level(" 0(812) INFO: <core> [main.c:2896]: main(): processes (at least): 22") == logging.INFO
    # The node reads the level before masking: a pid past five digits is masked with the rest.
    big_pid = " 3(1234567) WARNING: <script>: request from 127.0.0.9, which is not on the allowlist: 403"
    assert _level(big_pid) == logging.WARNING and redact(big_pid).startswith(" 3([number]) WARNING")
    assert _level("a line of no level, with WARNING: further on" + " " * 80) == logging.DEBUG


def test_kamailios_complaints_while_the_node_stops_it_are_warnings_not_errors(caplog) -> None:
    """When the node stops Kamailio, its processes end in no set order and one may log that its
    peer went first at CRITICAL ("receive_fd(): EOF on 9", seen in CI at a clean Ctrl-C). After
    the node asked it to stop, such a line is kept as a warning; before, it is an error."""
    import asyncio
    import logging

    from gateway.supervisor.frontproc import KamailioProcess

    line = b" 9(20738) CRITICAL: <core> [core/pass_fd.c:277]: receive_fd(): EOF on 9\n"

    async def forward(stopping: bool) -> None:
        proc = KamailioProcess(None)  # type: ignore[arg-type]  # only its log forwarding is used
        proc._stopping = stopping
        reader = asyncio.StreamReader()
        reader.feed_data(line)
        reader.feed_eof()
        await proc._forward(reader)

    with caplog.at_level(logging.DEBUG, logger="gateway.kamailio"):
        asyncio.run(forward(False))
        asyncio.run(forward(True))
    got = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "gateway.kamailio"]
    assert got == [
        (logging.ERROR, line.decode().rstrip()),
        (logging.WARNING, "while stopping: " + line.decode().rstrip()),
    ]
