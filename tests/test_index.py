"""The index's contract, against both backends: SQLite (the embedded default) and PostgreSQL
(a real throwaway cluster: what several nodes share). One audit chain, whoever appends."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.storage import audit
from gateway.storage import index as ix
from gateway.storage.index import IndexAccessError, SqliteIndex
from gateway.storage.index_pg import PgIndex, redact
from gateway.storage.rows import CallRow, RecordingRow, RecordingStatus

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgresql"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ix.Index]:
    if request.param == "sqlite":
        idx: ix.Index = SqliteIndex(tmp_path / "index.sqlite3", create=True)
    else:
        idx = PgIndex(request.getfixturevalue("pg_url"))
    yield idx
    idx.close()


def test_calls_recordings_receipts_and_holds(index: ix.Index) -> None:
    index.add_call(CallRow("c1", "2026-01-01T00:00:00.000Z", route="1177", caller_enc=b"\x00sealed"))
    assert index.get_call("c1").caller_enc == b"\x00sealed"
    index.end_call("c1", "2026-01-01T00:01:00.000Z")
    rec = RecordingRow(
        id="r1",
        object_name="ab" * 16 + ".age",
        started_at="2026-01-01T00:00:01.000Z",
        call_id="c1",
        source_enc=b"\x01path",
    )
    index.add_recording(rec)
    index.checkpoint_recording("r1", 65552, "f" * 64)
    assert (index.get_recording("r1").bytes, index.get_recording("r1").sha256) == (65552, "f" * 64)
    index.update_recording("r1", status=RecordingStatus.COMPLETE, bytes=70000, duration_s=2.5)
    index.checkpoint_recording("r1", 1, "0" * 64)  # a finished recording takes no more checkpoints
    got = index.get_recording("r1")
    assert (got.status, got.bytes, got.duration_s, got.source_enc) == (
        RecordingStatus.COMPLETE,
        70000,
        2.5,
        b"\x01path",
    )
    assert [r.id for r in index.recordings_of_call("c1")] == ["r1"]
    assert [r.id for r in index.list_recordings(RecordingStatus.COMPLETE)] == ["r1"]
    with pytest.raises(ix.NotFound):
        index.update_recording("nope", status=RecordingStatus.DELETED)
    with pytest.raises(ValueError):
        index.update_recording("r1", status="lost")
    index.put_consent_receipt("c1", {"decision": "granted"})
    index.put_consent_receipt("c1", {"decision": "granted", "ended_at": "x"})  # replaced, not duplicated
    assert index.get_consent_receipt("c1")["ended_at"] == "x"
    hold = index.add_hold("r1", "complaint", "dpo")
    assert hold > 0 and [h["reason"] for h in index.active_holds("r1")] == ["complaint"]
    assert index.release_holds("r1", "closed", "dpo") == 1 and index.active_holds() == []
    assert index.encrypted_callers() == [("c1", b"\x00sealed")]
    index.scrub_caller("c1")
    assert index.encrypted_callers() == [] and index.calls_by_ids(["c1"])[0].caller_enc is None


def test_encrypted_callers_page_through_every_call(index: ix.Index) -> None:
    for i in range(25):
        index.add_call(CallRow(f"c{i:03d}", "2026-01-01T00:00:00.000Z", caller_enc=bytes([i])))
    seen, after = [], ""
    while batch := index.encrypted_callers(after, 10):
        seen += batch
        after = batch[-1][0]
    assert [c for c, _ in seen] == [f"c{i:03d}" for i in range(25)]


def test_the_audit_chain_and_its_checkpoints(index: ix.Index) -> None:
    for i in range(5):
        index.append_audit("t", "test.entry", str(i), {"i": i})
    assert audit.verify(index.audit_entries()).ok
    seq, head = index.audit_head()
    assert seq == 5
    cp = audit.make_checkpoint(seq, head, "now", None)
    index.add_checkpoint(cp)
    index.add_checkpoint(cp)
    assert index.checkpoints() == [cp]


def test_a_newer_schema_is_refused(pg_url: str) -> None:
    PgIndex(pg_url).close()
    conn = PgIndex(pg_url)
    conn._q("UPDATE meta SET value='99' WHERE key='schema'")
    conn.close()
    with pytest.raises(IndexAccessError, match="has schema 99, newer than this gateway's"):
        PgIndex(pg_url)


def test_an_unreachable_database_is_one_clear_error_without_the_password(tmp_path: Path) -> None:
    url = f"postgresql://gw:secret-pw@/nowhere?host={tmp_path}&connect_timeout=1"
    with pytest.raises(IndexAccessError) as e:
        PgIndex(url)
    assert "cannot use the index at" in str(e.value) and "secret-pw" not in str(e.value)
    assert redact("postgresql://gw:pw@db.example:5432/gw") == "postgresql://gw:***@db.example:5432/gw"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://gw@/gw?host=/run/postgresql&password=secret-pw",
        "postgresql://gw@db/gw?password=secret-pw&connect_timeout=1",
        "postgresql://gw@db/gw?pass%77ord=secret-pw",
        "postgres://gw:secret-pw@db/gw?sslpassword=secret-pw",
        "postgresql://gw@db/gw?sslmode=require&sslpassword=secret-pw",
    ],
)
def test_every_form_of_password_the_validator_accepts_is_redacted(tmp_path: Path, url: str, caplog) -> None:
    assert "secret-pw" not in redact(url)
    assert redact(url).startswith(url.split("?")[0].replace(":secret-pw", ":***"))
    # The "index unreachable" line a worker logs when it starts during an outage.
    unreachable = url.replace("@db/", "@/").replace("host=/run/postgresql", f"host={tmp_path}")
    if "host=" not in unreachable:
        unreachable += f"&host={tmp_path}" if "?" in unreachable else f"?host={tmp_path}"
    with caplog.at_level("ERROR"):
        PgIndex(unreachable + "&connect_timeout=1", lazy=True)
    assert "unreachable at start" in caplog.text and "secret-pw" not in caplog.text


APPENDER = """
import sys
from gateway.storage.index_pg import PgIndex
index = PgIndex(sys.argv[1])
for i in range(int(sys.argv[3])):
    index.append_audit(sys.argv[2], "test.concurrent", str(i), {"node": sys.argv[2]})
