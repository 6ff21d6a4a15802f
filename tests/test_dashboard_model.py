"""Pure parts of the dashboard: the live view built from events, and the user store."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.accounts.users import UserError, UserStore
from gateway.dashboard import live as lv

NOON = 1_795_000_000.0


def ev(kind: str, call: str = "a1", **fields) -> dict:
    return {"type": kind, "call": call, "ts": NOON, "worker": "h:1", **fields}


def test_a_call_moves_through_its_states_and_leaves_after_lingering() -> None:
    view = lv.LiveView()
    row = view.observe(
        ev(
            "call.started",
            state="notice",
            caller_masked="****567",
            caller_display="Anna",
            route="1177",
            mode="opt-out",
            language="sv",
        ),
        0,
        NOON,
    )
    assert row["state"] == "notice" and row["consent"] == "pending" and row["recording"] == "none"
    assert row["language"] == "sv"
    row = view.observe(ev("call.state", state="notice", language="fi"), 0, NOON)  # chosen in the menu
    assert row["language"] == "fi"
    view.observe(ev("call.state", state="deciding", consent="pending", recording="none"), 0, NOON)
    view.observe(ev("call.consent", consent="granted"), 0, NOON)
    view.observe(ev("call.state", state="bridged", consent="granted", recording="none"), 0, NOON)
    view.observe(ev("call.recording", recording="recording", recording_id="r"), 0, NOON)
    view.observe(ev("call.progress", bytes_sealed=65_600, duration_s=4.1), 0, NOON)
    row = view.observe(ev("call.recording", recording="stopped", by="dashboard:sam"), 0, NOON)
    assert (row["recording"], row["by"], row["bytes_sealed"]) == ("stopped", "dashboard:sam", 65_600)
    row = view.observe(ev("call.recording", recording="saved", bytes_sealed=70_000), 0, NOON)
    assert row["by"] == "dashboard:sam" and row["bytes_sealed"] == 70_000
    row = view.observe(
        ev("call.state", state="ended", consent="granted", recording="stopped", reason="caller hung up"),
        0,
        NOON + 1,
    )
    assert row["state"] == "ended" and row["ended"] == NOON and row["reason"] == "caller hung up"
    assert view.summary(NOON)["live_calls"] == 0
    assert view.expire(NOON + lv.LINGER_S - 1) == [] and view.expire(NOON + lv.LINGER_S + 1) == ["a1"]
    assert view.today.granted == 1 and view.today.opt_out_rate == 0.0


def test_opt_out_rate_counts_declines_and_withdrawals_and_rolls_at_midnight() -> None:
    view = lv.LiveView()
    for i, consent in enumerate(["granted", "declined", "granted", "granted"]):
        view.observe(ev("call.started", call=f"c{i}"), 0, NOON)
        view.observe(ev("call.consent", call=f"c{i}", consent=consent), 0, NOON)
    view.observe(ev("call.consent", call="c0", consent="withdrawn"), 0, NOON)
    assert view.summary(NOON)["today"]["opt_out_rate"] == pytest.approx(0.5)
    assert view.summary(NOON + 86_400)["today"]["opt_out_rate"] is None


def test_a_lost_worker_ends_its_calls_only() -> None:
    view = lv.LiveView()
    view.observe(ev("call.started", call="a"), 0, NOON)
    view.observe(ev("call.recording", call="a", recording="recording"), 0, NOON)
    view.observe(ev("call.started", call="b"), 1, NOON)
    changed = view.link_lost(0, NOON + 5)
    assert [r["call"] for r in changed] == ["a"]
    assert view.calls["a"]["recording"] == "incomplete" and view.calls["b"]["state"] == "notice"


def test_events_for_unknown_calls_and_unknown_values_are_ignored() -> None:
    view = lv.LiveView()
    assert view.observe(ev("call.state", state="bridged"), 0) is None
    assert view.observe({"type": "worker.started", "capacity": 2}, 0) is None
    view.observe(ev("call.started"), 0)
    row = view.observe(ev("call.state", state="<script>", consent="maybe", recording=7), 0)
    assert (row["state"], row["consent"], row["recording"]) == ("notice", "pending", "none")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "call",
                    "state",
                    "consent",
                    "recording",
                    "ts",
                    "caller_display",
                    "bytes_sealed",
                    "duration_s",
                    "snapshot",
                ]
            ),
            st.one_of(
                st.text(max_size=100),
                st.integers(),
                st.floats(allow_nan=False),
                st.none(),
                st.booleans(),
                st.sampled_from(["call.started", "call.state", "a", "ended", "granted"]),
            ),
        ),
        max_size=30,
    )
)
def test_any_event_sequence_keeps_rows_within_their_vocabulary(events: list[dict]) -> None:
    view = lv.LiveView()
    for e in events:
        try:
            view.observe(e, 0, NOON)
        except (TypeError, ValueError):
            pytest.fail(f"observe raised on {e!r}")
    for row in view.calls.values():
        assert (
            row["state"] in lv.STATES and row["consent"] in lv.CONSENTS and row["recording"] in lv.RECORDINGS
        )
        assert len(row["caller_display"]) <= lv.MAX_DISPLAY and all(
            c.isprintable() for c in row["caller_display"]
        )


def test_user_store_hashes_with_argon2id_and_locks_after_failures(tmp_path: Path) -> None:
    users = UserStore(tmp_path / "users.sqlite3", lockout_after=2, lockout_s=60)
    users.add("sam", "supervisor", "long enough password")
    files = sorted(tmp_path.glob("users.sqlite3*"))  # the database and its WAL
    raw = b"".join(f.read_bytes() for f in files)
    assert b"long enough password" not in raw and b"$argon2id$" in raw
    assert {oct(f.stat().st_mode & 0o777) for f in files} == {"0o600"}
    with pytest.raises(UserError, match="exists"):
        users.add("sam", "viewer", "long enough password")
    with pytest.raises(UserError, match="role"):
        users.add("x", "root", "long enough password")
    with pytest.raises(UserError, match="names"):
        users.add("Robert'); DROP", "viewer", "long enough password")
    assert users.authenticate("sam", "long enough password", now=100).user.role == "supervisor"
    assert users.authenticate("sam", "wrong", now=101).locked_for_s == 0
    second = users.authenticate("sam", "wrong", now=102)
    assert second.just_locked and second.locked_for_s == 60
    assert users.authenticate("sam", "long enough password", now=103).user is None
    assert users.authenticate("sam", "long enough password", now=163).user is not None  # the lock ran out
    assert users.authenticate("nobody", "long enough password").user is None


def test_user_names_are_whole_matches(tmp_path: Path) -> None:
    users = UserStore(tmp_path / "users.sqlite3")
    with pytest.raises(UserError, match="names"):
        users.add("sam\n", "viewer", "long enough password")


class CountingHasher:
    """argon2's verify, slowed down and counted: the window in which parallel guesses race."""

    def __init__(self, real, delay: float) -> None:
        self.real, self.delay, self.calls = real, delay, 0
        self._lock = threading.Lock()

    def verify(self, stored: str, password: str) -> bool:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        return self.real.verify(stored, password)

    def __getattr__(self, name: str):
        return getattr(self.real, name)


