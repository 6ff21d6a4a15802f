"""The review page in a real browser: Playwright driving Debian's chromium against the real
dashboard application on a loopback port, over a real SQLite index and spool (and once a
SeaweedFS S3 store with a key per recording).

A reviewer requests access to a recording; an approver (another browser, another login) grants
it; the reviewer loads their age identity file into the page and plays. What the page hands the
audio graph is tapped (every AudioBuffer given to a source node) and must carry the caller's
440 Hz on channel 0 and the helpline's 1000 Hz on channel 1. Every request any page sends,
the decryption worker's included, is captured: none carries the identity, as text or as bytes.
After the browser closes, its profile directory holds no RIFF/WAV bytes. The reviewer cannot
approve their own request; a revoked grant stops the player and the refusal is audited.
"""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from aiohttp import web

from gateway import age
from gateway.app.review import person
from gateway.dashboard.app import WORKER, build_app
from gateway.storage.rows import RecordingStatus
from gateway.storage.store import Store
from tests import s3
from tests.audio import dominant_frequency
from tests.calls import CallLab
from tests.conftest import require_tool
from tests.test_dashboard_browser import CHROMIUM_ARGS, add_user
from tests.test_object_store import store_for
from tests.test_review_http import PASSWORD, RATE, Lab

pytestmark = pytest.mark.slow
SCREENSHOTS = Path(tempfile.gettempdir()) / "consent-gateway-screenshots"

# Every buffer of decoded audio the page gives Web Audio, copied out for the test: the tap.
TAP = """
window.__tap = [[], []];
const start = AudioBufferSourceNode.prototype.start;
AudioBufferSourceNode.prototype.start = function (...args) {
  const b = this.buffer;
  if (b) for (let c = 0; c < Math.min(2, b.numberOfChannels); c++) window.__tap[c].push(Array.from(b.getChannelData(c)));
  return start.apply(this, args);
};
"""


