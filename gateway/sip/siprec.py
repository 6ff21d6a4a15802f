"""SIPREC (RFC 7866) recording-session requests: what a recording client offers, read from the
INVITE's text. Pure: text in, values out; no pjsua2.

A recording client (an SBC or PBX) forks a call's media to the gateway: its INVITE carries
`Require: siprec` and a Contact with `+sip.src`, and a `multipart/mixed` body with the SDP (one
`sendonly` audio stream per participant, each with `a=label`) and an RFC 7865 metadata document
(`application/rs-metadata+xml`) that ties each label to a participant. The gateway records the
caller's stream on channel 0 and the helpline's on channel 1.

Everything here is attacker-controlled text: it is bounded, and the metadata XML is parsed
only without a DOCTYPE (no entities, no external references).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from enum import StrEnum

from .message import headers

RECORDING_NS = "urn:ietf:params:xml:ns:recording:1"
# The metadata extension this gateway reads a client's consent decision from (RFC 7865 allows
# elements of other namespaces inside <recording>): <consent xmlns="...">granted</consent>.
CONSENT_NS = "urn:x-consent-gateway:siprec:1"
MAX_METADATA_BYTES = 64 * 1024
MAX_PARTICIPANTS = 16
MAX_TEXT = 256


class RolesBy(StrEnum):
    """How the gateway told the caller's stream from the helpline's."""

    LABELS = "labels"  # [siprec] caller_label / helpline_label
    METADATA = "metadata"  # the participant whose number is a route's is the helpline
    ORDER = "order"  # first audio stream the caller, second the helpline


class MetadataError(ValueError):
    pass


@dataclass(frozen=True)
class BodyPart:
    content_type: str  # lower-case type/subtype, without parameters
    disposition: str  # lower-case disposition type ("" when absent)
    body: str


@dataclass(frozen=True)
class Participant:
    id: str
    aor: str  # the address of record as sent ("sip:+4640123456@example.com")
    name: str
    sends: tuple[str, ...] = ()  # stream ids this participant sends

    @property
    def number(self) -> str:
        """The user part of the AoR (a telephone number, usually)."""
        m = re.match(r"^(?:sips?|tel):([^@;>]+)", self.aor)
        return m.group(1)[:32] if m else ""


@dataclass(frozen=True)
class Stream:
    id: str
    label: str
    session: str = ""


@dataclass(frozen=True)
class Metadata:
    datamode: str = "complete"  # "complete" or "partial" (an update)
    sessions: dict[str, str] = field(default_factory=dict)  # session_id -> SIP session id
    group: str = ""
    participants: tuple[Participant, ...] = ()
    streams: tuple[Stream, ...] = ()
    consent: str | None = None  # the consent extension's value, if the client sent one

    def sender_of(self, label: str) -> Participant | None:
        ids = {s.id for s in self.streams if s.label == label}
        return next((p for p in self.participants if ids & set(p.sends)), None)

    def summary(self) -> dict[str, object]:
        """What the index keeps in clear: identifiers the client made up, never names or
        numbers (those are sealed with the operators' keys)."""
        return {
            "sessions": self.sessions,
            "group": self.group,
            "streams": {s.label: s.id for s in self.streams},
            "senders": {s.label: p.id for s in self.streams for p in self.participants if s.id in p.sends},
        }


@dataclass(frozen=True)
class MediaLine:
    index: int  # position among the SDP's m= lines (pjsua's media index)
    kind: str  # "audio", "video", ...
    port: int
    label: str
    direction: str  # "sendonly", "recvonly", "sendrecv" or "inactive"


@dataclass(frozen=True)
class Rejection:
    code: int
    reason: str  # for the log and the Warning header


@dataclass(frozen=True)
class RecordingOffer:
    metadata: Metadata
    audio: tuple[MediaLine, ...]  # the audio streams, in SDP order
    channels: dict[int, int]  # media index -> recording channel (0 caller, 1 helpline)
    roles_by: RolesBy
    caller: Participant | None
    helpline: Participant | None
    consent: str | None  # "granted" or "declined" when the client said so (header, metadata)
    consent_from: str  # "header", "metadata" or ""


def is_recording_session(message: str) -> bool:
    """A recording client's INVITE: `Require: siprec` or a Contact with `+sip.src`."""
    h = _all_headers(message)
    requires = {t.strip().lower() for v in h.get("require", []) for t in v.split(",")}
    contacts = " ".join(h.get("contact", []))
    return "siprec" in requires or re.search(r";\s*\+sip\.src\b", contacts, re.IGNORECASE) is not None


def _all_headers(message: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    text = message.replace("\r\n", "\n")
    head = text.split("\n\n", 1)[0]
    lines: list[str] = []
    for line in head.split("\n")[1:]:
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()  # a folded header line
        else:
            lines.append(line)
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            key = {"m": "contact", "c": "content-type"}.get(name.strip().lower(), name.strip().lower())
            out.setdefault(key, []).append(value.strip())
    return out


def _params(value: str) -> tuple[str, dict[str, str]]:
    main, *rest = value.split(";")
    params = {}
    for p in rest:
        k, _, v = p.strip().partition("=")
        params[k.strip().lower()] = v.strip().strip('"')
    return main.strip().lower(), params


def body_parts(message: str) -> list[BodyPart]:
    """The message's body, split into its parts when it is multipart (one level)."""
    text = message.replace("\r\n", "\n")
    head, sep, body = text.partition("\n\n")
    if not sep:
        return []
    h = _all_headers(message)
    ctype, params = _params((h.get("content-type") or [""])[0])
    disposition = _params((h.get("content-disposition") or [""])[0])[0]
    if not ctype.startswith("multipart/"):
        return [BodyPart(ctype, disposition, body)] if body.strip() else []
    boundary = params.get("boundary", "")
    if not boundary or len(boundary) > 70:
        raise MetadataError("a multipart body without a usable boundary")
    parts = []
    for chunk in body.split("--" + boundary)[1:]:
        if chunk.startswith("--"):
            break  # the closing delimiter
        chunk = chunk[1:] if chunk.startswith("\n") else chunk
        phead, psep, pbody = chunk.partition("\n\n")
        if not psep:  # a part without headers has an empty line first
            phead, pbody = "", chunk.lstrip("\n")
        ph = _all_headers("X\n" + phead)
        ptype = _params((ph.get("content-type") or ["text/plain"])[0])[0]
        pdisp = _params((ph.get("content-disposition") or [""])[0])[0]
        parts.append(BodyPart(ptype, pdisp, pbody.rstrip("\n") + "\n"))
    return parts


def media_lines(sdp: str) -> list[MediaLine]:
    """The SDP's media descriptions with their label and direction (session-level default)."""
    out: list[MediaLine] = []
    session_dir = "sendrecv"
    cur: dict[str, str | int] | None = None

    def close() -> None:
        if cur is not None:
            out.append(
                MediaLine(len(out), str(cur["kind"]), int(cur["port"]), str(cur["label"]), str(cur["dir"]))
            )

    for raw in sdp.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if line.startswith("m="):
            close()
            fields = line[2:].split()
            port = (
                int(fields[1].split("/")[0]) if len(fields) > 1 and fields[1].split("/")[0].isdigit() else 0
            )
            cur = {"kind": fields[0] if fields else "", "port": port, "label": "", "dir": session_dir}
        elif line in ("a=sendonly", "a=recvonly", "a=sendrecv", "a=inactive"):
            if cur is None:
                session_dir = line[2:]
            else:
                cur["dir"] = line[2:]
        elif line.startswith("a=label:") and cur is not None:
            cur["label"] = line[len("a=label:") :].strip()[:MAX_TEXT]
    close()
    return out


def _text(el: ET.Element | None) -> str:
    return " ".join((el.text or "").split())[:MAX_TEXT] if el is not None else ""


def parse_metadata(xml: str) -> Metadata:
    """An RFC 7865 metadata document (also the older draft form most SBCs still send, where
    a participant lists the streams it sends inside itself)."""
    if len(xml.encode()) > MAX_METADATA_BYTES:
        raise MetadataError(f"metadata larger than {MAX_METADATA_BYTES} bytes")
    if re.search(r"<!(DOCTYPE|ENTITY)", xml, re.IGNORECASE):
        raise MetadataError("metadata with a DOCTYPE or entities is refused")
    try:
        root = ET.fromstring(xml.strip().encode())
    except ET.ParseError as e:
        raise MetadataError(f"metadata is not well-formed XML ({e})") from None
    except (LookupError, ValueError) as e:  # an XML declaration naming an encoding expat lacks
        raise MetadataError(f"metadata in an encoding that cannot be read ({str(e)[:60]})") from None
    ns = {"r": RECORDING_NS}
    if root.tag != f"{{{RECORDING_NS}}}recording":
        raise MetadataError(f"metadata root is {root.tag!r}, not <recording> in {RECORDING_NS}")
    sessions = {
        s.get("session_id", "")[:MAX_TEXT]: _text(s.find("r:sipSessionID", ns))
        for s in root.findall("r:session", ns)
    }
    group = root.find("r:group", ns)
    streams = tuple(
        Stream(s.get("stream_id", "")[:MAX_TEXT], _text(s.find("r:label", ns)), s.get("session_id", ""))
        for s in root.findall("r:stream", ns)
    )
    sends: dict[str, list[str]] = {}
    for assoc in root.findall("r:participantstreamassoc", ns):
        sends.setdefault(assoc.get("participant_id", ""), []).extend(
            _text(x) for x in assoc.findall("r:send", ns)
        )
    participants = []
    for p in root.findall("r:participant", ns)[: MAX_PARTICIPANTS + 1]:
        pid = (p.get("participant_id") or p.get("id") or "")[:MAX_TEXT]
        name_id = p.find("r:nameID", ns)
        aor = (name_id.get("aor", "") if name_id is not None else p.get("aor", ""))[:MAX_TEXT]
        name = _text(name_id.find("r:name", ns)) if name_id is not None else ""
        own = [_text(x) for x in p.findall("r:send", ns)]  # the draft form
        participants.append(Participant(pid, aor, name, tuple(sends.get(pid, []) + own)))
    if len(participants) > MAX_PARTICIPANTS:
        raise MetadataError(f"more than {MAX_PARTICIPANTS} participants")
    consent = root.find(f".//{{{CONSENT_NS}}}consent")
    return Metadata(
        datamode=_text(root.find("r:datamode", ns)) or "complete",
        sessions=sessions,
        group=(group.get("group_id", "") if group is not None else "")[:MAX_TEXT],
        participants=tuple(participants),
        streams=streams,
        consent=_text(consent).lower() if consent is not None else None,
    )


def metadata_of(message: str) -> Metadata | None:
    """The metadata document a request carries (an INVITE, re-INVITE or UPDATE), if any."""
    for part in body_parts(message):
        if part.content_type in ("application/rs-metadata+xml", "application/rs-metadata"):
            return parse_metadata(part.body)
    return None


def sdp_of(message: str) -> str:
    return next((p.body for p in body_parts(message) if p.content_type == "application/sdp"), "")


def _decision(value: str) -> str | None:
    v = value.strip().lower()
    if v in ("granted", "yes", "true", "1"):
        return "granted"
    if v in ("declined", "no", "false", "0"):
        return "declined"
    return None  # "unavailable", "pending" or anything else decides nothing


def read_offer(
    message: str,
    *,
    caller_label: str = "",
    helpline_label: str = "",
    helpline_numbers: frozenset[str] = frozenset(),
    consent_header: str = "X-Recording-Consent",
) -> RecordingOffer | Rejection:
    """What a recording client's INVITE asks the gateway to record, or why it is refused
    (with the status RFC 7866 and RFC 3261 give for it)."""
    try:
        metadata = metadata_of(message)
    except MetadataError as e:
        return Rejection(400, f"bad recording metadata: {e}")
    if metadata is None:
        return Rejection(400, "a SIPREC INVITE must carry application/rs-metadata+xml")
    sdp = sdp_of(message)
    if not sdp:
        return Rejection(400, "a SIPREC INVITE without an SDP offer is not supported")
    audio = tuple(m for m in media_lines(sdp) if m.kind == "audio" and m.port != 0)
    if any(not m.label for m in audio):
        return Rejection(400, "every recorded stream needs an a=label (RFC 4574)")
    if len(audio) < 2:
        return Rejection(488, "the gateway records each party on its own channel: offer one stream per party")
    labels = [m.label for m in audio]
    by_label = {m.label: m for m in audio}
    roles: RolesBy
    if caller_label and helpline_label and caller_label in by_label and helpline_label in by_label:
        caller_line, helpline_line, roles = by_label[caller_label], by_label[helpline_label], RolesBy.LABELS
    else:
        senders = {label: metadata.sender_of(label) for label in labels}
        ours = [lb for lb, p in senders.items() if p is not None and p.number in helpline_numbers]
        others = [lb for lb, p in senders.items() if p is not None and lb not in ours]
        if len(ours) == 1 and others:
            caller_line, helpline_line, roles = by_label[others[0]], by_label[ours[0]], RolesBy.METADATA
        else:
            caller_line, helpline_line, roles = audio[0], audio[1], RolesBy.ORDER
    consent, consent_from = None, ""
    hv = headers(message).get(consent_header.lower())
    if hv is not None and _decision(hv) is not None:
        consent, consent_from = _decision(hv), "header"
    elif metadata.consent is not None and _decision(metadata.consent) is not None:
        consent, consent_from = _decision(metadata.consent), "metadata"
    return RecordingOffer(
        metadata=metadata,
        audio=audio,
        channels={caller_line.index: 0, helpline_line.index: 1},
        roles_by=roles,
        caller=metadata.sender_of(caller_line.label),
        helpline=metadata.sender_of(helpline_line.label),
        consent=consent,
        consent_from=consent_from,
    )