index.close()
"""


def test_two_nodes_appending_at_once_make_one_chain(pg_url: str) -> None:
    """Appends from two processes at once serialise into one hash chain: no forks, no gaps."""
    PgIndex(pg_url).close()  # the schema, before the race
    procs = [
        subprocess.Popen([sys.executable, "-c", APPENDER, pg_url, f"node-{n}", "150"], cwd=ROOT) for n in "ab"
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    index = PgIndex(pg_url)
    entries = index.audit_entries()
    index.close()
    assert len(entries) == 300 and [e.seq for e in entries] == list(range(1, 301))
    assert audit.verify(entries).ok
    actors = [e.actor for e in entries]
    assert actors.count("node-a") == actors.count("node-b") == 150
    # They really interleaved: neither node's entries form one block.
    assert any(actors[i] != actors[i + 1] for i in range(10, 290))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_both_backends_migrate_with_one_runner_and_audit_each_step(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """An index one schema behind (without the tenant columns of schema 10) is brought up to
    date at open, on SQLite and on PostgreSQL alike, and the step is in the audit log on both
    (schema.py); rows made before have no tenant (the implicit one)."""
    from gateway.storage import schema
    from gateway.storage.index import SqliteIndex
    from gateway.storage.rows import RecordingQuery

    def open_index() -> Any:
        if backend == "sqlite":
            return SqliteIndex(tmp_path / "index.sqlite3", create=True)
        return PgIndex(request.getfixturevalue("pg_url"))

    idx = open_index()
    idx.add_call(CallRow("c1", "2025-01-01T00:00:00Z"))
    idx.add_recording(RecordingRow(id="r1", object_name="e" * 32 + ".age", started_at="2025-01-01T00:00:00Z"))
    idx._q("ALTER TABLE recordings DROP COLUMN tenant")
    idx._q("ALTER TABLE calls DROP COLUMN tenant")
    if backend == "postgresql":  # the dashboard's accounts live in the shared index
        idx._q("ALTER TABLE users DROP COLUMN scope")
    idx._q("UPDATE meta SET value=? WHERE key='schema'", (str(schema.SCHEMA_VERSION - 1),))
    idx.close()
    idx = open_index()
    try:
        assert idx.schema_version() == schema.SCHEMA_VERSION
        assert idx.get_recording("r1").tenant is None and idx.get_call("c1").tenant is None
        assert idx.page_recordings(RecordingQuery(consent="key", node="a", language="sv")) == []
        migrated = [(e.action, e.subject) for e in idx.audit_entries() if e.action == "index.migrated"]
        assert migrated == [("index.migrated", str(schema.SCHEMA_VERSION))]
        assert idx.verify_audit().ok
    finally:
        idx.close()
    idx = open_index()  # up to date: nothing more happens
    try:
        assert [
            (e.action, e.subject) for e in idx.audit_entries() if e.action == "index.migrated"
        ] == migrated
    finally:
        idx.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_grants_move_once_and_recordings_page_by_keyset_on_both_backends(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Review grants round-trip with their enums and flags; a move stored over a state that has
    changed meanwhile (two approvers at once, a fetch and the sweep) does not happen; the
    recordings list pages newest first without gaps or repeats, filtered by hold."""
    import dataclasses

    from gateway.storage.rows import GrantCategory, GrantRow, GrantState, RecordingQuery

    idx: Any = (
        SqliteIndex(tmp_path / "index.sqlite3", create=True)
        if backend == "sqlite"
        else PgIndex(request.getfixturevalue("pg_url"))
    )
    try:
        for i in range(9):
            idx.add_recording(
                RecordingRow(
                    id=f"r{i}", object_name=f"{i:032x}.age", started_at=f"2026-01-0{1 + i // 3}T00:00:00Z"
                )
            )
        idx.add_hold("r4", "legal", "dpo")
        pages, after = [], None
        for _ in range(5):
            page = idx.page_recordings(RecordingQuery(limit=4, after=after))
            pages.append([r.id for r in page])
            if len(page) < 4:
                break
            after = (page[-1].started_at, page[-1].id)
        assert sum(pages, []) == ["r8", "r7", "r6", "r5", "r4", "r3", "r2", "r1", "r0"]
        # Oldest first: the same index read the other way, paged the same.
        pages, after = [], None
        for _ in range(5):
            page = idx.page_recordings(RecordingQuery(limit=4, after=after, oldest_first=True))
            pages.append([r.id for r in page])
            if len(page) < 4:
                break
            after = (page[-1].started_at, page[-1].id)
        assert sum(pages, []) == [f"r{i}" for i in range(9)]
        assert [r.id for r in idx.page_recordings(RecordingQuery(held=True))] == ["r4"]
        assert len(idx.page_recordings(RecordingQuery(held=False, since="2026-01-02"))) == 5

        g = GrantRow("g1", "r4", "rita", GrantCategory.LEGAL, "court order", GrantState.REQUESTED, 10.0)
        idx.add_grant(g)
        assert idx.get_grant("g1") == g
        approved = dataclasses.replace(
            g,
            state=GrantState.APPROVED,
            decided_by="alma",
            decided_at=11.0,
            expires_at=20.0,
            self_granted=True,
        )
        denied = dataclasses.replace(g, state=GrantState.DENIED, decided_by="ann", decided_at=11.0)
        assert idx.replace_grant(approved, GrantState.REQUESTED)
        assert not idx.replace_grant(denied, GrantState.REQUESTED)  # the other approver came second
        assert idx.get_grant("g1") == approved
        assert [x.id for x in idx.grants(due_by=19.9)] == [] and [x.id for x in idx.grants(due_by=20.0)] == [
            "g1"
        ]
        assert [x.id for x in idx.grants(requester="rita", states=(GrantState.APPROVED,))] == ["g1"]
        assert idx.grants(requester="rob") == [] and idx.grants(recording_id="r0") == []
        # A user scoped to tenants: only the requests for their tenants' recordings.
        idx.add_recording(
            RecordingRow(
                id="rn", object_name="n" * 32 + ".age", started_at="2026-01-04T00:00:00Z", tenant="north"
            )
        )
        idx.add_grant(dataclasses.replace(g, id="g2", recording_id="rn"))
        assert [x.id for x in idx.grants(tenants=frozenset({"north"}))] == ["g2"]
        assert idx.grants(tenants=frozenset({"south"})) == [] and idx.grants(tenants=frozenset()) == []
        assert sorted(x.id for x in idx.grants()) == ["g1", "g2"]
        # Each audit entry about a tenant's recording or call carries the tenant; one about
        # several tenants' records, or none, carries none.
        idx.add_call(CallRow("cn", "2026-01-04T00:00:00Z", tenant="north"))
        assert idx.append_audit("t", "x", "rn").tenant == "north"
        assert idx.append_audit("t", "x", "-", {"call": "cn"}).tenant == "north"
        assert idx.append_audit("t", "x", "label", {"recordings": ["r0", "rn"]}).tenant == "north"
        assert idx.append_audit("t", "x", "r0").tenant is None
        assert idx.append_audit("t", "x", "rn", {"tenant": "south"}).tenant == "south"  # said outright
        idx.add_recording(
            RecordingRow(
                id="rs", object_name="s" * 32 + ".age", started_at="2026-01-04T00:00:00Z", tenant="south"
            )
        )
        assert idx.append_audit("t", "x", "label", {"recordings": ["rs", "rn"]}).tenant is None
        with pytest.raises(ix.NotFound):
            idx.get_grant("nope")
    finally:
        idx.close()


