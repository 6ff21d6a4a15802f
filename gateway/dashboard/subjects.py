"""A data-subject search in the officer's browser, over app/subject.py's BrowserSearch: the
page gets the sealed caller numbers of a period a page at a time, decrypts and compares them in
its decryption worker with the officer's identity, and tells the server only which calls
matched. The number searched for never reaches the server.

    GET  /api/subject/numbers?since&until&after&label    sealed numbers, a page     (officer)
    POST /api/subject/found  {label, calls}              the matches' recordings    (officer)
"""

from __future__ import annotations

import asyncio
import base64
import re

from aiohttp import web

from ..app.subject import BrowserSearch
from .api import json_body
from .review import TIME, call_app, http_error, recording_json
from .security import require
from .state import DASH

LABEL = re.compile(r"^request:[0-9a-f]{16}$")
CALL_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


def _search(request: web.Request) -> BrowserSearch:
    search = request.app[DASH].subjects
    if search is None:
        raise http_error(404, "subject search is not available on this dashboard")
    return search


async def numbers(request: web.Request) -> web.Response:
    s = require(request, "subject")
    search = _search(request)
    q = request.query
    since, until = q.get("since") or None, q.get("until") or None
    for v in (since, until):
        if v is not None and not TIME.fullmatch(v):
            raise http_error(400, "since and until are dates (YYYY-MM-DD)")
    after, label = q.get("after", ""), q.get("label", "")
    if after and not CALL_ID.fullmatch(after):
        raise http_error(400, "bad after")
    if label and not LABEL.fullmatch(label):
        raise http_error(400, "bad label")
    scope = request.app[DASH].scope_of(s)  # an officer scoped to tenants: their calls' numbers only
    if not label:  # a new search: audited before the first number leaves
        label = await asyncio.to_thread(search.start, s.actor, since, until, scope)
    rows, last = await asyncio.to_thread(search.page, after, since, until, scope)
    n = search.numbering
    return web.json_response(
        {
            "label": label,
            "numbering": {
                "country_code": n.country_code,
                "national_prefix": n.national_prefix,
                "international_prefix": n.international_prefix,
            },
            "numbers": [[call, base64.b64encode(sealed).decode()] for call, sealed in rows],
            "next": last if len(rows) >= search.PAGE else None,
        }
    )


async def found(request: web.Request) -> web.Response:
    s = require(request, "subject", csrf=True)
    search = _search(request)
    body = await json_body(request)
    label, calls = str(body.get("label", "")), body.get("calls", [])
    if not LABEL.fullmatch(label) or not isinstance(calls, list):
        raise http_error(400, "send {label, calls: [call ids]}")
    ids = [str(c) for c in calls if isinstance(c, str) and CALL_ID.fullmatch(c)]
    scope = request.app[DASH].scope_of(s)
    rows, recs = await call_app(lambda: search.found(s.actor, label, ids, scope))
    held = {h["recording_id"] for h in await asyncio.to_thread(request.app[DASH].index.active_holds)}
    return web.json_response(
        {
            "calls": [{"id": c.id, "started_at": c.started_at, "route": c.route} for c in rows],
            "recordings": [recording_json(r, r.id in held) for r in recs],
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/subject/numbers", numbers)
    app.router.add_post("/api/subject/found", found)