async def serve(lab: Lab) -> AsyncIterator[str]:
    runner = web.AppRunner(build_app(lab.dash), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def chromium(tmp_path: Path) -> AsyncIterator[Any]:
    """A persistent browser context with its own profile directory (checked afterwards)."""
    exe = require_tool("chromium")
    assert WORKER.is_file(), f"{WORKER} is missing: scripts/setup.sh builds it"
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        yield p, exe


async def login(page: Any, url: str, name: str) -> None:
    await page.goto(url + "/")
    assert page.url.endswith("/login")
    await page.fill("input[name=name]", name)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_selector("#tabs button[data-tab=recordings]", timeout=10_000)


async def load_key(page: Any, identity: age.Identity, where: Path) -> None:
    """Pick the identity file in the visible tab's key box, as a person does, and wait until
    the worker holds it; the file is removed at once."""
    key = where / "identity.agekey"
    key.write_text(identity.encode() + "\n")
    try:
        await page.set_input_files("section:not([hidden]) .key-file", str(key))
        await page.wait_for_selector(
            "section:not([hidden]) .key-status:has-text('Key ready for')", timeout=10_000
        )
    finally:
        key.unlink()


def secret_bytes(identity: age.Identity) -> list[bytes]:
    """The identity as it could leak: its text (any case) and its raw key bytes."""
    text = identity.encode()
    out = [text.encode(), text.lower().encode(), b"AGE-SECRET-KEY-", b"age-secret-key-"]
    from cryptography.hazmat.primitives import serialization

    raw = identity.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return [*out, raw]


async def play_and_tap(page: Any, rec_id: str, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    await page.click(f'#rec-table tr[data-rec="{rec_id}"]')
    await page.wait_for_selector("button[data-op=play]", timeout=10_000)
    await page.click("button[data-op=play]")
    await page.wait_for_selector(".player canvas[data-channel='0']", timeout=10_000)
    # Enough audio handed to the graph for the tones to be measured.
    await page.wait_for_function(
        "n => window.__tap[0].reduce((a, b) => a + b.length, 0) >= n", arg=int(RATE * seconds), timeout=15_000
    )
    tap = await page.evaluate("window.__tap")
    ch0 = np.concatenate([np.array(b, dtype=np.float32) for b in tap[0]])
    ch1 = np.concatenate([np.array(b, dtype=np.float32) for b in tap[1]])
    return ch0, ch1


def pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


@dataclass
class Site:
    """Where the reviewer works: a dashboard's address, the recording to review, the identity it
    was encrypted to (the reviewer's, held by this test only) and the audit trail's
    (actor, action) pairs for a recording."""

    url: str
    rec_id: str
    identity: age.Identity
    trail: Callable[[str], list[tuple[str, str]]]


async def reviewer_plays(tmp_path: Path, chromium: Any, site: Site, *, own_key: bool, shots: bool) -> None:
    p, exe = chromium
    url, rec_id = site.url, site.rec_id
    profile = tmp_path / "profile"
    ctx = await p.chromium.launch_persistent_context(
        str(profile),
        executable_path=exe,
        headless=True,
        args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"],
        viewport={"width": 1280, "height": 900},
    )
    sent: list[tuple[str, str, bytes]] = []

    def capture(req: Any) -> None:
        body = req.post_data_buffer or b""
        headers = "\n".join(f"{k}: {v}" for k, v in req.headers.items())
        sent.append((req.url, headers, body))

    ctx.on("request", capture)
    browser2 = await p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
    try:
        await ctx.add_init_script(TAP)
        rita = ctx.pages[0] if ctx.pages else await ctx.new_page()
        problems: list[str] = []
        rita.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        rita.on(
            "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
        )
        rita.on("worker", lambda w: w.on("console", lambda m: problems.append(f"worker: {m.text}")))
        await login(rita, url, "rita")
        await rita.click("button[data-tab=recordings]")
        await rita.click(f'#rec-table tr[data-rec="{rec_id}"]')
        await rita.fill(
            "#request-form textarea[name=reason]", "complaint #4411: the caller says they were not told"
        )
        await rita.select_option("#request-form select[name=category]", "complaint")
        await rita.click("#request-form button[type=submit]")
        await rita.wait_for_selector("tr[data-grant] .pill.requested", timeout=10_000)
        # The reviewer is offered no way to decide their own request, and the server refuses it.
        assert await rita.query_selector("tr[data-grant] button[data-op=approve]") is None
        gid = await rita.get_attribute("tr[data-grant]", "data-grant")
        refused = await rita.evaluate(
            """async g => (await fetch(`/api/review/grants/${g}/approve`, {method: "POST",
                 headers: {"X-CSRF-Token": document.querySelector('meta[name=csrf]').content,
                           "Content-Type": "application/json"}, body: "{}"})).status""",
            gid,
        )
        assert refused == 403

        # The approver, in another browser, sees the request with its reason and grants it.
        alma = await browser2.new_page()
        alma.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
        await login(alma, url, "alma")
        await alma.click("button[data-tab=requests]")
        row = f'tr[data-grant="{gid}"]'
        await alma.wait_for_selector(row, timeout=10_000)
        assert "not told" in await alma.inner_text(row)
        if shots:
            SCREENSHOTS.mkdir(exist_ok=True)
            await alma.screenshot(path=str(SCREENSHOTS / "review-requests.png"), full_page=True)
        await alma.click(f"{row} button[data-op=approve]")
        await alma.wait_for_selector(f"{row} .pill.approved", timeout=10_000)

        # The reviewer loads the identity file (the page hands the File to the worker) and plays.
        await load_key(rita, site.identity, tmp_path)
        await rita.click(f'#rec-table tr[data-rec="{rec_id}"]')
        try:
            ch0, ch1 = await play_and_tap(rita, rec_id, 3.0)
        except Exception:
            state = await rita.evaluate(
                "[document.querySelector('#status').textContent, document.querySelector('.key-status').textContent,"
                " document.querySelector('.player') && document.querySelector('.player').outerHTML.slice(0, 300)]"
            )
            raise AssertionError(f"{state} {problems}") from None
        assert abs(dominant_frequency(pcm16(ch0), RATE) - 440) < 10
        assert abs(dominant_frequency(pcm16(ch1), RATE) - 1000) < 10
        await rita.wait_for_function(
            "() => document.querySelector('.player canvas[data-channel=\"1\"]') !== null", timeout=5_000
        )
        if shots:
            await asyncio.sleep(0.5)
            await rita.screenshot(path=str(SCREENSHOTS / "review-player.png"), full_page=True)
        # The worker's own fetches were captured (so the capture covers them), and no request
        # of any page carried the identity.
        assert any(u.endswith(f"/api/review/grants/{gid}/ciphertext") for u, _, _ in sent)
        if own_key:
            assert any(u.endswith(f"/api/review/grants/{gid}/key") for u, _, _ in sent)
        for u, h, body in sent:
            blob = u.encode() + h.encode() + body
            for secret in secret_bytes(site.identity):
                assert secret not in blob, f"the identity went out with {u}"

        # The approver revokes in their page, and access ends at once: the reviewer's next
        # fetch is refused, and the page says so.
        await alma.click("button[data-tab=requests]")
        await alma.click(f"{row} button[data-op=revoke]")
        await alma.wait_for_selector(f"{row} .pill.revoked", timeout=10_000)
        await rita.keyboard.press("Home")  # a seek: a new fetch, which must be refused
        await rita.wait_for_selector("#status:has-text('Access ended')", timeout=10_000)
        assert await rita.query_selector(".player canvas") is None  # the player closed
        assert ("dashboard:rita", "review.fetch_refused") in site.trail(rec_id)

        await rita.click("#logout button")
        await rita.wait_for_url(re.compile(r".*/login$"), timeout=10_000)
    finally:
        await ctx.close()
        await browser2.close()
    riff = [
        f
        for f in profile.rglob("*")
        if f.is_file() and (b"RIFF" in f.read_bytes() or b"WAVEfmt" in f.read_bytes())
    ]
    assert riff == [], riff
    trail = site.trail(rec_id)
    for step in (
        "review.requested",
        "review.refused",
        "review.approved",
        "review.fetched",
        "review.revoked",
        "review.fetch_refused",
    ):
        assert step in [act for _, act in trail], (step, trail)
    assert ("dashboard:alma", "review.approved") in trail
    assert ("dashboard:alma", "review.revoked") in trail


def lab_site(lab: Lab, url: str, own_key: bool) -> Site:
    rec = lab.recording(own_key=own_key, seconds=6.0, streaming=True)
    return Site(url, rec.id, lab.identity, lambda r: [(a, act) for a, act, _ in lab.actions(r)])


@pytest.mark.asyncio
async def test_reviewer_requests_approver_grants_reviewer_plays_in_the_page(
    tmp_path: Path, chromium: Any, caplog: pytest.LogCaptureFixture
) -> None:
    lab = Lab(tmp_path)
    try:
        async for url in serve(lab):
            await reviewer_plays(tmp_path, chromium, lab_site(lab, url, False), own_key=False, shots=True)
        # Seeks and closing the player end reads early: the server takes that quietly.
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    finally:
        lab.index.close()
        lab.users.close()


@pytest.mark.asyncio
async def test_a_key_per_recording_recording_from_the_s3_store_plays_in_the_page(
    tmp_path: Path, chromium: Any, s3_server: s3.S3Server
) -> None:
    store: Store = store_for(s3_server, s3_server.new_bucket())
    lab = Lab(tmp_path, store=store)
    try:
        async for url in serve(lab):
            await reviewer_plays(tmp_path, chromium, lab_site(lab, url, True), own_key=True, shots=False)
    finally:
        lab.index.close()
        lab.users.close()


@pytest.mark.asyncio
async def test_the_officer_finds_a_callers_recordings_in_the_page_and_holds_one(
    tmp_path: Path, chromium: Any
) -> None:
    """The sealed numbers are decrypted in the officer's page; the number searched for never
    leaves it; the match opens with its receipt and gets a legal hold, audited."""
    p, exe = chromium
    lab = Lab(tmp_path)
    mine = lab.recording(caller="+46 70 123 45 67")
    lab.recording(caller="0812345678")
    sent: list[str] = []
    try:
        async for url in serve(lab):
            browser = await p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                page.on("request", lambda r: sent.append(r.url + (r.post_data or "")))
                await login(page, url, "olga")
                await page.click("button[data-tab=subject]")
                await load_key(page, lab.identity, tmp_path)
                await page.fill("#subject-number", "070-123 45 67")
                # "to" today includes today (the API's until is the first instant left out).
                await page.fill("#subject-form input[name=until]", time.strftime("%Y-%m-%d", time.gmtime()))
                await page.click("#subject-form button[type=submit]")
                await page.wait_for_selector(
                    "#subject-progress:has-text('+46701234567: 1 calls, 1 recordings')"
                )
                rows = await page.eval_on_selector_all(
                    "#subject-table tr[data-rec]", "rs => rs.map(r => r.dataset.rec)"
                )
                assert rows == [mine.id]
                await page.click(f'#subject-table tr[data-rec="{mine.id}"] button')
                await page.wait_for_selector("#subject-detail dl.receipt")
                assert "granted" in await page.inner_text("#subject-detail dl.receipt")
                await page.fill("#hold-form input[name=reason]", "subject request 2026-118")
                await page.click("#hold-form button[data-op=hold]")
                await page.wait_for_selector("#hold-form button[data-op=release]")
                SCREENSHOTS.mkdir(exist_ok=True)
                await page.screenshot(path=str(SCREENSHOTS / "review-subject.png"), full_page=True)
                # Erasure: the hold released, an erasure requested, approved by another person,
                # then carried out from the page.
                await page.fill("#hold-form input[name=reason]", "subject request 2026-118 answered")
                await page.click("#hold-form button[data-op=release]")
                await page.wait_for_selector("#hold-form button[data-op=hold]")
                await page.select_option("#request-form select[name=category]", "erasure")
                await page.fill("#request-form textarea[name=reason]", "subject request 2026-118: erase")
                await page.click("#request-form button[type=submit]")
                await page.wait_for_selector("#subject-detail tr[data-grant] .pill.requested")
                gid = await page.get_attribute("#subject-detail tr[data-grant]", "data-grant")
                assert await page.query_selector("#subject-detail button[data-op=approve]") is None
                await asyncio.to_thread(lab.review.approve, person("alma", "approver", "dashboard:alma"), gid)
                await page.click(f'#subject-table tr[data-rec="{mine.id}"] button')
                page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
                await page.click("#subject-detail button[data-op=erase]", timeout=5_000)
                await page.wait_for_selector("#subject-detail dd:has-text('deleted')", timeout=10_000)
            finally:
                await browser.close()
        for digits in ("701234567", "70-123", "123 45 67", "123%2045"):
            assert not [u for u in sent if digits in u], digits
        added = [e for e in lab.index.audit_entries() if e.action == "hold.added"]
        assert [e.details["reason"] for e in added] == ["subject request 2026-118"]
        actions = [(e.actor, e.action) for e in lab.index.audit_entries()]
        assert lab.index.get_recording(mine.id).status == RecordingStatus.DELETED
        for step in ("subject.searched", "subject.found", "hold.added", "hold.removed", "subject.erased"):
            assert ("dashboard:olga", step) in actions
    finally:
        lab.index.close()
        lab.users.close()


def record_a_call(lab: CallLab) -> str:
    """The node started; one call, caller 440 Hz and helpline 1000 Hz, consented by silence;
    the node left running (its dashboard serves the review). The recording's id."""
    lab.start_gateway()
    pbx = lab.peer("pbx", "--tone", "1000", "--timeout", "60")
    caller = lab.peer("caller", "--tone", "440", "--hangup-after", "10", "--timeout", "60")
    caller.wait_exit()
    pbx.wait_exit()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        gw = lab.gw.open()
        try:
            recs = gw.index.list_recordings()
        finally:
            gw.close()
        if recs and recs[0].status == RecordingStatus.COMPLETE:
            return recs[0].id
        time.sleep(0.2)
    raise AssertionError(f"no complete recording: {recs}")


@pytest.mark.asyncio
async def test_on_a_running_node_a_real_calls_recording_is_reviewed_in_the_page(
    tmp_path: Path, chromium: Any
) -> None:
    """The whole path on a real node: Kamailio, pjsua2 workers, a call between real SIP peers,
    the recording encrypted to the operator's key, the node's own dashboard; the reviewer holds
    that key in the page only. The auditor then sees the trail on the audit page."""
    require_tool("kamailio")
    lab = CallLab(tmp_path, workers=2)
    try:
        for name, role in (("rita", "reviewer"), ("alma", "approver"), ("aud", "auditor")):
            add_user(lab, name, role)
        rec_id = await asyncio.to_thread(record_a_call, lab)
        [identity] = age.load_identity_file(lab.gw.key)
        assert isinstance(identity, age.Identity)

        def trail(r: str) -> list[tuple[str, str]]:
            gw = lab.gw.open()
            try:
                return [(e.actor, e.action) for e in gw.index.audit_entries() if e.subject == r]
            finally:
                gw.close()

        url = f"http://127.0.0.1:{lab.dash_port}"
        await reviewer_plays(
            tmp_path, chromium, Site(url, rec_id, identity, trail), own_key=False, shots=False
        )

        # The auditor reads the same trail on the audit page, with both people's names.
        p, exe = chromium
        browser = await p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        try:
            aud = await browser.new_page()
            await login(aud, url, "aud")
            await aud.click("button[data-tab=audit]")
            await aud.wait_for_selector("#audit-table td:has-text('review.revoked')", timeout=10_000)
            shown = await aud.inner_text("#audit-table")
            for step in ("review.requested", "review.approved", "review.fetched", "review.fetch_refused"):
                assert step in shown, step
            assert "dashboard:alma" in shown and "dashboard:rita" in shown
        finally:
            await browser.close()
    finally:
        lab.close()
