"""The JSON API: supervisor actions on a call's recording, the audit log and recordings'
metadata for auditors, user management for admins. Never audio."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from ..accounts.users import ROLES, UserError, in_scope
from ..app import auditlog
from .security import require
from .state import DASH


async def call_action(request: web.Request) -> web.Response:
    s = require(request, "control", csrf=True)
    dash = request.app[DASH]
    call, op = request.match_info["call"], request.match_info["op"]
    if op not in ("pause", "resume", "stop"):
        raise web.HTTPNotFound()
    row = dash.live.calls.get(call)
    # Another tenant's call answers exactly as one that does not exist.
    if row is None or not in_scope(dash.scope_of(s), row["tenant"]):
        return web.json_response({"error": "no such live call"}, status=404)
    error = await dash.command(op, call, s)
    if error is not None:
        return web.json_response({"error": error}, status=409)
    return web.json_response({"ok": True, "op": op, "call": call})


async def audit_log(request: web.Request) -> web.Response:
    s = require(request, "audit")
    dash = request.app[DASH]
    try:
        limit = max(1, min(1000, int(request.query.get("limit", "200"))))
    except ValueError:
        return web.json_response({"error": "limit must be a number"}, status=400)
    verdict, entries = await asyncio.to_thread(auditlog.view, dash.index, dash.scope_of(s), limit)
    return web.json_response(
        {
            "chain": {
                "ok": verdict.ok,
                "entries": verdict.entries,
                "head_seq": verdict.head_seq,
                "head_hash": verdict.head_hash,
                "problem": None
                if verdict.problem is None
                else {
                    "seq": verdict.problem.seq,
                    "kind": verdict.problem.kind,
                    "message": verdict.problem.message,
                },
            },
            "entries": [
                {
                    "seq": e.seq,
                    "ts": e.ts,
                    "actor": e.actor,
                    "action": e.action,
                    "subject": e.subject,
                    "details": e.details,
                    "hash": e.hash,
                }
                for e in entries
            ],
        }
    )


async def users_list(request: web.Request) -> web.Response:
    require(request, "users")
    now = time.time()
    return web.json_response(
        {
            "roles": list(ROLES),
            "users": [
                {
                    "name": u.name,
                    "role": u.role,
                    "locked": u.locked_until > now,
                    "failures": u.failures,
                    "last_login": u.last_login,
                }
                for u in request.app[DASH].users.list()
            ],
        }
    )


async def json_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > 16384:
        raise web.HTTPRequestEntityTooLarge(max_size=16384, actual_size=request.content_length)
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "the body must be JSON"}), content_type="application/json"
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "the body must be a JSON object"}), content_type="application/json"
        )
    return body


async def users_add(request: web.Request) -> web.Response:
    s = require(request, "users", csrf=True)
    dash = request.app[DASH]
    body = await json_body(request)
    name, role, password = (str(body.get(k, "")) for k in ("name", "role", "password"))
    try:
        await asyncio.to_thread(dash.accounts.add, s.actor, name, role, password)
    except UserError as e:
        return web.json_response({"error": str(e)}, status=400)
    return web.json_response({"ok": True, "name": name, "role": role})


async def users_action(request: web.Request) -> web.Response:
    s = require(request, "users", csrf=True)
    dash = request.app[DASH]
    name, action = request.match_info["name"], request.match_info["action"]
    body = await json_body(request) if request.can_read_body else {}
    try:
        if action == "unlock":
            dash.accounts.unlock(s.actor, name)
        elif action == "remove":
            if name == s.user:
                return web.json_response({"error": "you cannot remove yourself"}, status=400)
            dash.accounts.remove(s.actor, name)
        elif action == "role":
            if name == s.user:
                return web.json_response({"error": "you cannot change your own role"}, status=400)
            dash.accounts.set_role(s.actor, name, str(body.get("role", "")))
        else:
            raise web.HTTPNotFound()
    except UserError as e:
        return web.json_response({"error": str(e)}, status=400)
    return web.json_response({"ok": True})
