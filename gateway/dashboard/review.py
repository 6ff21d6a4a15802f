"""Review over HTTP: the recordings' metadata and receipts, access requests and their decisions,
and the ciphertext of a granted recording (with HTTP ranges), each through app/review.py, which
applies the rules and audits. Never audio in clear: the page decrypts with the reviewer's own
identity, which no request carries.

    GET  /api/recordings?since&until&route&status&origin&held&after&limit   (recordings)
    GET  /api/recordings/{id}                  metadata, consent receipt, holds, grants
    GET  /api/review/grants                    the requests one may see (all, for approvers)
    POST /api/review/grants                    {recording, category, reason}        (reviewer)
    POST /api/review/grants/{id}/approve|deny|revoke   {note}            (approver; revoke: also the reviewer)
    GET  /api/review/grants/{id}/ciphertext    the age file, Range: bytes=a-b       (the grant's reviewer)
    GET  /api/review/grants/{id}/key           a recording's own key, wrapped       (the grant's reviewer)
    POST /api/review/grants/{id}/download      the page asks before saving a decrypted WAV
    POST /api/review/grants/{id}/erase         carry out an approved erasure grant          (officer)
    POST /api/recordings/{id}/hold|release     {reason}: a legal hold, placed or released   (officer)
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from aiohttp import web

from ..accounts.sessions import Session
from ..app.review import Fetch, RangeError, Review, person
from ..config.values import LANGUAGE
from ..consent.receipt import Outcome
from ..errors import GatewayError, NotFoundError
from ..governance import grants
from ..governance.grants import GrantRefused, Person
from ..storage.index import NotFound
from ..storage.rows import GrantRow, RecordingQuery, RecordingRow, RecordingStatus
from ..storage.store import ObjectNotFound, StoreError
from .api import json_body
from .security import require
from .state import DASH, Dashboard

log = logging.getLogger(__name__)
T = TypeVar("T")
BLOCK = 1 << 16
RECHECK_EVERY = 16  # blocks (1 MiB) between checks that the grant still holds mid-stream
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}(T[0-9:.]+Z?)?$")


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


_STATUS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    416: web.HTTPRequestRangeNotSatisfiable,
    503: web.HTTPServiceUnavailable,
}


def http_error(
    status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> web.HTTPException:
    return _STATUS[status](
        text=json.dumps({"error": message, **extra}), content_type="application/json", headers=headers
    )


async def call_app(call: Callable[[], T]) -> T:
    """An application-layer call, in a thread; its refusals become the HTTP answers they mean
    (the application has audited them already)."""
    try:
        return await asyncio.to_thread(call)
    except NotFoundError as e:
        raise http_error(404, str(e)) from None
    except GrantRefused as e:
        raise http_error(403, str(e), refusal=str(e.refusal)) from None
    except RangeError as e:
        raise http_error(416, str(e), headers={"Content-Range": f"bytes */{e.size}"}) from None
    except ObjectNotFound:
        raise http_error(404, "the recording's object is missing from the store") from None
    except StoreError as e:
        raise http_error(503, f"the store is unreachable: {e}") from None
    except GatewayError as e:  # a bad reason for a hold, an erasure of no call...
        raise http_error(400, str(e)) from None


def _review(request: web.Request) -> Review:
    review = request.app[DASH].review
    if review is None:
        raise http_error(404, "review is not available on this dashboard")
    return review


def _person(request: web.Request, permission: str | None, csrf: bool = False) -> Person:
    """The logged-in user as the review rules see them, with their scope."""
    return _as_person(request, require(request, permission, csrf=csrf))


def _as_person(request: web.Request, s: Session) -> Person:
    return person(s.user, s.role, s.actor, request.app[DASH].scope_of(s))


def grant_json(g: GrantRow, now: float) -> dict[str, Any]:
    return {
        "id": g.id,
        "recording": g.recording_id,
        "requester": g.requester,
        "category": str(g.category),
        "reason": g.reason,
        "state": str(grants.effective_state(g, now)),
        "requested_at": g.requested_at,
        "decided_by": g.decided_by,
        "decided_at": g.decided_at,
        "expires_at": g.expires_at,
        "closed_by": g.closed_by,
        "closed_at": g.closed_at,
        "allow_download": g.allow_download,
        "self_granted": g.self_granted,
    }


def recording_json(r: RecordingRow, held: bool) -> dict[str, Any]:
    return {
        "id": r.id,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "status": r.status,
        "duration_s": r.duration_s,
        "bytes": r.bytes,
        "route": r.route,
        "origin": r.origin,
        "media_type": r.media_type,
        "sample_rate": r.sample_rate,
        "channels": r.channels,
        "retention_days": r.retention_days,
        "signed": bool(r.signature),
        "own_key": r.key_enc is not None,
        "held": held,
        "tenant": r.tenant,
        "node": r.node,
        "language": r.language,
        "consent": r.consent,
    }


# -- recordings' metadata ------------------------------------------------------------------


def _query(request: web.Request) -> RecordingQuery:
    q = request.query

    def text(name: str, pattern: re.Pattern[str] | None = None) -> str | None:
        value = q.get(name) or None
        if value is not None and (len(value) > 64 or (pattern is not None and not pattern.fullmatch(value))):
            raise http_error(400, f"bad {name}")
        return value

    status = text("status")
    if status is not None and status not in {s.value for s in RecordingStatus}:
        raise http_error(400, "unknown status")
    consent = text("consent")
    if consent is not None and consent not in {o.value for o in Outcome}:
        raise http_error(400, "unknown consent outcome")
    held = {"": None, "yes": True, "no": False}.get(q.get("held", ""), None)
    if q.get("order", "newest") not in ("newest", "oldest"):
        raise http_error(400, "order is newest or oldest")
    after = None
    if q.get("after"):
        started, _, rec_id = q["after"].partition("|")
        if not TIME.fullmatch(started) or not rec_id or len(rec_id) > 64:
            raise http_error(400, "bad after")
        after = (started, rec_id)
    try:
        limit = max(1, min(200, int(q.get("limit", "50"))))
    except ValueError:
        raise http_error(400, "limit must be a number") from None
    return RecordingQuery(
        since=text("since", TIME),
        until=text("until", TIME),
        route=text("route"),
        status=status,
        origin=text("origin"),
        held=held,
        node=text("node"),
        language=text("language", LANGUAGE),
        consent=consent,
        after=after,
        oldest_first=q.get("order", "newest") == "oldest",
        limit=limit,
    )


async def recordings(request: web.Request) -> web.Response:
    s = require(request, "recordings")
    dash = request.app[DASH]
    query = replace(_query(request), tenants=dash.scope_of(s))
    rows = await asyncio.to_thread(dash.index.page_recordings, query)
    held = {h["recording_id"] for h in await asyncio.to_thread(dash.index.active_holds)} if rows else set()
    last = rows[-1] if len(rows) == query.limit else None
    return web.json_response(
        {
            "recordings": [recording_json(r, r.id in held) for r in rows],
            "next": None if last is None else f"{last.started_at}|{last.id}",
        }
    )


async def recording_detail(request: web.Request) -> web.Response:
    who = _person(request, "recordings")
    dash = request.app[DASH]
    rec_id = request.match_info["id"]

    def load() -> dict[str, Any]:
        try:
            r: RecordingRow | None = dash.index.get_recording(rec_id)
        except NotFound:
            r = None
        if r is None or not who.sees(r.tenant):  # another tenant's: as if none
            raise NotFoundError(f"no recording {rec_id}")
        holds = dash.index.active_holds(r.id)
        receipt = None
        if r.call_id is not None:
            try:
                receipt = dash.index.get_consent_receipt(r.call_id)
            except NotFound:
                receipt = None
        mine = dash.review.visible_grants(who, recording_id=r.id, limit=20) if dash.review else []
        return {
            "recording": recording_json(r, bool(holds)),
            "receipt": receipt,
            "holds": [{k: h[k] for k in ("reason", "actor", "created_at")} for h in holds],
            "grants": [grant_json(g, time.time()) for g in mine],
        }

    return web.json_response(await call_app(load))


# -- requests and decisions ------------------------------------------------------------------


def policy_json(dash: Dashboard) -> dict[str, Any]:
    p = dash.review.policy if dash.review else grants.Policy()
    return {"four_eyes": p.four_eyes, "grant_s": p.grant_s, "allow_download": p.allow_download}


async def grants_list(request: web.Request) -> web.Response:
    s = require(request)
    who = _as_person(request, s)
    if not (who.may(grants.REVIEW) or who.may(grants.APPROVE) or who.may(grants.AUDIT)):
        return _error(403, f"the {s.role} role may not see access requests")
    review = _review(request)
    rows = await asyncio.to_thread(review.visible_grants, who)
    now = time.time()
    return web.json_response(
        {"grants": [grant_json(g, now) for g in rows], "policy": policy_json(request.app[DASH])}
    )


async def _act(run: Callable[[], GrantRow]) -> web.Response:
    g = await call_app(run)
    return web.json_response({"ok": True, "grant": grant_json(g, time.time())})


async def grant_request(request: web.Request) -> web.Response:
    who = _person(request, "review", csrf=True)
    review = _review(request)
    body = await json_body(request)
    rec, category, reason = (str(body.get(k, "")) for k in ("recording", "category", "reason"))
    response = await _act(lambda: review.request(who, rec, category, reason))
    response.set_status(201)
    return response


async def grant_decide(request: web.Request) -> web.Response:
    who = _person(request, None, csrf=True)
    review = _review(request)
    grant_id, op = request.match_info["id"], request.match_info["op"]
    body = await json_body(request) if request.can_read_body else {}
    note = str(body.get("note", ""))
    if op == "approve":
        return await _act(lambda: review.approve(who, grant_id))
    if op == "deny":
        return await _act(lambda: review.deny(who, grant_id, note))
    if op == "revoke":
        return await _act(lambda: review.revoke(who, grant_id, note))
    if op == "download":
        await call_app(lambda: review.download(who, grant_id))
        return web.json_response({"ok": True})
    if op == "erase":  # under an approved erasure grant: app/subject.py BrowserSearch.erase
        subjects = request.app[DASH].subjects
        if subjects is None:
            raise http_error(404, "erasure is not available on this dashboard")
        report = await call_app(lambda: subjects.erase(who, grant_id))
        return web.json_response(
            {"ok": True, "deleted": report.deleted, "held": report.held, "failed": sorted(report.failed)}
        )
    raise web.HTTPNotFound()


# -- ciphertext under a grant ----------------------------------------------------------------


def _rate_limited(dash: Dashboard, user: str) -> bool:
    """At most [review] fetches_per_minute fetches per reviewer in any minute."""
    limit = dash.fetches_per_minute
    now = time.monotonic()
    times = dash.fetch_times.setdefault(user, deque())
    while times and times[0] <= now - 60:
        times.popleft()
    if len(times) >= limit:
        return True
    times.append(now)
    return False


def _range(header: str | None) -> tuple[int, int | None] | None:
    """(start, end or None) of a single-range `Range` header; None: the whole object."""
    if header is None:
        return None
    m = RANGE.fullmatch(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        raise http_error(416, "one range of bytes, bytes=START-END")
    if not m.group(1):  # the last N bytes
        return -int(m.group(2)), None
    return int(m.group(1)), (int(m.group(2)) if m.group(2) else None)


async def ciphertext(request: web.Request) -> web.StreamResponse:
    # Any login: the grant rules decide, so that an approver's or auditor's attempt to use a
    # grant is refused and audited like any other.
    who = _person(request, None)
    review = _review(request)
    dash = request.app[DASH]
    grant_id = request.match_info["id"]
    if _rate_limited(dash, who.name):
        return _error(429, "too many fetches: wait a minute", retry_after=60)
    wanted = _range(request.headers.get("Range"))

    def open_() -> Fetch:
        if wanted is not None and wanted[0] < 0:  # a suffix: the last N bytes of the object
            return review.fetch(who, grant_id, suffix=-wanted[0])
        return review.fetch(who, grant_id, *(wanted or (0, None)))

    f = await call_app(open_)
    response = web.StreamResponse(status=206 if wanted is not None else 200)
    response.content_type = "application/octet-stream"
    response.content_length = f.end - f.start + 1
    response.headers["Accept-Ranges"] = "bytes"
    if wanted is not None:
        response.headers["Content-Range"] = f"bytes {f.start}-{f.end}/{f.size}"
    try:
        await response.prepare(request)
        left = f.end - f.start + 1
        blocks = 0
        while left > 0:
            block = await asyncio.to_thread(f.stream.read, min(BLOCK, left))
            if not block:
                break
            await response.write(block)
            left -= len(block)
            blocks += 1
            if blocks % RECHECK_EVERY == 0 and not await asyncio.to_thread(
                review.still_covers, who, grant_id
            ):
                break  # revoked or expired: the response ends short, the browser sees an error
    except ConnectionError:
        # The page stopped reading (a seek, a new speed, the player closed): not an error.
        log.debug("review: %s stopped reading grant %s's ciphertext", who.name, grant_id)
    finally:
        f.stream.close()
    return response


async def wrapped_key(request: web.Request) -> web.Response:
    who = _person(request, None)
    review = _review(request)
    if _rate_limited(request.app[DASH], who.name):
        return _error(429, "too many fetches: wait a minute", retry_after=60)
    grant_id = request.match_info["id"]
    key = await call_app(lambda: review.wrapped_key(who, grant_id))
    return web.Response(body=key, content_type="application/octet-stream")


# -- legal holds ------------------------------------------------------------------------------


async def hold(request: web.Request) -> web.Response:
    s = require(request, "holds", csrf=True)
    scope = request.app[DASH].scope_of(s)
    holds = request.app[DASH].holds
    if holds is None:
        return _error(404, "holds are not available on this dashboard")
    rec_id, op = request.match_info["id"], request.match_info["op"]
    reason = str((await json_body(request)).get("reason", ""))
    if op == "hold":
        added = await call_app(lambda: holds.place(rec_id, reason, s.actor, scope))
        return web.json_response({"ok": True, "added": added})
    if op == "release":
        released = await call_app(lambda: holds.release(rec_id, reason, s.actor, scope))
        return web.json_response({"ok": True, "released": released})
    raise web.HTTPNotFound()


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/recordings", recordings)
    r.add_get("/api/recordings/{id}", recording_detail)
    r.add_post("/api/recordings/{id}/{op:hold|release}", hold)
    r.add_get("/api/review/grants", grants_list)
    r.add_post("/api/review/grants", grant_request)
    r.add_post("/api/review/grants/{id}/{op}", grant_decide)
    r.add_get("/api/review/grants/{id}/ciphertext", ciphertext)
    r.add_get("/api/review/grants/{id}/key", wrapped_key)
