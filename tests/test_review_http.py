"""Review access over HTTP (dashboard/review.py on app/review.py): a reviewer asks, an approver
(never the same person) grants, and only then is the recording's ciphertext served, to that
reviewer, with ranges, and every step is in the audit log with both names. The ciphertext is
proven to be the stored age file by decrypting it here with the reviewer's identity (as the
browser will), which the server never has. The application is the real one on a loopback port,
over a real SQLite index and spool, and once over a SeaweedFS S3 store with a key per recording."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer

from gateway import age
from gateway.accounts.users import UserStore
from gateway.app.holds import Holds
from gateway.app.review import Review
from gateway.app.subject import BrowserSearch
from gateway.config import DashboardConfig
from gateway.config.sections import NumbersConfig
from gateway.dashboard.app import Dashboard, build_app
from gateway.governance.grants import Policy
from gateway.recording import keys, wav
from gateway.storage import pii
from gateway.storage.index import SqliteIndex
from gateway.storage.rows import CallRow, RecordingRow, RecordingStatus, utcnow
from gateway.storage.spool import LocalSpool
from gateway.storage.store import Store
from tests import s3
from tests.audio import dominant_frequency, split_channels, tone
from tests.test_object_store import store_for

PASSWORD = "correct horse battery"
RATE = 8000
# What consent/receipt.py writes for a caller who heard the notice and pressed nothing.
RECEIPT: dict[str, Any] = {
    "version": 1,
    "route": "1177",
    "mode": "opt-out",
    "keys": {"decline": "9", "accept": None, "withdraw": "*9"},
    "grace_s": 1.0,
    "prompt": {
        "id": "notice",
        "version": "1",
        "language": "sv",
        "sha256": "ab" * 32,
        "played_ms": 6200,
        "played_sha256": "cd" * 32,
    },
    "language": {"code": "sv", "chosen_by": "route"},
    "prompts_heard": [],
    "answered_at": "2026-12-05T09:00:00Z",
    "decided_at": "2026-12-05T09:00:07.2Z",
    "ended_at": None,
    "state": "granted",
    "decision": "granted",
    "reason": "no decline key within the notice and grace",
    "decided_after_s": 7.2,
    "withdrawn_after_s": None,
    "digits": [{"digit": "5", "t": 3.1, "effect": "ignored", "via": "rfc4733"}],
    "digits_dropped": 0,
}


def stereo_wav(seconds: float = 2.0, streaming: bool = False) -> bytes:
    """Caller 440 Hz on channel 0, helpline 1000 Hz on channel 1; `streaming`: with the
    recorder's header (sizes 0xFFFFFFFF: until the end)."""
    import numpy as np

    left = np.frombuffer(tone(440, seconds), dtype="<i2")
    right = np.frombuffer(tone(1000, seconds), dtype="<i2")
    pcm = np.column_stack([left, right]).astype("<i2").tobytes()
    return wav.header(RATE, 2, 16, None if streaming else len(pcm)) + pcm