# Receipts as the gateway writes them, cut to what the list's outcome and language depend on,
# with the outcome consent/receipt.py gives each.
RECEIPTS: list[tuple[dict[str, Any], str | None, str | None]] = [
    (
        {
            "state": "decided",
            "decision": "granted",
            "reason": "no decline key before the deadline",
            "language": {"code": "sv", "chosen_by": "route"},
        },
        "silence",
        "sv",
    ),
    (
        {
            "state": "decided",
            "decision": "granted",
            "reason": "accept key",
            "language": {"code": "en", "chosen_by": "menu"},
        },
        "key",
        "en",
    ),
    (
        {
            "state": "withdrawn",
            "decision": "granted",
            "reason": "no decline key before the deadline",
            "language": {"code": "sv", "chosen_by": "route"},
        },
        "withdrawn",
        "sv",
    ),
    (
        {"state": "decided", "decision": "declined", "reason": "decline key", "language": None},
        "declined",
        None,
    ),
    (
        {
            "state": "decided",
            "decision": "granted",
            "reason": "signalled by the recording client (header)",
            "language": None,
            "siprec": {"decided_by": "client-header"},
        },
        "client-header",
        None,
    ),
    (
        {
            "state": "decided",
            "decision": "granted",
            "reason": "no decline key before the deadline",
            "language": None,
            "siprec": {"decided_by": "window"},
        },
        "window",
        None,
    ),
    (
        {
            "state": "abandoned",
            "decision": None,
            "reason": "caller hung up before deciding",
            "language": {"code": 5},
        },
        None,
        None,
    ),
]


