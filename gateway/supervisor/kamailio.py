"""Kamailio as the node's front door: its configuration, rendered from the gateway's, and
control over its binrpc socket (kamcmd).

Kamailio checks sanity, bans floods (pike), admits only allowlisted sources (trunks and the
PBX; the workers), and spreads INVITEs over the workers by call load (dispatcher algorithm 10)
with failover. When no worker can take a call it fails open to the PBX, unrecorded and marked
`X-Recording-Consent: unavailable`, or answers 503 when the node is configured fail-closed.
"""

from __future__ import annotations

import glob
import string
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..sip.secure import SrtpPolicy, is_tls_uri
from ..storage.spool import ensure_private_dir
from ..telephony.door import HEADER as DOOR_HEADER

TRUSTED_GROUP = 1  # trunks and the PBX
WORKER_GROUP = 2
SIPREC_GROUP = 3  # recording clients ([siprec] clients): they may open recording sessions only
DISPATCH_SET = 1
PEER_SET = 2  # other nodes' front doors: where calls overflow before failing open
OVERFLOW_HEADER = "X-Gateway-Overflow"  # marks a call a peer node sent us: never sent on again


class _KamailioTemplate(string.Template):
    """Placeholders are %%{name}: Kamailio's own configuration language uses $ everywhere."""

    delimiter = "%%"


# The front door's configuration (kamailio.cfg.tmpl), filled by FrontDoor.render with values the
# config loader validated and FrontDoor refuses to let out of their quotes.
_TEMPLATE = _KamailioTemplate((Path(__file__).parent / "kamailio.cfg.tmpl").read_text(encoding="utf-8"))


def module_path() -> str:
    for candidate in sorted(glob.glob("/usr/lib/*/kamailio/modules")) + ["/usr/lib/kamailio/modules"]:
        if Path(candidate, "tm.so").exists():
            return candidate
    raise FileNotFoundError("Kamailio modules not found (install the Debian package kamailio)")


@dataclass(frozen=True)
class FrontTls:
    """TLS at the front door: the operator's certificate for callers and trunks, the node's
    internal certificate for the hop to its workers (see telephony/tlsfiles.py)."""

    host: str
    port: int
    cert: Path
    key: Path
    client_ca: Path | None  # trunks' client certificates must chain to these (None: not asked)
    internal_cert: Path  # the workers' certificate: the only one trusted on the worker hop
    pbx_ca: Path | None  # fail-open to a sips: PBX checks its certificate against these


CTL_PATH_MAX = 103  # what Kamailio's ctl module accepts of a socket's path (104 with its NUL)


