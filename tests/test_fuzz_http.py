"""The dashboard's inputs fuzzed over real HTTP (issue 25, item 3): any JSON value or bytes as the
body of every POST endpoint, any text in their path segments, any query string on the GET
endpoints, any form on /login, each from a logged-in user of a random role with a valid CSRF
token. The server never answers 5xx; a refusal (4xx) says why in JSON and writes nothing: the
audit log, the accounts, the grants and the holds are as they were.

The application is the real one (review, holds, subject search and accounts on a SQLite index
and spool: tests/test_review_http.py's Lab), served by its own event loop in a thread so that
Hypothesis drives it synchronously."""

from __future__ import annotations

import asyncio
import json
import re
import string
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from aiohttp import ClientSession, CookieJar, web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.dashboard.app import build_app
from tests.test_review_http import PASSWORD, Lab

ROLES = {
    "ada": "admin",
    "rita": "reviewer",
    "alma": "approver",
    "sam": "supervisor",
    "olga": "officer",
    "aud": "auditor",
}
# Refusals the handlers make themselves: JSON with an "error". (404 and 405 may also come from
# the router, which answers in text.)
OWN_REFUSALS = {400, 401, 403, 409, 413, 415, 422, 429}


class Served:
    def __init__(self, tmp: Path) -> None:
        self.lab = Lab(tmp)
        self.lab.users.add("ada", "admin", PASSWORD)
        self.recording = self.lab.recording(caller="+46701234567")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner = web.AppRunner(build_app(self.lab.dash))
        self.run(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.run(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{self.port}"
        self.sessions: dict[str, tuple[ClientSession, str]] = {}
        for name in ROLES:
            self.sessions[name] = self.run(self._login(name))
        self.anonymous: ClientSession = self.run(self._session())

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    async def _session(self) -> ClientSession:
        return ClientSession(cookie_jar=CookieJar(unsafe=True))

    async def _login(self, name: str) -> tuple[ClientSession, str]:
        s = await self._session()
        page = await (await s.get(f"{self.base}/login")).text()
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        r = await s.post(
            f"{self.base}/login",
            data={"csrf": token, "name": name, "password": PASSWORD},
            allow_redirects=False,
        )
        assert r.status == 303, await r.text()
        home = await (await s.get(f"{self.base}/")).text()
        return s, re.search(r'<meta name="csrf" content="([^"]+)"', home).group(1)  # type: ignore[union-attr]

    def request(
        self, method: str, path: str, who: str | None, body: bytes | None = None, **kw: Any
    ) -> tuple[int, str, bytes]:
        async def go() -> tuple[int, str, bytes]:
            if who is None:
                s, headers = self.anonymous, {}
            else:
                s, csrf = self.sessions[who]
                headers = {"X-CSRF-Token": csrf}
            if body is not None:
                headers["Content-Type"] = "application/json"
            async with s.request(
                method, self.base + path, data=body, headers=headers, allow_redirects=False, **kw
            ) as r:
                return r.status, r.headers.get("Content-Type", ""), await r.read()

        return self.run(go())  # type: ignore[no-any-return]

    def written(self) -> tuple[Any, ...]:
        """What a refusal must leave as it was (read on the server's thread)."""

        async def read() -> tuple[Any, ...]:
            index = self.lab.index
            return (
                len(index.audit_entries()),
                sorted((u.name, u.role) for u in self.lab.users.list()),
                len(index.grants()),
                len(index.active_holds()),
            )

        return self.run(read())  # type: ignore[no-any-return]

    def close(self) -> None:
        async def shut() -> None:
            for s, _ in self.sessions.values():
                await s.close()
            await self.anonymous.close()
            await self.runner.cleanup()

        self.run(shut())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.lab.index.close()
        self.lab.users.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = Served(tmp_path_factory.mktemp("fuzz-http"))
    yield s
    s.close()


def check(served: Served, before: tuple[Any, ...], status: int, ctype: str, body: bytes) -> None:
    assert status < 500, (status, body[:300])
    if status in OWN_REFUSALS:
        assert ctype.startswith("application/json"), (status, ctype, body[:200])
        error = json.loads(body).get("error")
        assert isinstance(error, str) and error, body[:200]
    if 400 <= status < 500:
        assert served.written() == before, f"a refusal ({status}) wrote something: {body[:200]!r}"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=12,
)
# Objects with the keys the endpoints read, holding any values: deeper than random keys reach.
KEYS = [
    "name",
    "role",
    "password",
    "recording",
    "category",
    "reason",
    "label",
    "calls",
    "minutes",
    "download",
]
SHAPED = st.dictionaries(st.sampled_from(KEYS), JSON, max_size=6)
BODY = (
    SHAPED.map(lambda d: json.dumps(d).encode())
    | JSON.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=200)
)
SEGMENT = st.text(alphabet=string.printable + "é€\u0000", min_size=1, max_size=24).map(
    lambda t: quote(t, safe="")
)
ROLE = st.sampled_from(sorted(ROLES))
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(who=ROLE, body=BODY, name=SEGMENT, action=st.sampled_from(["unlock", "remove", "role", "x"]))
def test_accounts_endpoints_refuse_any_body_clearly(
    served: Served, who: str, body: bytes, name: str, action: str
) -> None:
    for path in ("/api/users", f"/api/users/{name}/{action}"):
        before = served.written()
        check(served, before, *served.request("POST", path, who, body))


