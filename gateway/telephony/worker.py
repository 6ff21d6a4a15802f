"""The worker process: one pjsua2 endpoint pumped from an asyncio loop, and its calls.

pjsua runs with threadCnt=0 and mainThreadOnly, so every SIP callback happens inside
libHandleEvents() on the loop's thread; media callbacks run on pjmedia's clock thread and
only touch the ports (media.py).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import ipaddress
import logging
import math
import os
import secrets
import socket
from pathlib import Path

import pjsua2 as pj

from ..app.duties import Duties
from ..app.gateway import Gateway
from ..callevents import EventType
from ..config import Config, Route
from ..errors import ConfigError
from ..recording.recorder import RecorderEngine
from ..sip.message import media_count, parse_config_uri, parse_invite
from ..sip.secure import SrtpPolicy, carries_sdes_keys, hop_is_tls, is_tls_uri, uri_transport
from ..sip.siprec import Rejection, is_recording_session, read_offer
from ..storage.index import IndexUnavailable
from ..storage.journal import JournaledIndex
from . import door
from . import prompts as pr
from .call import CallServices, CallSession
from .events import EventBus
from .media import MediaSlot, audio_format, prefer_g711, release_slots
from .recsession import RecordingSession, support_siprec
from .tlsfiles import internal_pair, make_internal_pair, pbx_authorities

log = logging.getLogger(__name__)


def max_legs() -> int:
    """pjsua's real call-leg limit (the PyPI wheel is built with PJSUA_MAX_CALLS=4)."""
    try:
        fn = ctypes.CDLL(pj._pjsua2.__file__).pjsua_call_get_max_count
        fn.restype = ctypes.c_uint
        return int(fn())
    except (OSError, AttributeError):
        return 4


SRTP_USE = {
    SrtpPolicy.OFF: pj.PJMEDIA_SRTP_DISABLED,
    SrtpPolicy.OPTIONAL: pj.PJMEDIA_SRTP_OPTIONAL,
    SrtpPolicy.MANDATORY: pj.PJMEDIA_SRTP_MANDATORY,
}


class Account(pj.Account):
    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self.worker = worker

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        self.worker.incoming(prm.callId, prm.rdata.wholeMsg, prm.rdata.srcAddress)


def _is_client(source: str, clients: list[str]) -> bool:
    """Is `source` (pjsua's "HOST:PORT" of a request) one of the recording clients?"""
    try:
        host = ipaddress.ip_address(source.rsplit(":", 1)[0].strip("[]"))
    except ValueError:
        return False
    return any(host in ipaddress.ip_network(c, strict=False) for c in clients)