def test_parallel_guesses_get_no_more_checks_than_the_lockout_allows(tmp_path: Path, monkeypatch) -> None:
    from gateway.accounts import users as users_mod

    store = UserStore(tmp_path / "users.sqlite3", lockout_after=5, lockout_s=600)
    store.add("sam", "supervisor", "the right password")
    hasher = CountingHasher(users_mod._hasher, 0.3)
    monkeypatch.setattr(users_mod, "_hasher", hasher)
    results: list = []
    wrong = [
        threading.Thread(target=lambda: results.append(store.authenticate("sam", "wrong guess")))
        for _ in range(31)
    ]
    for t in wrong:
        t.start()
    time.sleep(0.1)
    right = store.authenticate("sam", "the right password")
    for t in wrong:
        t.join()
    assert hasher.calls == 5, "only lockout_after passwords are ever checked, however many arrive at once"
    assert right.user is None and right.locked_for_s > 0, "the right password after 31 guesses finds the lock"
    assert store.get("sam").locked_until > time.time()
    assert sum(r.just_locked for r in results) >= 1


def test_known_and_unknown_names_take_the_same_database_path(tmp_path: Path) -> None:
    """A failed login writes the same statements whether the name exists or not: no timing
    difference from an fsynced write on one path only."""
    store = UserStore(tmp_path / "users.sqlite3", lockout_after=5)
    store.add("sam", "supervisor", "the right password")
    seen: list[str] = []
    store._db.set_trace_callback(seen.append)

    def statements(name: str) -> list[str]:
        seen.clear()
        assert store.authenticate(name, "a wrong password", now=1000.0).user is None
        return [s.replace(f"'{name}'", "NAME") for s in seen]

    assert statements("sam") == statements("nobody")
    assert any(s.startswith("INSERT INTO logins") for s in statements("sam"))
    # Both lock the same way, so the lockout does not tell which names exist either.
    for _ in range(5):
        store.authenticate("nobody", "x")
        store.authenticate("sam", "x")
    assert (
        store.authenticate("nobody", "x").locked_for_s > 0 and store.authenticate("sam", "x").locked_for_s > 0
    )
    store.unlock("nobody")
    assert store.authenticate("nobody", "x").locked_for_s == 0


