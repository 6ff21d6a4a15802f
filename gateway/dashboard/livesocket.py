"""The live view over WebSocket: a snapshot on connect, then every changed row, fanned out
by the Dashboard's broadcast (a client too far behind is dropped and reconnects)."""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import WSMsgType, web

from .security import forbidden, same_origin
from .state import DASH, Client


async def websocket(request: web.Request) -> web.StreamResponse:
    dash = request.app[DASH]
    s = dash.session_of(request, touch=False, view_only=True)  # watching is not activity
    if s is None:
        raise web.HTTPUnauthorized(text="log in first")
    if request.headers.get("Origin") is None or not same_origin(request):
        raise forbidden("cross-origin WebSocket refused")
    user = dash.users.get(s.user)
    if user is None or not user.can("live"):  # reviewers and approvers handle recordings, not calls
        raise forbidden(f"the {s.role} role does not see live calls")
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=4096)
    await ws.prepare(request)
    client = Client(ws, s, user.tenants)  # a user scoped to tenants sees their calls alone
    client.queue.append(json.dumps(dash.snapshot(client.scope), separators=(",", ":")))
    client.wake.set()
    dash.clients.add(client)

    async def pump() -> None:
        while not ws.closed:
            await client.wake.wait()
            client.wake.clear()
            while client.queue and not ws.closed:
                await ws.send_str(client.queue.popleft())

    sender = asyncio.create_task(pump())
    try:
        async for msg in ws:  # the browser sends nothing but pings; anything else is ignored
            if msg.type == WSMsgType.ERROR:
                break
    finally:
        dash.clients.discard(client)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sender
    return ws