@dataclass
class FrontDoor:
    host: str
    port: int
    rundir: Path
    pbx_uri: str
    fail_closed: bool
    trusted: list[str]  # trunk and PBX addresses (IP or IP/mask)
    peers: tuple[tuple[str, int], ...] = ()  # other nodes' front doors (HOST, PORT)
    max_message_bytes: int = 8192  # a larger request gets 513
    max_sdp_bytes: int = 4096  # an INVITE with a larger body gets 488
    max_unconfirmed: int = 8  # INVITEs from one source not yet ACKed (or refused) at once
    max_media: int = 4  # media descriptions an INVITE may offer
    tls: FrontTls | None = None
    caller_srtp: SrtpPolicy = SrtpPolicy.OFF
    siprec_clients: list[str] | None = None  # None: recording sessions are not accepted
    siprec_listen: tuple[str, int] | None = None  # recording sessions' own address (else ours)
    # The key the workers' branches carry (telephony/door.py), and the workers' ports: the first
    # and how many the pool may grow to. Without a key nothing is added (a config check).
    door_key: str = ""
    worker_ports: tuple[int, int] = (0, 0)

    @property
    def ctl(self) -> str:
        return f"unixs:{self.rundir}/kamailio_ctl"

    @property
    def cfg_path(self) -> Path:
        return self.rundir / "kamailio.cfg"

    def address_list(self, workers: list[tuple[str, int]]) -> str:
        lines = []
        for addr in [*self.trusted, *(h for h, _ in self.peers)]:
            ip, _, mask = addr.partition("/")
            lines.append(f"{TRUSTED_GROUP} {ip} {mask or 32} 0")
        for host, _ in workers:
            lines.append(f"{WORKER_GROUP} {host} 32 0")
        for addr in self.siprec_clients or []:
            ip, _, mask = addr.partition("/")
            lines.append(f"{SIPREC_GROUP} {ip} {mask or 32} 0")
        return "\n".join(lines) + "\n"

    def __post_init__(self) -> None:
        # Every value below is placed inside a double-quoted string or a list file of Kamailio's
        # configuration: the config loader validated them; this refuses anything that slipped by.
        for what, value in (
            ("the data directory", str(self.rundir)),
            ("[pbx] uri", self.pbx_uri),
            ("[sip] listen", self.host),
            ("the front-door key", self.door_key),
            *(("an allowlist entry", t) for t in [*self.trusted, *(self.siprec_clients or [])]),
            *(
                (f"[sip] or [pbx] TLS file {f}", str(f))
                for f in (
                    (self.tls.cert, self.tls.key, self.tls.client_ca, self.tls.internal_cert, self.tls.pbx_ca)
                    if self.tls is not None
                    else ()
                )
                if f is not None
            ),
        ):
            if any(c in value for c in '"\\$') or not value.isprintable():
                raise ValueError(
                    f"{what} {value!r} cannot be placed in Kamailio's configuration "
                    "(quotes, backslashes, '$' and control characters are refused)"
                )

    def _siprec_listen(self) -> str:
        if self.siprec_listen is None:
            return ""
        host, port = self.siprec_listen
        return f"listen=udp:{host}:{port}\nlisten=tcp:{host}:{port}\n"

    def _siprec_rule(self) -> str:
        """Recording sessions (RFC 7866: Require: siprec or a +sip.src Contact) only from the
        recording clients, who may open nothing else; none at all when [siprec] is off. The
        session's transaction is marked ($avp) so that it never fails open to the PBX."""
        # Every Require and Contact header (not just the first), in any case: the workers look
        # at all of them (siprec.is_recording_session), and so must the allowlist.
        is_siprec = (
            '($(hdr(Require)[*]) =~ "[sS][iI][pP][rR][eE][cC]" '
            '|| $(hdr(Contact)[*]) =~ "[+][sS][iI][pP][.][sS][rR][cC]")'
        )
        if self.siprec_clients is None:
            return (
                f'    if (is_method("INVITE") && !has_totag() && {is_siprec}) {{\n'
                '        xlog("L_WARN", "recording session from $si, but [siprec] is off: 403\\n");\n'
                '        sl_send_reply("403", "Recording Sessions Not Accepted");\n'
                "        exit;\n    }\n"
            )
        if self.siprec_listen is not None:  # sessions there, and only sessions
            host, port = self.siprec_listen
            on_ours = f'($Ri == "{host}" && $Rp == {port})'
            placed = (
                f'    if (is_method("INVITE") && !has_totag()\n'
                f"            && (({on_ours} && !{is_siprec}) || (!{on_ours} && {is_siprec}))) {{\n"
                '        xlog("L_WARN", "INVITE from $si on $Ri:$Rp: recording sessions go to the '
                'recording address, calls to the call address: 403\\n");\n'
                '        sl_send_reply("403", "Wrong Address For This Request");\n'
                "        exit;\n    }\n"
            )
        else:
            placed = ""
        return placed + (
            f'    if (is_method("INVITE") && !has_totag() && {is_siprec}) {{\n'
            f'        if (!allow_source_address("{SIPREC_GROUP}")) {{\n'
            '            xlog("L_WARN", "recording session from $si, not a recording client: 403\\n");\n'
            '            sl_send_reply("403", "Not A Recording Client");\n'
            "            exit;\n        }}\n"
            "        $avp(siprec) = 1;\n"
            '        t_on_reply("INVITE_REPLY");  # the answer gets +sip.srs\n'
            f'    }} else if (is_method("INVITE") && !has_totag() && allow_source_address("{SIPREC_GROUP}")\n'
            f'            && !allow_source_address("{TRUSTED_GROUP}")) {{\n'
            '        xlog("L_WARN", "INVITE from recording client $si is not a recording session: 403\\n");\n'
            '        sl_send_reply("403", "Recording Sessions Only");\n'
            "        exit;\n    }}\n"
        ).replace("}}", "}")

    def render(self) -> str:
        fail_open = (
            '    xlog("L_WARN", "fail-closed: no worker for $ci\\n");\n'
            '    send_reply("503", "Service Unavailable");\n    exit;'
            if self.fail_closed
            else '    xlog("L_WARN", "fail-open: no worker for $ci, to the PBX unrecorded\\n");\n'
            + self._failopen_keys()
            + '    remove_hf("X-Recording-Consent");\n'
            '    append_hf("X-Recording-Consent: unavailable\\r\\n");\n'
            f'    $ru = "{self.pbx_uri}";\n'
            # From a failure route $du still names the worker or peer that failed.
            "    $du = $null;\n"
            '    t_on_failure("PBX_FAIL");\n'
            '    if (!t_relay()) { send_reply("503", "Service Unavailable"); }\n    exit;'
        )
        return _TEMPLATE.substitute(
            host=self.host,
            port=self.port,
            tls_listen=self._tls_listen(),
            siprec_listen=self._siprec_listen(),
            module_path=module_path(),
            tls_module=self._tls_module(),
            ctl=self.ctl,
            rundir=self.rundir,
            max_message_bytes=self.max_message_bytes,
            trusted_group=TRUSTED_GROUP,
            worker_group=WORKER_GROUP,
            siprec_group=SIPREC_GROUP,
            door_header=DOOR_HEADER,
            siprec_rule=self._siprec_rule(),
            sdes_rule=self._sdes_rule(),
            max_sdp_bytes=self.max_sdp_bytes,
            max_media_plus_one=self.max_media + 1,
            max_media=self.max_media,
            max_unconfirmed=self.max_unconfirmed,
            dispatch_set=DISPATCH_SET,
            door_branch=self._door_branch(),
            overflow_header=OVERFLOW_HEADER,
            peer_route=self._peer_route(),
            fail_open=fail_open,
        )

    def _door_branch(self) -> str:
        """The front door's key and the request's source, on the branches to this node's
        workers only: a branch to a peer node or to the PBX (failing open) never carries it."""
        first, count = self.worker_ports
        if not self.door_key:
            return (
                "branch_route[TO_WORKER] {\n    return;  # no front-door key: a configuration check only\n}"
            )
        return (
            "branch_route[TO_WORKER] {\n"
            f'    if ($du != $null && $(du{{uri.host}}) == "127.0.0.1" && $(du{{uri.port}}{{s.int}}) >= {first}\n'
            f"            && $(du{{uri.port}}{{s.int}}) < {first + count}) {{\n"
            f'        append_hf("{DOOR_HEADER}: {self.door_key};src=$si\\r\\n");\n'
            "    }\n}"
        )

    def _failopen_keys(self) -> str:
        """A call failing open goes from the caller straight to the PBX: over plain SIP, the
        caller's SDES keys would cross that hop in clear, so they are removed first."""
        if self.caller_srtp is SrtpPolicy.OFF or is_tls_uri(self.pbx_uri):
            return ""
        return '    sdp_remove_line_by_prefix("a=crypto:");\n'

    def _tls_listen(self) -> str:
        if self.tls is None:
            return ""
        return f"enable_tls=yes\nlisten=tls:{self.tls.host}:{self.tls.port}\n"

    def _tls_module(self) -> str:
        if self.tls is None:
            return ""
        return f'loadmodule "tls.so"\nmodparam("tls", "config", "{self.tls_cfg_path}")\n'

    def _sdes_rule(self) -> str:
        """SDES keys (a=crypto) that reached the front door over UDP or TCP were exposed on the
        way, and an answer would carry the workers' keys back the same way. With SRTP
        mandatory the request is refused (488); with SRTP optional the keys are removed, so a
        best-effort offer (RTP/AVP with keys) goes on as plain RTP and an SRTP-only one is
        refused by the worker. With SRTP off the workers never answer with keys."""
        if self.caller_srtp is SrtpPolicy.OFF:
            return "    # [sip] srtp is off: the workers never answer with SDES keys"
        if self.caller_srtp is SrtpPolicy.MANDATORY:
            action = (
                '        xlog("L_WARN", "$rm $ci from $si carries SDES keys over $pr: 488\\n");\n'
                '        if (!is_method("ACK")) {\n'
                '            sl_send_reply("488", "SDES Keys Need TLS");\n'
                "        }\n"
                "        exit;\n"
            )
        else:
            action = (
                '        xlog("L_WARN", "$rm $ci from $si carries SDES keys over $pr: keys removed\\n");\n'
                '        sdp_remove_line_by_prefix("a=crypto:");\n'
            )
        # A body other than a plain SDP (a recording client's multipart, SDP and metadata) is
        # refused whatever the policy: its keys cannot be taken out of it here.
        return (
            '    if ($pr != "tls" && $cl > 0 && search_body("^a=crypto:")) {\n'
            '        if (!has_body("application/sdp")) {\n'
            '            xlog("L_WARN", "$rm $ci from $si carries SDES keys over $pr in a $cT body: 488\\n");\n'
            '            if (!is_method("ACK")) {\n'
            '                sl_send_reply("488", "SDES Keys Need TLS");\n'
            "            }\n"
            "            exit;\n"
            "        }\n" + action + "    }"
        )

    @property
    def tls_cfg_path(self) -> Path:
        return self.rundir / "tls.cfg"

    def render_tls(self) -> str:
        """Kamailio's tls.cfg: TLS 1.2 at least; callers and trunks see the operator's
        certificate (and show theirs when tls_verify_clients is on); the workers are checked
        against the node's internal certificate, a sips: PBX against its authorities."""
        assert self.tls is not None
        t = self.tls
        verify = "yes" if t.client_ca is not None else "no"
        return (
            "# Rendered by the consent gateway's supervisor; reloaded on SIGHUP (tls.reload).\n"
            "[server:default]\n"
            "method = TLSv1.2+\n"
            f"certificate = {t.cert}\n"
            f"private_key = {t.key}\n"
            f"verify_certificate = {verify}\n"
            f"require_certificate = {verify}\n"
            f"ca_list = {self.rundir / 'tls-clients.pem'}\n"
            "\n[client:default]\n"
            "method = TLSv1.2+\n"
            "verify_certificate = yes\n"
            "require_certificate = yes\n"
            f"ca_list = {self.rundir / 'tls-servers.pem'}\n"
        )

    def write_tls(self) -> None:
        """tls.cfg and the two authority bundles it names (the workers connect to the front
        door as TLS clients with the internal certificate, so it is trusted both ways)."""
        if self.tls is None:
            return
        t = self.tls
        internal = t.internal_cert.read_text()
        clients = internal + (t.client_ca.read_text() if t.client_ca is not None else "")
        servers = internal + (t.pbx_ca.read_text() if t.pbx_ca is not None else "")
        for name, text in (("tls-clients.pem", clients), ("tls-servers.pem", servers)):
            tmp = self.rundir / f"{name}.new"
            tmp.write_text(text)
            tmp.replace(self.rundir / name)
        self.tls_cfg_path.write_text(self.render_tls())

    def worker_uri(self, host: str, port: int) -> str:
        return f"sip:{host}:{port};transport=tls" if self.tls is not None else f"sip:{host}:{port}"

    def _peer_route(self) -> str:
        if not self.peers:
            return "    # no peer nodes configured ([node] peers)"
        return (
            f'    append_hf("{OVERFLOW_HEADER}: {self.host}:{self.port}\\r\\n");\n'
            f'    if (ds_select_dst("{PEER_SET}", "4")) {{\n'
            '        xlog("L_INFO", "no worker free for $ci: to peer node $du\\n");\n'
            '        t_on_failure("PEER_FAIL");\n'
            "        t_relay();\n"
            "        exit;\n"
            "    }"
        )

    def write(self, workers: list[tuple[str, int]]) -> None:
        # Kamailio's control socket lives in the run directory (RunLayout); past Kamailio's
        # limit on a Unix socket's path it exits at start, saying so only in its own log.
        sock = len(self.ctl.split(":", 1)[1].encode())
        if sock > CTL_PATH_MAX:
            raise ConfigError(
                f"[calls] event_socket: its directory {self.rundir.parent} is too deep for "
                f"Kamailio's control socket ({sock} bytes; Kamailio takes {CTL_PATH_MAX}): choose "
                "a shorter path (by default it is under the data directory)"
            )
        ensure_private_dir(self.rundir.parent)
        ensure_private_dir(self.rundir)
        # Left by a Kamailio that was killed with its node: the node holds the data directory's
        # lock and found the SIP port free, so no Kamailio of ours runs. Kamailio itself refuses
        # to start over a pid file whose pid answers (an unreaped zombie, or a reused pid).
        for stale in ("kamailio.pid", "kamailio_ctl"):
            (self.rundir / stale).unlink(missing_ok=True)
        self.cfg_path.write_text(self.render())
        self.write_tls()
        (self.rundir / "address.list").write_text(self.address_list(workers))
        # Workers are added over RPC as they come up; peer nodes are fixed by the config.
        (self.rundir / "dispatcher.list").write_text(
            "".join(f"{PEER_SET} sip:{h}:{p} 0 0\n" for h, p in self.peers)
        )

    def check(self) -> str | None:
        """Kamailio's own verdict on the rendered configuration (None: fine)."""
        res = subprocess.run(["kamailio", "-c", "-f", str(self.cfg_path)], capture_output=True, text=True)
        return None if res.returncode == 0 else (res.stderr.strip().splitlines() or ["?"])[-1]

    def command(self) -> list[str]:
        return [
            "kamailio",
            "-f",
            str(self.cfg_path),
            "-DD",
            "-E",
            "-Y",
            str(self.rundir),
            "-P",
            str(self.rundir / "kamailio.pid"),
            "-m",
            "64",
            "-M",
            "8",
        ]

    def rpc(self, *args: str) -> str:
        res = subprocess.run(["kamcmd", "-s", self.ctl, *args], capture_output=True, text=True, timeout=10)
        # kamcmd exits 0 on an RPC fault and prints "error: CODE - text" instead of the result.
        if res.returncode != 0 or res.stdout.startswith("error:"):
            raise RuntimeError(f"kamcmd {' '.join(args)}: {res.stderr.strip() or res.stdout.strip()}")
        return res.stdout

    def add_worker(self, host: str, port: int, worker_id: str, capacity: int) -> None:
        self.rpc(
            "dispatcher.add",
            str(DISPATCH_SET),
            self.worker_uri(host, port),
            "0",
            "0",
            f"duid={worker_id};maxload={capacity}",
        )

    def remove_worker(self, host: str, port: int) -> None:
        self.rpc("dispatcher.remove", str(DISPATCH_SET), self.worker_uri(host, port))