def test_an_old_user_database_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "users.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL,
        created_at REAL NOT NULL, failures INTEGER NOT NULL DEFAULT 0, locked_until REAL NOT NULL DEFAULT 0,
        last_login REAL);""")
    from gateway.accounts.users import _hasher

    db.execute(
        "INSERT INTO users VALUES ('sam', 'admin', ?, 1.0, 7, ?, NULL)",
        (_hasher.hash("long enough pw"), time.time() + 600),
    )
    db.commit()
    db.close()
    store = UserStore(path)
    assert store.get("sam").failures == 7 and store.get("sam").locked_until > time.time()
    store.unlock("sam")
    assert store.authenticate("sam", "long enough pw").user.role == "admin"
    assert store.get("sam").tenants is None, "a user from before scopes sees every tenant"
    store.close()


def test_a_version_1_user_database_gains_scopes_and_keeps_its_users(tmp_path: Path) -> None:
    import sqlite3

    from gateway.accounts.users import MIGRATION_1, UserError

    path = tmp_path / "users.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        """CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL,
        created_at REAL NOT NULL, failures INTEGER NOT NULL DEFAULT 0, locked_until REAL NOT NULL DEFAULT 0,
        last_login REAL);"""
        + MIGRATION_1
        + "PRAGMA user_version=1;"
    )
    db.execute("INSERT INTO users (name, role, hash, created_at) VALUES ('ann', 'viewer', 'x', 1.0)")
    db.commit()
    db.close()
    store = UserStore(path)
    assert store.get("ann").scope == "" and store.get("ann").tenants is None
    generation = store.get("ann").generation
    store.set_scope("ann", "south,north,north")
    assert store.get("ann").scope == "north,south" and store.get("ann").tenants == {"north", "south"}
    assert store.get("ann").generation == generation + 1, "a new scope ends the user's sessions"
    store.add("bob", "supervisor", "long enough pw", "north")
    assert store.get("bob").tenants == {"north"}
    for bad in ("North", "a,,b", "x y"):
        with pytest.raises(UserError):
            store.set_scope("ann", bad)
    store.close()


def test_a_siprec_session_shows_as_one_with_its_consent() -> None:
    view = lv.LiveView()
    view.observe(
        {"type": "call.started", "call": "s1", "worker": "w", "ts": 1.0, "call_kind": "siprec",
         "route": "116117", "state": "deciding"},
        1,
    )  # fmt: skip
    row = view.observe(
        {"type": "call.consent", "call": "s1", "worker": "w", "ts": 4.0, "consent": "granted"}, 1
    )
    assert row is not None and row["kind"] == "siprec" and row["consent"] == "granted"
    row = view.observe({"type": "call.state", "call": "s1", "worker": "w", "ts": 4.1, "state": "forked"}, 1)
    assert row is not None and row["state"] == "forked"
    plain = view.observe({"type": "call.started", "call": "c1", "worker": "w", "ts": 1.0}, 1)
    assert plain is not None and plain["kind"] == "call"