class Worker:
    def __init__(self, gateway: Gateway, index: int | None = None) -> None:
        """`index` None: the only worker, on [sip] listen. Otherwise worker `index` of a node's
        pool, on 127.0.0.1:worker_base_port+index with its own RTP ports and event socket."""
        self.gateway = gateway
        self.config: Config = gateway.config
        self.index_no = index
        self.index = gateway.index
        self.clock_rate = gateway.config.recording.sample_rate
        self.host, self.port = gateway.config.sip.listen
        # Where callers, trunks and the PBX reach this worker's media and, in a node, where it
        # dials the PBX from: the node's own address. A node's worker takes SIP from its front
        # door on loopback, but a socket bound to loopback cannot reach another host.
        self.media_host = self.host
        calls = gateway.config.calls
        self.rtp_port, self.rtp_range = calls.rtp_port, calls.rtp_port_range
        if index is not None:
            self.host, self.port = "127.0.0.1", gateway.config.node.worker_base_port + index
            # Slices for the largest pool the node may grow to, so a grown worker never shares ports.
            self.rtp_range = max(8, calls.rtp_port_range // max(1, gateway.config.node.pool_max * 2))
            self.rtp_port = calls.rtp_port + index * self.rtp_range
            # What this node's front door adds to the INVITEs it relays (door.py): the worker
            # of a node takes nothing else. Missing, the worker cannot start; the node fails open.
            self.door_key: str | None = door.read_key(gateway.layout.root)
        else:
            self.door_key = None
        self.id = f"{socket.gethostname()}:{os.getpid()}"
        # Prompts are loaded before anything listens: missing prompts refuse the start.
        self._prompts: dict[Path, pr.PromptSet] = pr.load_for_routes(self.config)
        self.events = EventBus(gateway.layout.worker_events(index), self.id)
        self.events.control = self.control
        self.engine = RecorderEngine()
        self.recordings = gateway.recording_service(self.engine)
        if isinstance(self.index, JournaledIndex):
            self.index.on_replayed = self.recordings.retry_signatures
        self.sessions: dict[str, CallSession | RecordingSession] = {}
        self._ended: list[CallSession | RecordingSession] = []
        self.stopping = False

    def prompts_for(self, route: Route) -> pr.PromptSet:
        return self._prompts[route.prompts_dir]

    # -- pjsua ------------------------------------------------------------------------------

    def _start_endpoint(self) -> None:
        ep = self.ep = pj.Endpoint()
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = 32  # capped by the build; max_legs() reads the real figure
        cfg.uaConfig.userAgent = "consent-gateway"
        cfg.logConfig.level = 1
        cfg.logConfig.consoleLevel = 1
        cfg.medConfig.clockRate = self.clock_rate
        cfg.medConfig.sndClockRate = self.clock_rate
        cfg.medConfig.noVad = True
        # The bridge's tick: at 40 ms the clock thread runs half as often, and every port on the
        # bridge is served half as often (sources and taps are Python); streams negotiated at
        # 20 ms are read and written twice a tick (BENCHMARKS.md, "the bridge's tick").
        cfg.medConfig.audioFramePtime = self.config.calls.bridge_ptime_ms
        cfg.medConfig.jbMax = 200
        cfg.medConfig.jbMaxPre = 100
        # The (null) sound device, and with it the conference bridge's clock thread, stays open
        # for the worker's life instead of closing after a second without calls: the clock
        # thread keeps the Python thread state its callbacks run in (media.py), so it must not
        # end and be started again with every call.
        cfg.medConfig.sndAutoCloseTime = -1
        ep.libInit(cfg)
        self._create_transports(ep)
        ep.audDevManager().setNullDev()
        if self.config.siprec.enabled:
            support_siprec()
        ep.libStart()
        prefer_g711(ep)
        self.media_format = audio_format(self.clock_rate, self.config.calls.bridge_ptime_ms)
        # Two accounts, one per leg, each with its leg's SRTP policy: the caller's (the default,
        # which pjsua gives every incoming call) and the helpline's (used only to dial the PBX).
        self.account = Account(self)
        half = self.rtp_range // 2 // 2 * 2  # even: RTP on even ports, RTCP on the next
        self.account.create(self._account_config("gateway", self.config.sip.srtp, self.rtp_port, half))
        self.account.setDefault()
        # The helpline leg's account, one per transport the routes' PBXs are reached by: in a
        # node each is bound to a transport of its own on the node's address (a lone worker's
        # transports are there already).
        helpline = self._helpline_transports(ep)
        self.pbx_accounts: dict[str, Account] = {}
        for kind in sorted({uri_transport(r.pbx) for r in self.config.routes}):
            acc = Account(self)
            acfg = self._account_config(
                "gateway-helpline",
                self.config.pbx.srtp,
                self.rtp_port + half,
                self.rtp_range - half,
                secure=any(parse_config_uri(r.pbx).scheme == "sips" for r in self.config.routes),
                secure_signalling=self.config.pbx.srtp is not SrtpPolicy.OFF,
            )
            if kind in helpline:
                acfg.sipConfig.transportId = helpline[kind]
            acc.create(acfg)
            self.pbx_accounts[kind] = acc
        # pjsua's call legs are the limit: a call through the gateway holds two (caller and
        # helpline), a recording session one, so a worker takes two calls or up to four
        # sessions.
        self.max_legs = max_legs()
        self.capacity = self.max_legs // 2  # calls
        # A media slot per leg at most: one for each call or session it holds. Made when first
        # needed and kept (media.py says why), so a worker that never holds more than two calls
        # never pays the clock thread for a third slot's ports.
        self.slots: list[MediaSlot] = []
        self.call_services = CallServices(
            config=self.config,
            index=self.index,
            recordings=self.recordings,
            account=self.account,
            pbx_account_for=lambda uri: self.pbx_accounts[uri_transport(uri)],
            host=self.media_host,
            clock_rate=self.clock_rate,
            prompts_for=self.prompts_for,
            publish=self.events.publish,
            take_slot=self.take_slot,
            give_slot=self.give_slot,
        )
        log.info(
            "worker %s listening on %s:%d, %d calls at most", self.id, self.host, self.port, self.capacity
        )

    def _create_transports(self, ep: pj.Endpoint) -> None:
        """UDP, and TCP or TLS, on the worker's port; TLS where calls arrive or leave over it.

        In a node whose front door speaks TLS, Kamailio relays every call to the workers over
        TLS (with the node's internal certificate), so the worker listens for TLS on its port
        instead of TCP. A lone worker listens for TLS on [sip] tls_listen with the operator's
        certificate. Either TLS transport also dials a sips: PBX, checking its certificate."""
        node_tls = self.index_no is not None and self.config.sip.tls is not None
        pbx_tls = any(is_tls_uri(r.pbx) for r in self.config.routes)
        tc = pj.TransportConfig()
        tc.port, tc.boundAddress = self.port, self.host
        ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
        if not node_tls:
            tc = pj.TransportConfig()
            tc.port, tc.boundAddress = self.port, self.host
            ep.transportCreate(pj.PJSIP_TRANSPORT_TCP, tc)
        if node_tls or self.config.sip.tls is not None or pbx_tls:
            tc = pj.TransportConfig()
            if self.index_no is None and self.config.sip.tls is not None:
                host, port, cert, key = self.config.sip.tls
            else:
                # A node's worker listens on its own port; a lone worker that only dials a
                # sips: PBX takes any free port. Both present the internal certificate.
                host, port = self.host, (self.port if node_tls else 0)
                cert, key = self._internal_pair()
            tc.port, tc.boundAddress = port, host
            self._tls_config(tc, cert, key, pbx_tls=pbx_tls)
            ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, tc)

    def _helpline_transports(self, ep: pj.Endpoint) -> dict[str, int]:
        """A node's worker: a transport of each kind its routes' PBXs need, bound to the node's
        address on a port of the system's choosing (kind -> pjsua transport id). The PBX's
        answers and in-dialog requests come straight back to it; an INVITE that arrives there
        is refused like any that did not come through the front door. A lone worker: none."""
        if self.index_no is None:
            return {}
        out: dict[str, int] = {}
        kinds = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP, "tls": pj.PJSIP_TRANSPORT_TLS}
        for kind in sorted({uri_transport(r.pbx) for r in self.config.routes}):
            tc = pj.TransportConfig()
            tc.port, tc.boundAddress = 0, self.media_host
            if kind == "tls":
                self._tls_config(tc, *self._internal_pair(), pbx_tls=True)
            out[kind] = ep.transportCreate(kinds[kind], tc)
        return out

    def _internal_pair(self) -> tuple[Path, Path]:
        cert, key = internal_pair(self.config)
        if not cert.exists():
            cert, key = make_internal_pair(self.config)
        return cert, key

    def _tls_config(self, tc: pj.TransportConfig, cert: Path, key: Path, *, pbx_tls: bool) -> None:
        tc.tlsConfig.certFile = str(cert)
        tc.tlsConfig.privKeyFile = str(key)
        tc.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD
        if pbx_tls:  # it dials a sips: PBX: the PBX's certificate is checked
            tc.tlsConfig.CaListFile = str(pbx_authorities(self.config))
            tc.tlsConfig.verifyServer = True

    def _account_config(
        self,
        user: str,
        policy: SrtpPolicy,
        rtp_port: int,
        rtp_range: int,
        *,
        secure: bool = False,
        secure_signalling: bool = False,
    ) -> pj.AccountConfig:
        """One leg's account: its own half of the worker's RTP ports, its SRTP policy."""
        acfg = pj.AccountConfig()
        # A sips: PBX needs a sips: Contact from us (RFC 5630), which pjsua takes from the id.
        scheme = "sips" if secure else "sip"
        acfg.idUri = f"{scheme}:{user}@{self.host}:{self.port}"
        acfg.mediaConfig.transportConfig.port = rtp_port
        acfg.mediaConfig.transportConfig.portRange = rtp_range
        acfg.mediaConfig.transportConfig.boundAddress = self.media_host
        acfg.mediaConfig.srtpUse = SRTP_USE[policy]
        # SDES keys only over a secure hop. pjsua's own rule (level 1) refuses even a plain
        # offer over UDP with 406 when SRTP is optional, so the caller's leg applies the rule
        # itself (incoming(): keys over a clear hop get 488); the helpline leg, always on TLS
        # when SRTP is on, keeps pjsua's rule as a second lock.
        acfg.mediaConfig.srtpSecureSignaling = 1 if secure_signalling else 0
        return acfg

    def _refuse(self, call_id: int, code: int, warning: str = "") -> None:
        call = pj.Call(self.account, call_id)
        prm = pj.CallOpParam()
        prm.statusCode = code
        if warning:  # RFC 3261 20.43: 399 is "miscellaneous warning", the text says why
            h = pj.SipHeader()
            h.hName, h.hValue = "Warning", f'399 {self.host} "{warning.replace(chr(34), chr(39))}"'
            prm.txOption.headers.append(h)
        call.hangup(prm)
        self._refused.append(call)  # dropped on the next pump pass, on this thread

    def _keys_in_clear(self, message: str) -> bool:
        """SDES keys that crossed a clear hop: our answer would carry ours back over it (pjsua
        has built it already). In a node, Kamailio removes such keys or refuses the request
        before it gets here; a lone worker refuses it."""
        return (
            self.config.sip.srtp is not SrtpPolicy.OFF
            and carries_sdes_keys(message)
            and not hop_is_tls(message)
        )

    def incoming(self, call_id: int, message: str, source: str = "") -> None:
        if self.door_key is not None:
            try:
                # The address the front door took the request from stands for the source.
                source = door.check(message, self.door_key).source
            except door.DoorError as e:
                log.warning("INVITE from %s did not come through this node's front door (%s); 403", source, e)
                self._refuse(call_id, 403, "not relayed by this node's front door")
                return
        if is_recording_session(message) and not self.stopping:
            self._incoming_recording(call_id, message, source)
            return
        invite = parse_invite(message)
        route = self.config.route_for(invite.dialled)
        limits = self.config.sip
        if self.stopping:
            self._refuse(call_id, 503)
        elif len(message.encode()) > limits.max_message_bytes:
            log.warning("INVITE of %d bytes refused; 513", len(message.encode()))
            self._refuse(call_id, 513)
        elif media_count(message) > limits.max_media_streams:
            log.warning("INVITE offering %d media streams refused; 488", media_count(message))
            self._refuse(call_id, 488)
        elif self._keys_in_clear(message):
            log.warning("INVITE with SDES keys over a clear transport refused; 488")
            self._refuse(call_id, 488)
        elif route is None:
            log.warning("no route for the dialled number; 404")
            self._refuse(call_id, 404)
        elif not self._room_for(CallSession.LEGS):
            self._refuse(call_id, 486)
        else:
            try:
                session = CallSession(
                    self.call_services,
                    secrets.token_hex(8),
                    invite,
                    route,
                    call_id,
                    on_ended=self.session_ended,
                )
            except Exception:  # a bug or a broken prompt set must not reach pjsua's callback
                log.exception("cannot set up the call; 500")
                self._refuse(call_id, 500)
                return
            self.sessions[session.id] = session
            session.start()

    def _incoming_recording(self, call_id: int, message: str, source: str) -> None:
        """A recording client's INVITE (SIPREC): refused with the status RFC 7866 and RFC 3261
        give, or a RecordingSession. The client's address is checked here too (in a node, the
        one the front door received it from), whatever Kamailio checked before."""
        settings = self.config.siprec
        if not settings.enabled:
            log.warning("recording session offered but [siprec] is not enabled; 403")
            self._refuse(call_id, 403, "recording sessions are not accepted here")
            return
        if not _is_client(source, settings.clients):
            log.warning("recording session from %s, which is not in [siprec] clients; 403", source)
            self._refuse(call_id, 403, "not a recording client of this gateway")
            return
        if len(message.encode()) > self.config.sip.max_message_bytes:
            self._refuse(call_id, 513)
            return
        if self._keys_in_clear(message):
            log.warning("recording session with SDES keys over a clear transport refused; 488")
            self._refuse(call_id, 488, "SDES keys need TLS")
            return
        numbers = frozenset(r.number for r in self.config.routes if r.number != "*")
        offer = read_offer(
            message,
            caller_label=settings.caller_label,
            helpline_label=settings.helpline_label,
            helpline_numbers=numbers,
            consent_header=settings.consent_header,
        )
        if isinstance(offer, Rejection):
            log.warning("recording session refused: %s; %d", offer.reason, offer.code)
            self._refuse(call_id, offer.code, offer.reason)
            return
        invite = parse_invite(message)
        helpline = offer.helpline.number if offer.helpline is not None else ""
        route = (
            self.config.route_for(helpline) if helpline in numbers else self.config.route_for(invite.dialled)
        )
        if route is None:
            log.warning(
                "recording session for no route (helpline %r, dialled %r); 404", helpline, invite.dialled
            )
            self._refuse(call_id, 404, "no route for this recording session")
            return
        if not self._room_for(RecordingSession.LEGS):
            self._refuse(call_id, 486)
            return
        try:
            session = RecordingSession(
                self.call_services,
                secrets.token_hex(8),
                offer,
                route,
                call_id,
                settings,
                on_ended=self.session_ended,
            )
        except Exception:
            log.exception("cannot set up the recording session; 500")
            self._refuse(call_id, 500)
            return
        self.sessions[session.id] = session
        session.start()

    def _room_for(self, legs: int) -> bool:
        """Whether a new call or session of `legs` legs fits: an ended one keeps its legs and
        its slot until reaped."""
        used = sum(s.LEGS for s in self.sessions.values()) + sum(s.LEGS for s in self._ended)
        free_slot = len(self.slots) < self.max_legs or not all(slot.busy for slot in self.slots)
        return used + legs <= self.max_legs and free_slot

    def take_slot(self) -> MediaSlot:
        slot = next((s for s in self.slots if not s.busy), None)
        if slot is None:  # capacity is checked before a session starts
            slot = MediaSlot(
                f"{self.port}-{len(self.slots)}",
                self.clock_rate,
                self.media_format,
                self.config.recording.tap_ptime_ms,
            )
            self.slots.append(slot)
        slot.busy = True
        return slot

    def give_slot(self, slot: MediaSlot) -> None:
        slot.reset()
        slot.busy = False

    def session_ended(self, session: CallSession | RecordingSession) -> None:
        self.sessions.pop(session.id, None)
        self._ended.append(session)

    def control(self, op: str, call_id: str, actor: str) -> str | None:
        """A command from the control channel (runs on the loop's thread, like SIP callbacks)."""
        session = self.sessions.get(call_id)
        if session is None:
            return "no such live call on this worker"
        return session.control(op, actor)

    # -- lifecycle --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        try:
            self.recordings.recover()
        except IndexUnavailable as e:  # the shared index is away: its journal covers this run
            log.error("crash recovery skipped: %s", e)
        await self.events.start()
        self._refused: list[pj.Call] = []
        try:
            self._start_endpoint()
        except pj.Error as e:
            # Nothing is running yet but the endpoint itself: take it down and say why.
            self.engine.close()
            self.recordings.close()
            await self.events.close()
            try:
                self.ep.libDestroy()
            except pj.Error:
                pass
            raise ConfigError(f"cannot start SIP on {self.host}:{self.port}: {e.reason}") from None
        if ready is not None:
            ready.set()
        self.events.publish({"type": EventType.WORKER_STARTED, "capacity": self.capacity, "pid": os.getpid()})
        # Alone (no node), the worker does the gateway's background duties (retention, audit
        # checkpoints, upload); in a node the supervisor does them, once for all its workers.
        duties = Duties(self.gateway) if self.index_no is None else None
        if duties is not None:
            duties.start()
        try:
            while not stop.is_set():
                self._pump()
                self._reap()
                await asyncio.sleep(0)
            # Drain: refuse new calls (503; Kamailio tries another worker or fails open), let
            # the current ones finish, up to [node] drain_s.
            self.stopping = True
            deadline = asyncio.get_running_loop().time() + self.config.node.drain_s
            if self.sessions:
                log.info("draining %d call(s), at most %.0f s", len(self.sessions), self.config.node.drain_s)
                self.events.publish({"type": EventType.WORKER_DRAINING, "calls": len(self.sessions)})
            while self.sessions and asyncio.get_running_loop().time() < deadline:
                self._pump()
                self._reap()
                await asyncio.sleep(0)
        finally:
            await self._shutdown()
            if duties is not None:
                await duties.stop()

    PUMP_MAX_WAIT_MS = 200
    INBAND_POLL_S = 0.2
    _inband_polled = 0.0

    def _pump(self) -> None:
        """Let pjsua handle SIP: wait in its select() until a SIP packet or one of pjsua's
        timers is due, or the loop's next timer, or at most PUMP_MAX_WAIT_MS; not at all when
        the loop has callbacks ready. An idle worker then wakes five times a second, not fifty:
        each pass through here and the loop costs about 0.1 ms of Python, which in a worker of
        two calls was a third of its CPU. The loop's own sockets (supervisor pings and actions)
        wait at most that long; SIP never waits.

        Keys heard as tones are looked for in what the taps queued every INBAND_POLL_S: the
        detector's cost is mostly per turn, not per sample (0.2 s of audio at a time costs it
        about half what two turns of 0.1 s do), and a key's time comes from its onset, so only
        the reaction to it waits, by at most that long."""
        loop = asyncio.get_running_loop()
        self.ep.libHandleEvents(self._pump_wait_ms(loop))
        now = loop.time()
        if now - self._inband_polled >= self.INBAND_POLL_S:
            self._inband_polled = now
            for session in list(self.sessions.values()):
                session.poll_inband()

    def _pump_wait_ms(self, loop: asyncio.AbstractEventLoop) -> int:
        if getattr(loop, "_ready", None):  # callbacks already due: do not block
            return 0
        wait = self.PUMP_MAX_WAIT_MS / 1000
        now = loop.time()
        scheduled = getattr(loop, "_scheduled", None)  # asyncio's timer heap, soonest first
        if scheduled:
            wait = min(wait, scheduled[0].when() - now)
        if any(s.listening_inband for s in self.sessions.values()):
            wait = min(wait, self._inband_polled + self.INBAND_POLL_S - now)
        return max(0, math.ceil(wait * 1000))

    def _reap(self) -> None:
        self._refused.clear()
        if self._ended:
            done = [
                s for s in self._ended if all(leg is None or leg.disconnected for leg in (s.caller, s.pbx))
            ]
            for s in done:
                s.destroy()
                self._ended.remove(s)

    async def _shutdown(self) -> None:
        self.stopping = True
        for s in list(self.sessions.values()):
            s.hangup_all(503, "gateway shutting down")
        for _ in range(200):  # let BYEs go out and be answered, at most 2 s
            self.ep.libHandleEvents(10)
            self._reap()
            if not self._ended:
                break
            await asyncio.sleep(0)
        self.engine.close()
        self.recordings.close()
        await self.events.close()
        for s in self._ended:
            s.destroy()
        self._ended.clear()
        # Ports go before libDestroy, while the bridge they are registered with still exists, and
        # after its clock has stopped.
        release_slots(self.ep, self.slots)
        self.account.shutdown()
        for acc in self.pbx_accounts.values():
            acc.shutdown()
        del self.account
        self.pbx_accounts.clear()
        gc.collect()
        self.ep.libDestroy()