def test_the_lists_consent_outcome_and_language_come_from_the_receipt() -> None:
    from gateway.consent import receipt as rc

    for receipt, outcome, language in RECEIPTS:
        assert rc.outcome(receipt) == outcome, receipt
        assert rc.language(receipt) == language, receipt
    assert rc.outcome({"decision": "granted", "siprec": {"decided_by": "telepathy"}}) is None


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_schema_9_fills_the_list_columns_of_older_recordings_as_the_receipt_rules_say(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """An index of schema 8 (made here by dropping the columns 9 added) is migrated on opening:
    each older recording gets the outcome and language consent/receipt.py would give its call's
    receipt; one without a receipt (a legacy import) gets none. Then the list filters on them."""
    from gateway.storage.rows import RecordingQuery

    def open_index() -> Any:
        if backend == "sqlite":
            return SqliteIndex(tmp_path / "index.sqlite3", create=True)
        return PgIndex(url)

    url = request.getfixturevalue("pg_url") if backend == "postgresql" else ""
    idx = open_index()
    try:
        for i, (receipt, _, _) in enumerate(RECEIPTS):
            idx.add_call(CallRow(id=f"c{i}", started_at=f"2026-01-01T00:00:0{i}Z"))
            idx.put_consent_receipt(f"c{i}", receipt)
            idx.add_recording(
                RecordingRow(
                    id=f"r{i}",
                    object_name=f"{i:032x}.age",
                    started_at=f"2026-01-01T00:00:0{i}Z",
                    call_id=f"c{i}",
                )
            )
        idx.add_recording(
            RecordingRow(
                id="legacy", object_name="f" * 32 + ".age", started_at="2025-01-01T00:00:00Z", origin="legacy"
            )
        )
        for column in ("node", "language", "consent", "tenant"):
            idx._q(f"ALTER TABLE recordings DROP COLUMN {column}")
        idx._q("ALTER TABLE calls DROP COLUMN tenant")
        if backend == "postgresql":
            idx._q("ALTER TABLE users DROP COLUMN scope")
        idx._q("UPDATE meta SET value='8' WHERE key='schema'")
    finally:
        idx.close()
    idx = open_index()
    try:
        assert idx.schema_version() == ix.schema.SCHEMA_VERSION
        for i, (_, outcome, language) in enumerate(RECEIPTS):
            rec = idx.get_recording(f"r{i}")
            assert (rec.consent, rec.language, rec.node) == (outcome, language, None), (i, rec)
        legacy = idx.get_recording("legacy")
        assert (legacy.consent, legacy.language) == (None, None)
        assert [r.id for r in idx.page_recordings(RecordingQuery(consent="key"))] == ["r1"]
        assert [r.id for r in idx.page_recordings(RecordingQuery(language="sv"))] == ["r2", "r0"]
        idx.add_recording(
            RecordingRow(
                id="b",
                object_name="b" * 32 + ".age",
                started_at="2026-02-01T00:00:00Z",
                node="b",
                language="sv",
                consent="silence",
            )
        )
        assert [r.id for r in idx.page_recordings(RecordingQuery(node="b"))] == ["b"]
        assert [r.id for r in idx.page_recordings(RecordingQuery(language="sv", consent="silence"))] == [
            "b",
            "r0",
        ]
    finally:
        idx.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_recordings_list_and_numbers_of_a_scoped_user_hold_their_tenants_alone(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from gateway.storage.rows import RecordingQuery

    idx = (
        SqliteIndex(tmp_path / "index.sqlite3", create=True)
        if backend == "sqlite"
        else PgIndex(request.getfixturevalue("pg_url"))
    )
    try:
        for i, tenant in enumerate(["north", "south", "east", None]):
            idx.add_recording(
                RecordingRow(id=f"r{i}", object_name=f"{i:032x}.age", started_at=f"2026-01-0{i + 1}T00:00:00Z",
                             tenant=tenant)
            )  # fmt: skip
        ids = lambda q: [r.id for r in idx.page_recordings(q)]  # noqa: E731
        assert ids(RecordingQuery(tenants=frozenset({"north", "east"}))) == ["r2", "r0"]
        assert ids(RecordingQuery(tenants=frozenset())) == []
        assert ids(RecordingQuery()) == ["r3", "r2", "r1", "r0"]
        # An officer scoped to tenants searches their calls' sealed numbers alone.
        for i, tenant in enumerate(["north", "south", None]):
            idx.add_call(CallRow(f"c{i}", "2026-01-01T00:00:00Z", caller_enc=b"sealed", tenant=tenant))
        assert [c for c, _ in idx.encrypted_callers(tenants=frozenset({"north"}))] == ["c0"]
        assert idx.encrypted_callers(tenants=frozenset()) == []
        assert [c for c, _ in idx.encrypted_callers()] == ["c0", "c1", "c2"]
    finally:
        idx.close()


def test_a_sqlite_index_held_by_another_writer_is_unavailable_after_its_wait(tmp_path: Path) -> None:
    """What a running gateway's journal takes over from: a write that cannot get the database
    within the index's wait is IndexUnavailable (not sqlite's own error), reads go on (WAL), and
    the index takes writes again once the other writer is done."""
    import sqlite3

    path = tmp_path / "index.sqlite3"
    SqliteIndex(path, create=True).close()
    index = SqliteIndex(path, lock_wait_s=0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(ix.IndexUnavailable, match="locked by another writer"):
            index.add_call(CallRow("c1", "2026-01-01T00:00:00.000Z", route="1177"))
        with pytest.raises(ix.IndexUnavailable, match="locked by another writer"):
            index.append_audit("test", "x.y", "c1")
        with pytest.raises(ix.IndexUnavailable):
            index.probe_writable()
        assert index.audit_head()[0] == 0, "reads go on"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    index.probe_writable()
    index.add_call(CallRow("c1", "2026-01-01T00:00:00.000Z", route="1177"))
    assert index.get_call("c1").route == "1177"
    index.close()