class Lab:
    def __init__(self, tmp: Path, store: Store | None = None, policy: Policy | None = None) -> None:
        self.index = SqliteIndex(tmp / "index.sqlite3", create=True)
        self.spool = LocalSpool(tmp / "spool")
        self.store = store or self.spool
        self.users = UserStore(tmp / "secrets" / "users.sqlite3", lockout_after=3, lockout_s=600)
        for name, role in (
            ("rita", "reviewer"),
            ("rob", "reviewer"),
            ("alma", "approver"),
            ("aud", "auditor"),
            ("sam", "supervisor"),
            ("olga", "officer"),
        ):
            self.users.add(name, role, PASSWORD)
        self.identity = age.Identity.generate()  # the reviewer's: only this test (the browser) has it
        self.now = time.time()
        self.review = Review(self.index, self.store, policy or Policy(), clock=lambda: self.now)

        async def command(op: str, call: str, session: Any) -> str | None:
            return None

        self.dash = Dashboard(
            DashboardConfig(idle_timeout_s=600),
            self.users,
            self.index,
            spool_dir=tmp / "spool",
            node_status=lambda: {"workers": [], "capacity_calls": 0, "failopen": 0},
            command=command,
            review=self.review,
            holds=Holds(self),
            subjects=BrowserSearch(self.index, self.store, NumbersConfig(country_code="46")),
            fetches_per_minute=20,
        )
        self.dash.backoff_s = 0.01

    def set_legal_hold(self, rec_id: str, object_name: str, on: bool) -> None:
        """The spool and this S3 store keep no Object Lock: nothing to mirror."""

    def recording(
        self,
        own_key: bool = False,
        seconds: float = 2.0,
        streaming: bool = False,
        caller: str | None = None,
        tenant: str | None = None,
    ) -> RecordingRow:
        """A finished recording in the store and the index, encrypted to the reviewer; with
        `caller`, of a call from that number (sealed as the gateway seals it) with a receipt."""
        recipient: age.AnyRecipient = self.identity.recipient()
        key_enc = None
        if own_key:
            recipient, key_enc = keys.new_recording_key([self.identity.recipient()])
        data = age.encrypt(stereo_wav(seconds, streaming), [recipient])
        if isinstance(self.store, LocalSpool):
            w = self.store.create()
            w.append(data)
            w.close()
            name = w.name
        else:
            from gateway.storage.store import new_object_name

            name = new_object_name()
            self.store.put(name, io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest())  # type: ignore[attr-defined]
        call_id = None
        if caller is not None:
            call_id = f"call-{name[:12]}"
            self.index.add_call(
                CallRow(
                    call_id,
                    utcnow(),
                    "1177",
                    caller_enc=pii.seal_value(caller, [self.identity.recipient()]),
                    tenant=tenant,
                )
            )
            self.index.put_consent_receipt(call_id, RECEIPT | {"call_id": call_id})
        row = RecordingRow(
            id=name[:16],
            call_id=call_id,
            object_name=name,
            started_at=utcnow(),
            status=RecordingStatus.COMPLETE,
            sample_rate=RATE,
            channels=2,
            finished_at=utcnow(),
            duration_s=seconds,
            bytes=len(data),
            route="1177",
            key_enc=key_enc,
            tenant=tenant,
        )
        self.index.add_recording(row)
        return row

    def actions(self, subject: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [(e.actor, e.action, e.details) for e in self.index.audit_entries() if e.subject == subject]


async def start(lab: Lab) -> TestClient:
    client = TestClient(TestServer(build_app(lab.dash), host="127.0.0.1"))
    await client.start_server()
    return client


@pytest_asyncio.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    lab = Lab(tmp_path)
    yield lab
    lab.index.close()
    lab.users.close()


class Browser:
    """One person's logged-in session (its own cookie jar) against the same server."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = ""

    @classmethod
    async def login(cls, lab: Lab, name: str) -> Browser:
        b = cls(await start(lab))
        page = await b.client.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', await page.text()).group(1)  # type: ignore[union-attr]
        r = await b.client.post(
            "/login", data={"csrf": token, "name": name, "password": PASSWORD}, allow_redirects=False
        )
        assert r.status == 303, await r.text()
        home = await (await b.client.get("/")).text()
        b.csrf = re.search(r'<meta name="csrf" content="([^"]+)"', home).group(1)  # type: ignore[union-attr]
        return b

    async def post(self, url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        r = await self.client.post(url, json=body or {}, headers={"X-CSRF-Token": self.csrf})
        return r.status, await r.json()

    async def get(self, url: str, **kw: Any) -> Any:
        return await self.client.get(url, **kw)

    async def close(self) -> None:
        await self.client.close()


async def ask(b: Browser, rec: RecordingRow) -> str:
    status, body = await b.post(
        "/api/review/grants", {"recording": rec.id, "category": "complaint", "reason": "complaint #4411"}
    )
    assert status == 201, body
    return str(body["grant"]["id"])


def decrypt(lab: Lab, data: bytes, key_enc: bytes | None = None) -> bytes:
    ids = keys.identities_for(key_enc, [lab.identity])
    return b"".join(age.AgeReader(io.BytesIO(data), ids).chunks())


def assert_two_tones(plain: bytes) -> None:
    pcm = plain[44:]
    caller, helpline = split_channels(pcm)
    assert abs(dominant_frequency(caller, RATE) - 440) < 10
    assert abs(dominant_frequency(helpline, RATE) - 1000) < 10


@pytest.mark.asyncio
async def test_four_eyes_request_approve_fetch_and_the_trail(lab: Lab) -> None:
    rec = lab.recording()
    rita, alma, aud = [await Browser.login(lab, n) for n in ("rita", "alma", "aud")]
    try:
        gid = await ask(rita, rec)
        # Nothing is served before a decision, and the reviewer cannot decide their own request.
        assert (await rita.get(f"/api/review/grants/{gid}/ciphertext")).status == 403
        status, body = await rita.post(f"/api/review/grants/{gid}/approve")
        assert status == 403 and body["refusal"] == "own_request"
        # The approver sees it (with its reason), approves it.
        listed = await (await alma.get("/api/review/grants")).json()
        assert [(g["id"], g["reason"], g["state"]) for g in listed["grants"]] == [
            (gid, "complaint #4411", "requested")
        ]
        status, body = await alma.post(f"/api/review/grants/{gid}/approve")
        assert (
            status == 200 and body["grant"]["state"] == "approved" and body["grant"]["decided_by"] == "alma"
        )
        # The approver has no use of the grant: it is the reviewer's.
        assert (await alma.get(f"/api/review/grants/{gid}/ciphertext")).status == 403
        # The reviewer gets exactly the stored age file, uncached, and it plays two channels.
        r = await rita.get(f"/api/review/grants/{gid}/ciphertext")
        assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
        assert r.headers["Accept-Ranges"] == "bytes"
        data = await r.read()
        with lab.store.open(rec.object_name) as f:
            assert data == f.read()
        assert data.startswith(b"age-encryption.org/v1\n")
        assert_two_tones(decrypt(lab, data))
        # A range, as a seek asks for it; and a range past the end.
        r = await rita.get(f"/api/review/grants/{gid}/ciphertext", headers={"Range": "bytes=100-199"})
        assert r.status == 206 and r.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
        assert await r.read() == data[100:200]
        r = await rita.get(f"/api/review/grants/{gid}/ciphertext", headers={"Range": "bytes=-50"})
        assert r.status == 206 and await r.read() == data[-50:]
        r = await rita.get(f"/api/review/grants/{gid}/ciphertext", headers={"Range": f"bytes={len(data)}-"})
        assert r.status == 416 and r.headers["Content-Range"] == f"bytes */{len(data)}"
        # No key of its own: nothing to fetch there.
        assert (await rita.get(f"/api/review/grants/{gid}/key")).status == 404
        # Download is not allowed by default, and the refusal is audited.
        status, body = await rita.post(f"/api/review/grants/{gid}/download")
        assert status == 403 and body["refusal"] == "no_download"
        # The auditor sees the whole trail, every entry naming the grant and the requester.
        trail = lab.actions(rec.id)
        assert [a for _, a, _ in trail] == [
            "review.requested",
            "review.fetch_refused",
            "review.refused",
            "review.approved",
            "review.fetch_refused",
            "review.fetched",
            "review.fetched",
            "review.fetched",
            "review.download_refused",
        ]
        assert all(d["grant"] == gid and d["requester"] == "rita" for _, _, d in trail)
        approved = trail[3]
        assert approved[0] == "dashboard:alma" and approved[2]["approver"] == "alma"
        assert [d["start"] for _, a, d in trail if a == "review.fetched"] == [0, 100, len(data) - 50]
        assert all(d.get("approver") == "alma" for _, a, d in trail if a == "review.fetched")
        audit = await (await aud.get("/api/audit?limit=50")).json()
        assert {"review.requested", "review.approved", "review.fetched"} <= {
            e["action"] for e in audit["entries"]
        }
        assert audit["chain"]["ok"]
        # No request or response on this path ever carried the reviewer's identity.
        assert all(str(lab.identity.encode()) not in str(d) for _, _, d in trail)
    finally:
        for b in (rita, alma, aud):
            await b.close()


@pytest.mark.asyncio
async def test_denied_revoked_and_expired_grants_get_403_and_are_audited(lab: Lab) -> None:
    rec = lab.recording()
    rita, rob, alma = (
        await Browser.login(lab, "rita"),
        await Browser.login(lab, "rob"),
        await Browser.login(lab, "alma"),
    )
    try:
        denied = await ask(rita, rec)
        status, body = await rita.post(f"/api/review/grants/{denied}/deny")
        assert status == 403 and body["refusal"] == "own_request"
        assert (await alma.post(f"/api/review/grants/{denied}/deny", {"note": "not a complaint"}))[0] == 200
        r = await rita.get(f"/api/review/grants/{denied}/ciphertext")
        assert r.status == 403 and (await r.json())["refusal"] == "denied"

        revoked = await ask(rita, rec)
        await alma.post(f"/api/review/grants/{revoked}/approve")
        assert (await rita.get(f"/api/review/grants/{revoked}/ciphertext")).status == 200
        # Another reviewer does not even learn the grant exists, nor can revoke it.
        assert (await rob.get(f"/api/review/grants/{revoked}/ciphertext")).status == 404
        assert (await rob.post(f"/api/review/grants/{revoked}/revoke"))[0] == 404
        assert (await (await rob.get("/api/review/grants")).json())["grants"] == []
        assert (await alma.post(f"/api/review/grants/{revoked}/revoke", {"note": "case closed"}))[0] == 200
        r = await rita.get(f"/api/review/grants/{revoked}/ciphertext")
        assert r.status == 403 and (await r.json())["refusal"] == "revoked"

        expiring = await ask(rita, rec)
        await alma.post(f"/api/review/grants/{expiring}/approve")
        assert (await rita.get(f"/api/review/grants/{expiring}/ciphertext")).status == 200
        lab.now += 86400  # [review] grant_s later
        r = await rita.get(f"/api/review/grants/{expiring}/ciphertext")
        assert r.status == 403 and (await r.json())["refusal"] == "expired"
        assert lab.review.expire_due() == 0  # the refused fetch already marked it, once
        trail = lab.actions(rec.id)
        refused = [(d["grant"], d["refusal"]) for _, a, d in trail if a == "review.fetch_refused"]
        assert refused == [(denied, "denied"), (revoked, "revoked"), (expiring, "expired")]
        assert [(d["grant"], actor) for actor, a, d in trail if a == "review.expired"] == [
            (expiring, "gateway")
        ]
        assert [d["note"] for _, a, d in trail if a in ("review.denied", "review.revoked")] == [
            "not a complaint",
            "case closed",
        ]
        # The sweep expires what nobody fetched, also once.
        quiet = await ask(rita, rec)
        await alma.post(f"/api/review/grants/{quiet}/approve")
        lab.now += 86401
        assert lab.review.expire_due() == 1 and lab.review.expire_due() == 0
    finally:
        for b in (rita, rob, alma):
            await b.close()


@pytest.mark.asyncio
async def test_the_officer_places_and_releases_a_legal_hold_with_a_reason(lab: Lab) -> None:
    rec = lab.recording()
    olga, rita = await Browser.login(lab, "olga"), await Browser.login(lab, "rita")
    try:
        assert (await olga.post(f"/api/recordings/{rec.id}/hold", {"reason": " "}))[0] == 400
        assert (await rita.post(f"/api/recordings/{rec.id}/hold", {"reason": "mine"}))[0] == 403
        assert (await olga.post("/api/recordings/nope/hold", {"reason": "case 7"}))[0] == 404
        status, body = await olga.post(f"/api/recordings/{rec.id}/hold", {"reason": "complaint 4411"})
        assert status == 200 and body["added"] is True
        assert (await olga.post(f"/api/recordings/{rec.id}/hold", {"reason": "again"}))[1]["added"] is False
        detail = await (await olga.get(f"/api/recordings/{rec.id}")).json()
        assert detail["recording"]["held"] and detail["holds"][0]["reason"] == "complaint 4411"
        listed = await (await olga.get("/api/recordings?held=yes")).json()
        assert [r["id"] for r in listed["recordings"]] == [rec.id]
        status, body = await olga.post(f"/api/recordings/{rec.id}/release", {"reason": "case closed"})
        assert status == 200 and body["released"] == 1
        assert not lab.index.active_holds(rec.id)
        trail = [(a, act, d.get("reason")) for a, act, d in lab.actions(rec.id)]
        assert trail == [
            ("dashboard:olga", "hold.added", "complaint 4411"),
            ("dashboard:olga", "hold.removed", "case closed"),
        ]
    finally:
        await olga.close()
        await rita.close()


@pytest.mark.asyncio
async def test_a_reader_that_stops_early_is_no_server_error(lab: Lab, caplog: Any) -> None:
    """The player stops reading at every seek, speed change and close."""
    rec = lab.recording(seconds=600)  # 19 MB: more than loopback's socket buffers hold
    rita, alma = await Browser.login(lab, "rita"), await Browser.login(lab, "alma")
    try:
        gid = await ask(rita, rec)
        await alma.post(f"/api/review/grants/{gid}/approve")
        for _ in range(3):
            r = await rita.get(f"/api/review/grants/{gid}/ciphertext")
            await r.content.readexactly(1 << 16)
            assert r.connection is not None and r.connection.transport is not None
            r.connection.transport.abort()  # as a browser does when a fetch is cancelled
        await asyncio.sleep(1.0)
        assert [x.getMessage() for x in caplog.records if x.levelno >= logging.ERROR] == []
    finally:
        await rita.close()
        await alma.close()


@pytest.mark.asyncio
async def test_subject_search_pages_sealed_numbers_and_audits_only_what_matched(lab: Lab) -> None:
    mine = lab.recording(caller="0701234567")
    lab.recording(caller="+46 8 123 456")
    lab.recording()  # no number
    olga, rita = await Browser.login(lab, "olga"), await Browser.login(lab, "rita")
    try:
        assert (await rita.get("/api/subject/numbers")).status == 403
        r = await (await olga.get("/api/subject/numbers?since=2000-01-01")).json()
        assert r["numbering"] == {"country_code": "46", "national_prefix": "0", "international_prefix": "00"}
        assert r["next"] is None and len(r["numbers"]) == 2
        # The page decrypts (here: the test, with the officer's identity) and compares.
        hits = [
            call
            for call, b64 in r["numbers"]
            if any(
                pii.same_number(n, "+46701234567", NumbersConfig(country_code="46"))
                for n in pii.opened_numbers(age.decrypt(base64.b64decode(b64), [lab.identity]).decode())
            )
        ]
        assert hits == [mine.call_id]
        assert (await olga.get("/api/subject/numbers?until=2000-01-01")).status == 200
        empty = await (await olga.get("/api/subject/numbers?until=2000-01-01")).json()
        assert empty["numbers"] == []
        status, found = await olga.post("/api/subject/found", {"label": r["label"], "calls": hits})
        assert status == 200 and [x["id"] for x in found["recordings"]] == [mine.id]
        assert (await olga.post("/api/subject/found", {"label": "nope", "calls": hits}))[0] == 400
        entries = [e for e in lab.index.audit_entries() if e.subject == r["label"]]
        assert [(e.actor, e.action) for e in entries] == [
            ("dashboard:olga", "subject.searched"),
            ("dashboard:olga", "subject.found"),
        ]
        assert entries[1].details == {"calls": 1, "recordings": 1, "via": "browser"}
        assert "0701234567" not in json.dumps([e.details for e in lab.index.audit_entries()])
    finally:
        await olga.close()
        await rita.close()


@pytest.mark.asyncio
async def test_an_erasure_from_the_page_needs_a_second_person_and_happens_once(lab: Lab) -> None:
    rec = lab.recording(caller="0701234567")
    olga, alma, rita = [await Browser.login(lab, n) for n in ("olga", "alma", "rita")]
    try:
        status, body = await rita.post(
            "/api/review/grants", {"recording": rec.id, "category": "erasure", "reason": "I want it gone"}
        )
        assert status == 403 and body["refusal"] == "role"
        status, body = await olga.post(
            "/api/review/grants",
            {"recording": rec.id, "category": "erasure", "reason": "subject request 118"},
        )
        gid = body["grant"]["id"]
        assert (await olga.post(f"/api/review/grants/{gid}/approve"))[1]["refusal"] == "own_request"
        assert (await olga.post(f"/api/review/grants/{gid}/erase"))[1]["refusal"] == "not_decided"
        await alma.post(f"/api/review/grants/{gid}/approve")
        # An erasure grant gives no access to the audio.
        assert (await olga.get(f"/api/review/grants/{gid}/ciphertext")).status == 403
        assert (await alma.post(f"/api/review/grants/{gid}/erase"))[0] == 403
        status, body = await olga.post(f"/api/review/grants/{gid}/erase")
        assert status == 200 and body["deleted"] == [rec.id], body
        assert lab.index.get_recording(rec.id).status == RecordingStatus.DELETED
        assert not lab.store.exists(rec.object_name)
        assert lab.index.calls_by_ids([rec.call_id])[0].caller_enc is None  # the number forgotten
        again = await olga.post(f"/api/review/grants/{gid}/erase")
        assert again[0] == 403 and again[1]["refusal"] == "revoked"
        actions = [(e.actor, e.action, e.subject) for e in lab.index.audit_entries()]
        assert ("dashboard:olga", "subject.erased", f"request:{gid}") in actions
        assert ("dashboard:olga", "review.erased", rec.id) in actions
        assert ("dashboard:alma", "review.erase_refused", rec.id) in actions
    finally:
        for b in (olga, alma, rita):
            await b.close()


@pytest.mark.asyncio
async def test_people_scoped_to_a_tenant_review_hold_and_audit_its_recordings_alone(lab: Lab) -> None:
    """Issue 27: a reviewer, approver, officer and auditor scoped to "north" see and act on
    north's recordings alone. Another tenant's recording, and a request for it, answer exactly
    as ones that do not exist; the audit view lists north's entries alone, and each entry about
    a recording carries its tenant."""
    for name, role in (
        ("n-rev", "reviewer"),
        ("n-app", "approver"),
        ("n-off", "officer"),
        ("n-aud", "auditor"),
    ):
        lab.users.add(name, role, PASSWORD, "north")
    rn, rs = lab.recording(tenant="north"), lab.recording(tenant="south")
    people = {n: await Browser.login(lab, n) for n in ("n-rev", "n-app", "n-off", "n-aud", "rita", "aud")}
    try:
        rev, app, off, aud = (people[n] for n in ("n-rev", "n-app", "n-off", "n-aud"))

        def same(a: tuple[int, dict[str, Any]], b: tuple[int, dict[str, Any]], ids: tuple[str, str]) -> None:
            assert a[0] == b[0] == 404 and a[1]["error"].replace(ids[0], "X") == b[1]["error"].replace(
                ids[1], "X"
            )

        body = {"category": "complaint", "reason": "complaint #7"}
        other = await rev.post("/api/review/grants", {**body, "recording": rs.id})
        none = await rev.post("/api/review/grants", {**body, "recording": "feedfeedfeedfeed"})
        same(other, none, (rs.id, "feedfeedfeedfeed"))
        mine, theirs = await ask(rev, rn), await ask(people["rita"], rs)
        listed = await (await app.get("/api/review/grants")).json()
        assert [g["id"] for g in listed["grants"]] == [mine]
        same(
            await app.post(f"/api/review/grants/{theirs}/approve"),
            await app.post("/api/review/grants/0000000000000000/approve"),
            (theirs, "0000000000000000"),
        )
        status, _ = await app.post(f"/api/review/grants/{mine}/approve")
        assert status == 200
        r = await rev.get(f"/api/review/grants/{mine}/ciphertext")
        assert r.status == 200
        assert_two_tones(decrypt(lab, await r.read()))
        # Holds: north's recording only.
        same(
            await off.post(f"/api/recordings/{rs.id}/hold", {"reason": "case 1"}),
            await off.post("/api/recordings/feedfeedfeedfeed/hold", {"reason": "case 1"}),
            (rs.id, "feedfeedfeedfeed"),
        )
        assert (await off.post(f"/api/recordings/{rn.id}/hold", {"reason": "case 1"}))[0] == 200
        # Every entry about a recording carries its tenant; the scoped view shows north's alone.
        entries = lab.index.audit_entries()
        about = {e.seq: e.tenant for e in entries if e.subject in (rn.id, rs.id)}
        assert {e.subject: e.tenant for e in entries if e.seq in about} == {rn.id: "north", rs.id: "south"}
        log = await (await aud.get("/api/audit?limit=1000")).json()
        seen = [(e["action"], e["subject"]) for e in log["entries"]]
        assert ("review.requested", rn.id) in seen and ("hold.added", rn.id) in seen
        assert all(e["details"].get("tenant") == "north" for e in log["entries"])
        assert rs.id not in json.dumps(log) and log["chain"]["ok"]
        whole = await (await people["aud"].get("/api/audit?limit=1000")).json()
        assert ("review.requested", rs.id) in [(e["action"], e["subject"]) for e in whole["entries"]]
    finally:
        for b in people.values():
            await b.close()


@pytest.mark.asyncio
async def test_roles_that_may_not_review(lab: Lab) -> None:
    rec = lab.recording()
    sam, alma, aud = (
        await Browser.login(lab, "sam"),
        await Browser.login(lab, "alma"),
        await Browser.login(lab, "aud"),
    )
    try:
        for b in (sam, alma, aud):  # only reviewers ask
            status, _ = await b.post(
                "/api/review/grants", {"recording": rec.id, "category": "quality", "reason": "spot check"}
            )
            assert status == 403
        assert (await sam.get("/api/review/grants")).status == 403
        assert (await sam.get("/api/recordings")).status == 403
        # Reviewers and approvers handle recordings, not calls: no live view for them.
        rita = await Browser.login(lab, "rita")
        origin = f"http://{rita.client.host}:{rita.client.port}"
        with pytest.raises(WSServerHandshakeError) as e:
            await rita.client.ws_connect("/ws", headers={"Origin": origin})
        assert e.value.status == 403
        # A bad request is refused with a reason, and nothing is stored.
        status, body = await rita.post(
            "/api/review/grants", {"recording": rec.id, "category": "gossip", "reason": "x"}
        )
        assert status == 403 and body["refusal"] == "bad_request"
        status, body = await rita.post(
            "/api/review/grants", {"recording": "nope", "category": "quality", "reason": "abc"}
        )
        assert status == 404
        assert lab.index.grants() == []
        # Without the CSRF token nothing moves.
        r = await rita.client.post(
            "/api/review/grants", json={"recording": rec.id, "category": "quality", "reason": "abc"}
        )
        assert r.status == 403
        await rita.close()
    finally:
        for b in (sam, alma, aud):
            await b.close()


@pytest.mark.asyncio
async def test_without_four_eyes_a_reviewer_grants_themselves_loudly(tmp_path: Path, caplog: Any) -> None:
    lab = Lab(tmp_path, policy=Policy(four_eyes=False, grant_s=600, allow_download=True))
    rec = lab.recording()
    rita = await Browser.login(lab, "rita")
    try:
        gid = await ask(rita, rec)
        listed = await (await rita.get("/api/review/grants")).json()
        assert listed["policy"]["four_eyes"] is False
        status, body = await rita.post(f"/api/review/grants/{gid}/approve")
        assert status == 200 and body["grant"]["self_granted"] is True
        assert "granted themselves access" in caplog.text
        assert (await rita.get(f"/api/review/grants/{gid}/ciphertext")).status == 200
        assert (await rita.post(f"/api/review/grants/{gid}/download"))[0] == 200
        actions = [a for _, a, _ in lab.actions(rec.id)]
        assert actions == ["review.requested", "review.self_granted", "review.fetched", "review.downloaded"]
    finally:
        await rita.close()
        lab.index.close()
        lab.users.close()


@pytest.mark.asyncio
async def test_fetches_are_rate_limited_per_reviewer(lab: Lab) -> None:
    rec = lab.recording()
    rita, alma = await Browser.login(lab, "rita"), await Browser.login(lab, "alma")
    try:
        gid = await ask(rita, rec)
        await alma.post(f"/api/review/grants/{gid}/approve")
        statuses = [
            (await rita.get(f"/api/review/grants/{gid}/ciphertext", headers={"Range": "bytes=0-9"})).status
            for _ in range(21)
        ]
        assert statuses == [206] * 20 + [429]
        assert sum(1 for _, a, _ in lab.actions(rec.id) if a == "review.fetched") == 20
    finally:
        await rita.close()
        await alma.close()


@pytest.mark.asyncio
async def test_recordings_list_pages_by_start_time_with_filters(lab: Lab) -> None:
    rows = [lab.recording(seconds=0.2) for _ in range(7)]
    lab.index.update_recording(rows[0].id, route="999")
    lab.index.add_hold(rows[1].id, "legal", "test")
    aud = await Browser.login(lab, "aud")
    try:
        seen: list[str] = []
        url = "/api/recordings?limit=3"
        for _ in range(5):
            page = await (await aud.get(url)).json()
            seen += [r["id"] for r in page["recordings"]]
            if page["next"] is None:
                break
            url = f"/api/recordings?limit=3&after={page['next']}"
        expected = [r.id for r in sorted(rows, key=lambda r: (r.started_at, r.id), reverse=True)]
        assert seen == expected
        only = await (await aud.get("/api/recordings?route=999")).json()
        assert [r["id"] for r in only["recordings"]] == [rows[0].id]
        held = await (await aud.get("/api/recordings?held=yes")).json()
        assert [(r["id"], r["held"]) for r in held["recordings"]] == [(rows[1].id, True)]
        assert (await aud.get("/api/recordings?status=lost")).status == 400
        assert (await aud.get("/api/recordings?after=notatime|x")).status == 400
        # The node, the notice's language and the consent outcome, each listed and filtered on.
        lab.index.update_recording(rows[2].id, node="b", language="en", consent="key")
        lab.index.update_recording(rows[3].id, node="a", language="sv", consent="withdrawn")
        by_key = await (await aud.get("/api/recordings?consent=key&node=b&language=en")).json()
        assert [(r["id"], r["node"], r["language"], r["consent"]) for r in by_key["recordings"]] == [
            (rows[2].id, "b", "en", "key")
        ]
        assert [r["id"] for r in (await (await aud.get("/api/recordings?node=a")).json())["recordings"]] == [
            rows[3].id
        ]
        oldest = await (await aud.get("/api/recordings?order=oldest&limit=3")).json()
        assert [r["id"] for r in oldest["recordings"]] == expected[::-1][:3]
        after = await (await aud.get(f"/api/recordings?order=oldest&limit=3&after={oldest['next']}")).json()
        assert [r["id"] for r in after["recordings"]] == expected[::-1][3:6]
        assert (await aud.get("/api/recordings?order=sideways")).status == 400
        assert (await aud.get("/api/recordings?consent=maybe")).status == 400
        assert (await aud.get("/api/recordings?language=EN")).status == 400
        detail = await (await aud.get(f"/api/recordings/{rows[0].id}")).json()
        assert detail["recording"]["route"] == "999" and detail["receipt"] is None
        assert (await aud.get("/api/recordings/nope")).status == 404
    finally:
        await aud.close()


def test_the_page_names_every_consent_outcome_the_index_lists() -> None:
    """review.js's CONSENT labels, one per consent/receipt.py Outcome, no more."""
    from gateway.consent.receipt import Outcome

    js = (Path(__file__).parents[1] / "gateway/dashboard/static/review.js").read_text()
    block = js[js.index("const CONSENT = {") : js.index("};", js.index("const CONSENT = {"))]
    keys = re.findall(r'^\s+"?([a-z-]+)"?:', block, re.M)
    assert sorted(keys) == sorted(o.value for o in Outcome)


@pytest.mark.asyncio
async def test_a_key_per_recording_recording_from_the_s3_store(
    tmp_path: Path, s3_server: s3.S3Server
) -> None:
    store = store_for(s3_server, s3_server.new_bucket())
    lab = Lab(tmp_path, store=store)
    rec = lab.recording(own_key=True, seconds=3.0)
    rita, alma = await Browser.login(lab, "rita"), await Browser.login(lab, "alma")
    try:
        gid = await ask(rita, rec)
        await alma.post(f"/api/review/grants/{gid}/approve")
        key = await (await rita.get(f"/api/review/grants/{gid}/key")).read()
        assert key == rec.key_enc and key.startswith(b"age-encryption.org/v1\n")
        data = await (await rita.get(f"/api/review/grants/{gid}/ciphertext")).read()
        assert len(data) == rec.bytes
        with pytest.raises(age.AgeError):  # the reviewer's identity alone does not open it
            b"".join(age.AgeReader(io.BytesIO(data), [lab.identity]).chunks())
        assert_two_tones(decrypt(lab, data, key))
        r = await rita.get(f"/api/review/grants/{gid}/ciphertext", headers={"Range": "bytes=1000-"})
        assert r.status == 206 and await r.read() == data[1000:]
        assert [a for _, a, _ in lab.actions(rec.id)][-3:] == [
            "review.key_fetched",
            "review.fetched",
            "review.fetched",
        ]
    finally:
        await rita.close()
        await alma.close()
        lab.index.close()
        lab.users.close()
