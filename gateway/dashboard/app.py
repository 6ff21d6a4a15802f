"""The operators' dashboard: an aiohttp application served by the node's supervisor.

Routes (everything else is 404; nothing is ever served from the data directories, and no
directory listing exists):

    GET  /                        the live view (login required)          pages.py
    GET  /login, POST /login      the login form (double-submit CSRF token)
    POST /logout
    GET  /ws                      live view over WebSocket (same-origin)  livesocket.py
    POST /api/calls/{call}/{op}   pause | resume | stop a call's recording (supervisor)   api.py
    GET  /api/audit               audit log tail and chain verdict (auditor)
    GET  /api/recordings[/{id}]   recordings' metadata and receipts, never audio     review.py
    /api/review/grants...         access requests, decisions, ciphertext under a grant
    /api/subject/...              a data-subject search decrypted in the officer's page   subjects.py
    GET  /api/users, POST /api/users, POST /api/users/{name}/{action}   (admin)
    GET  /static/app.js, /static/review.js, /static/app.css, /static/favicon.svg
    GET  /static/bundle/review-worker.js   the review page's decryption worker (built by setup)

Every request passes security.py (Host check, headers, CSRF, roles); sessions.py keeps the
logins; state.py holds what the handlers share. This module is the face: `build_app`, `serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from . import api, pages, review, subjects
from .livesocket import websocket
from .security import check_host, index_unavailable, security_headers
from .state import DASH, Dashboard

STATIC = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {
    "app.js": "application/javascript",
    "review.js": "application/javascript",
    "app.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
# The reviewer's decryption worker: age-encryption bundled by scripts/setup.sh, never committed.
WORKER = STATIC / "bundle" / "review-worker.js"
STATIC_FILES = web.AppKey("static_files", dict)

__all__ = ["DASH", "Dashboard", "build_app", "serve"]


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    ctype = STATIC_TYPES.get(name)
    if ctype is None:  # only the named files: no traversal, no listing
        raise web.HTTPNotFound()
    body = request.app[STATIC_FILES][name]
    return web.Response(body=body, content_type=ctype, headers={"Cache-Control": "no-store"})


async def review_worker(request: web.Request) -> web.Response:
    try:
        body = await asyncio.to_thread(WORKER.read_bytes)
    except FileNotFoundError:
        return web.Response(
            status=503,
            text="// the review page's decryption worker is not built: run scripts/setup.sh\n",
            content_type="application/javascript",
        )
    return web.Response(body=body, content_type="application/javascript")


def build_app(dash: Dashboard) -> web.Application:
    """The application factory: one Dashboard, its routes and its background ticker."""
    app = web.Application(client_max_size=64 * 1024, middlewares=[check_host, index_unavailable])
    app[DASH] = dash
    app[STATIC_FILES] = {name: (STATIC / name).read_bytes() for name in STATIC_TYPES}
    app.on_response_prepare.append(security_headers)

    async def ticker(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(app[DASH].tick())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def close_websockets(app: web.Application) -> None:
        # On shutdown, before the runner waits for handlers: a live view never ends by itself.
        for c in list(app[DASH].clients):
            app[DASH].clients.discard(c)
            await c.ws.close(code=1001, message=b"server stopping")

    app.cleanup_ctx.append(ticker)
    app.on_shutdown.append(close_websockets)
    r = app.router
    r.add_get("/", pages.index_page)
    r.add_get("/login", pages.login_page)
    r.add_post("/login", pages.login)
    r.add_post("/logout", pages.logout)
    r.add_get("/ws", websocket)
    r.add_post("/api/calls/{call}/{op}", api.call_action)
    r.add_get("/api/audit", api.audit_log)
    review.add_routes(app)
    subjects.add_routes(app)
    r.add_get("/api/users", api.users_list)
    r.add_post("/api/users", api.users_add)
    r.add_post("/api/users/{name}/{action}", api.users_action)
    r.add_get("/static/bundle/review-worker.js", review_worker)
    r.add_get("/static/{name}", static)
    return app


async def serve(dash: Dashboard) -> tuple[web.AppRunner, str]:
    """Listen on [dashboard] listen, with TLS when a certificate is configured; returns the
    runner (to clean up) and the URL to print."""
    ssl_ctx = None
    if dash.config.tls is not None:
        import ssl

        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ssl_ctx.load_cert_chain(str(dash.config.tls[0]), str(dash.config.tls[1]))
    runner = web.AppRunner(build_app(dash), access_log=None)
    await runner.setup()
    host, port = dash.config.listen
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_ctx).start()
    except OSError:
        await runner.cleanup()
        raise
    url_host = f"[{host}]" if ":" in host else host
    return runner, f"{'https' if ssl_ctx else 'http'}://{url_host}:{port}/"