@FUZZ
@given(
    who=ROLE,
    body=BODY,
    seg=SEGMENT,
    op=st.sampled_from(
        ["approve", "deny", "revoke", "download", "erase", "hold", "release", "pause", "stop"]
    ),
    known=st.booleans(),
)
def test_review_holds_calls_and_subject_endpoints_refuse_any_body_clearly(
    served: Served, who: str, body: bytes, seg: str, op: str, known: bool
) -> None:
    rec = served.recording.id if known else seg
    for path in (
        "/api/review/grants",
        f"/api/review/grants/{seg}/{op}",
        f"/api/recordings/{rec}/{'hold' if op == 'hold' else 'release'}",
        f"/api/calls/{seg}/{op}",
        "/api/subject/found",
    ):
        before = served.written()
        check(served, before, *served.request("POST", path, who, body))


QUERY = st.dictionaries(
    st.sampled_from(
        ["limit", "before", "after", "node", "language", "consent", "order", "status", "route", "q", "x"]
    ),
    st.text(max_size=30),
    max_size=5,
)


@FUZZ
@given(who=ROLE, query=QUERY, seg=SEGMENT)
def test_read_endpoints_take_any_query_string(
    served: Served, who: str, query: dict[str, str], seg: str
) -> None:
    q = "?" + urlencode(query)
    for path in (
        "/api/recordings",
        f"/api/recordings/{seg}",
        "/api/audit",
        "/api/review/grants",
        f"/api/review/grants/{seg}/key",
        "/api/subject/numbers",
        "/api/users",
    ):
        before = served.written()
        status, ctype, body = served.request("GET", path + q, who)
        assert status < 500, (path + q, status, body[:300])
        if status in OWN_REFUSALS:
            assert ctype.startswith("application/json") and json.loads(body).get("error"), (path, body[:200])
        if 400 <= status < 500:
            assert served.written() == before


@FUZZ
@given(
    form=st.dictionaries(
        st.sampled_from(["csrf", "name", "password", "next", "x"]), st.text(max_size=40), max_size=4
    ),
    raw=st.binary(max_size=120),
    use_raw=st.booleans(),
)
def test_the_login_form_takes_any_fields(
    served: Served, form: dict[str, str], raw: bytes, use_raw: bool
) -> None:
    async def go(path: str) -> int:
        s = served.anonymous
        data: Any = raw if use_raw else form
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if use_raw else {}
        async with s.post(f"{served.base}{path}", data=data, headers=headers, allow_redirects=False) as r:
            await r.read()
            return r.status

    status = served.run(go("/login"))
    assert status < 500 and status != 303, status  # never in without a valid name and password
    assert served.run(go("/logout")) < 500
