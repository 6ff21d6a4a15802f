"""The index's schema, one for both backends: the tables in one text with the types that
differ between SQLite and PostgreSQL as placeholders (DIALECTS), what each backend adds of its
own, and the migrations that bring an older index up to date. The migration runner is
SqlIndex.migrate (index.py), the same for both."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

SCHEMA_VERSION = 10


@dataclass(frozen=True)
class Dialect:
    name: str
    types: dict[str, str]  # placeholder -> this backend's type
    extra: str  # tables and indexes only this backend has
    first_version: int  # the oldest schema this backend ever had (migrations start after it)

    def sql(self, text: str) -> str:
        for placeholder, sql_type in self.types.items():
            text = text.replace("{" + placeholder + "}", sql_type)
        return text


# Reviewers' requests for access to a recording, and the grants that answer them.
GRANTS_TABLE = """CREATE TABLE review_grants (
    id TEXT PRIMARY KEY, recording_id TEXT NOT NULL REFERENCES recordings(id), requester TEXT NOT NULL,
    category TEXT NOT NULL, reason TEXT NOT NULL, state TEXT NOT NULL, requested_at {FLOAT} NOT NULL,
    decided_by TEXT, decided_at {FLOAT}, expires_at {FLOAT}, closed_by TEXT, closed_at {FLOAT},
    allow_download INTEGER NOT NULL DEFAULT 0, self_granted INTEGER NOT NULL DEFAULT 0);
CREATE INDEX review_grants_state ON review_grants(state, expires_at);
CREATE INDEX review_grants_requester ON review_grants(requester, requested_at);
"""

# The current tables, for a new index. An older one is brought here by MIGRATIONS.
TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calls (
    id TEXT PRIMARY KEY, started_at TEXT NOT NULL, ended_at TEXT, route TEXT, caller_enc {BLOB},
    kind TEXT NOT NULL DEFAULT 'call', parties_enc {BLOB}, siprec TEXT, tenant TEXT);
CREATE TABLE IF NOT EXISTS recordings (
    id TEXT PRIMARY KEY, object_name TEXT NOT NULL UNIQUE, started_at TEXT NOT NULL,
    status TEXT NOT NULL, call_id TEXT REFERENCES calls(id), origin TEXT NOT NULL,
    media_type TEXT NOT NULL, sample_rate INTEGER, channels INTEGER, finished_at TEXT,
    duration_s {FLOAT}, bytes {BIGINT} NOT NULL DEFAULT 0, sha256 TEXT, route TEXT,
    retention_days INTEGER, error TEXT, source_enc {BLOB}, source_fingerprint TEXT, writer TEXT,
    signature TEXT, key_enc {BLOB}, node TEXT, language TEXT, consent TEXT, tenant TEXT);
CREATE INDEX IF NOT EXISTS recordings_fingerprint ON recordings(source_fingerprint);
CREATE INDEX IF NOT EXISTS recordings_call ON recordings(call_id);
CREATE INDEX IF NOT EXISTS recordings_started ON recordings(started_at, id);
CREATE TABLE IF NOT EXISTS holds (
    id {SERIAL_KEY}, recording_id TEXT NOT NULL REFERENCES recordings(id), reason TEXT NOT NULL,
    actor TEXT NOT NULL, created_at TEXT NOT NULL, released_at TEXT, released_by TEXT, release_reason TEXT);
CREATE INDEX IF NOT EXISTS holds_recording ON holds(recording_id);
CREATE TABLE IF NOT EXISTS consent_receipts (
    call_id TEXT PRIMARY KEY REFERENCES calls(id), receipt TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    seq {BIGINT} PRIMARY KEY, ts TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    subject TEXT NOT NULL, details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL,
    v INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq {BIGINT} PRIMARY KEY, ts TEXT NOT NULL, hash TEXT NOT NULL, signature TEXT, key TEXT);
CREATE TABLE IF NOT EXISTS signing_keys (
    fingerprint TEXT PRIMARY KEY, node TEXT NOT NULL, public_pem TEXT NOT NULL, added_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (name TEXT PRIMARY KEY, status TEXT NOT NULL, heartbeat {FLOAT} NOT NULL);
CREATE TABLE IF NOT EXISTS audit_archive (source TEXT NOT NULL, n INTEGER NOT NULL, line TEXT NOT NULL,
    PRIMARY KEY (source, n));
""" + GRANTS_TABLE.replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ").replace(
    "CREATE INDEX ", "CREATE INDEX IF NOT EXISTS "
)

# The dashboard's accounts, login attempts and sessions, shared by every node's dashboard when
# the index is PostgreSQL (accounts/users_pg.py and sessions_pg.py; on SQLite they live in
# secrets/users.sqlite3 instead). A session is found by the SHA-256 of its token: the database
# never holds a usable cookie.
DASHBOARD_TABLES = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    last_login DOUBLE PRECISION, generation INTEGER NOT NULL DEFAULT 0, scope TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS logins (
    name TEXT PRIMARY KEY, failures INTEGER NOT NULL DEFAULT 0,
    locked_until DOUBLE PRECISION NOT NULL DEFAULT 0, last_attempt DOUBLE PRECISION NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS dashboard_sessions (
    token_hash TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, csrf TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL, last_seen DOUBLE PRECISION NOT NULL, generation INTEGER NOT NULL,
    watched_until DOUBLE PRECISION NOT NULL DEFAULT 0);
"""

SQLITE = Dialect(
    "sqlite",
    {"BLOB": "BLOB", "FLOAT": "REAL", "BIGINT": "INTEGER", "SERIAL_KEY": "INTEGER PRIMARY KEY"},
    "",
    1,
)
POSTGRESQL = Dialect(
    "postgresql",
    {"BLOB": "BYTEA", "FLOAT": "DOUBLE PRECISION", "BIGINT": "BIGINT", "SERIAL_KEY": "BIGSERIAL PRIMARY KEY"},
    "CREATE INDEX IF NOT EXISTS recordings_status ON recordings(status);\n" + DASHBOARD_TABLES.lstrip("\n"),
    2,  # PostgreSQL support starts at schema 2
)

_ADD_LIST_COLUMNS = """
ALTER TABLE recordings ADD COLUMN node TEXT;
ALTER TABLE recordings ADD COLUMN language TEXT;
ALTER TABLE recordings ADD COLUMN consent TEXT;
"""


def _fill_list_columns(get: Callable[[str], str], language_is_text: str) -> str:
    """Fill the list columns of recordings made before schema 9 from their calls' receipts:
    `get(path)` is a receipt's value at a dotted path as text, in this backend's SQL."""
    by = get("siprec.decided_by")
    return f"""
UPDATE recordings SET
    language = CASE WHEN {language_is_text} THEN {get("language.code")} END,
    consent = CASE
        WHEN {get("state")} = 'withdrawn' THEN 'withdrawn'
        WHEN {get("decision")} = 'declined' THEN 'declined'
        WHEN COALESCE({get("decision")}, '') <> 'granted' THEN NULL
        WHEN {by} IN ('client-header', 'client-metadata', 'key', 'window') THEN {by}
        WHEN COALESCE({by}, '') <> '' THEN NULL
        WHEN {get("reason")} = 'accept key' THEN 'key'
        ELSE 'silence'
    END
FROM consent_receipts c WHERE c.call_id = recordings.call_id;
"""


_ADD_TENANT_COLUMNS = (
    "ALTER TABLE calls ADD COLUMN tenant TEXT;\nALTER TABLE recordings ADD COLUMN tenant TEXT;\n"
)

# Version N's migration brings an index from N-1 to N; each runs in one transaction. A script
# is written for both backends (with the placeholders above) unless it names its backend.
MIGRATIONS: dict[int, tuple[str, dict[str, str]]] = {
    2: (
        "caller numbers and legacy paths lose their keyed lookup hashes (a stolen index could be "
        "brute-forced with the key beside it); legacy imports are matched by file fingerprint",
        {
            "sqlite": """
CREATE TABLE calls_v2 (
    id TEXT PRIMARY KEY, started_at TEXT NOT NULL, ended_at TEXT, route TEXT, caller_enc BLOB);
INSERT INTO calls_v2 SELECT id, started_at, ended_at, route, caller_enc FROM calls;
DROP TABLE calls;
ALTER TABLE calls_v2 RENAME TO calls;
CREATE TABLE recordings_v2 (
    id TEXT PRIMARY KEY, object_name TEXT NOT NULL UNIQUE, started_at TEXT NOT NULL,
    status TEXT NOT NULL, call_id TEXT REFERENCES calls(id), origin TEXT NOT NULL,
    media_type TEXT NOT NULL, sample_rate INTEGER, channels INTEGER, finished_at TEXT,
    duration_s REAL, bytes INTEGER NOT NULL DEFAULT 0, sha256 TEXT, route TEXT,
    retention_days INTEGER, error TEXT, source_enc BLOB, source_fingerprint TEXT, writer TEXT, signature TEXT);
INSERT INTO recordings_v2 SELECT id, object_name, started_at, status, call_id, origin, media_type, sample_rate,
    channels, finished_at, duration_s, bytes, sha256, route, retention_days, error, source_enc, NULL, writer,
    signature FROM recordings;
DROP TABLE recordings;
ALTER TABLE recordings_v2 RENAME TO recordings;
CREATE INDEX recordings_fingerprint ON recordings(source_fingerprint);
CREATE INDEX recordings_call ON recordings(call_id);
ALTER TABLE audit ADD COLUMN v INTEGER NOT NULL DEFAULT 1;
CREATE TABLE audit_checkpoints (
    seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, hash TEXT NOT NULL, signature TEXT);
"""
        },
    ),
    3: (
        "a recording may have a key of its own, kept wrapped to the operators (crypto-shredding)",
        {"": "ALTER TABLE recordings ADD COLUMN key_enc {BLOB};"},
    ),
    4: (
        "nodes sharing a PostgreSQL index publish their status (supervisor/cluster.py), and their "
        "dashboards share accounts and sessions",
        {
            "": "CREATE TABLE nodes (name TEXT PRIMARY KEY, status TEXT NOT NULL, heartbeat {FLOAT} NOT NULL);",
            "postgresql": "CREATE TABLE nodes (name TEXT PRIMARY KEY, status TEXT NOT NULL, "
            "heartbeat DOUBLE PRECISION NOT NULL);" + DASHBOARD_TABLES,
        },
    ),
    5: (
        "the audit chains of nodes migrated into this index are kept whole (storage/migrate.py)",
        {
            "": "CREATE TABLE audit_archive (source TEXT NOT NULL, n INTEGER NOT NULL, line TEXT NOT NULL, "
            "PRIMARY KEY (source, n));"
        },
    ),
    6: (
        "recording sessions forked by a SIPREC client are calls of their own kind, with their "
        "participants sealed and the client's identifiers (sip/siprec.py)",
        {
            "": "ALTER TABLE calls ADD COLUMN kind TEXT NOT NULL DEFAULT 'call';\n"
            "ALTER TABLE calls ADD COLUMN parties_enc {BLOB};\n"
            "ALTER TABLE calls ADD COLUMN siprec TEXT;"
        },
    ),
    7: (
        "every node's signing key is published in the index and every checkpoint names its signer, so "
        "that one node verifies what another signed (governance/signers.py)",
        {
            "": "CREATE TABLE signing_keys (fingerprint TEXT PRIMARY KEY, node TEXT NOT NULL, "
            "public_pem TEXT NOT NULL, added_at TEXT NOT NULL);\n"
            "ALTER TABLE audit_checkpoints ADD COLUMN key TEXT;"
        },
    ),
    8: (
        "reviewers ask for access to one recording at a time and approvers grant it for a while "
        "(governance/grants.py, app/review.py); the recordings list pages by start time",
        {"": GRANTS_TABLE + "CREATE INDEX recordings_started ON recordings(started_at, id);\n"},
    ),
    9: (
        "the recordings list filters on the recording's node, the notice's language and the consent "
        "outcome (consent/receipt.py outcome and language, whose rules the fill-in below repeats for "
        "recordings made before; their node is not known)",
        {
            "sqlite": _ADD_LIST_COLUMNS
            + _fill_list_columns(
                lambda path: f"json_extract(c.receipt, '$.{path}')",
                "json_type(c.receipt, '$.language.code') = 'text'",
            ),
            "postgresql": _ADD_LIST_COLUMNS
            + _fill_list_columns(
                lambda path: "(c.receipt::jsonb #>> '{" + path.replace(".", ",") + "}')",
                "jsonb_typeof(c.receipt::jsonb #> '{language,code}') = 'string'",
            ),
        },
    ),
    10: (
        "calls and recordings name their tenant, the data controller whose keys they are sealed to "
        "(config/tenants.py); those made before have none (the implicit tenant); dashboard users "
        "have a scope of tenants",
        {
            "sqlite": _ADD_TENANT_COLUMNS,
            # The shared index also holds the dashboard's accounts: a user's scope, the tenants
            # whose calls they see ("": all).
            "postgresql": _ADD_TENANT_COLUMNS
            + "ALTER TABLE users ADD COLUMN scope TEXT NOT NULL DEFAULT '';",
        },
    ),
}


def schema(dialect: Dialect) -> str:
    """The whole current schema for a new index of this backend."""
    return dialect.sql(TABLES) + dialect.extra


def migration(target: int, dialect: Dialect) -> tuple[str, str]:
    """(why, script) of the migration to schema `target` on this backend."""
    why, scripts = MIGRATIONS[target]
    script = scripts.get(dialect.name, scripts.get(""))
    if script is None:
        raise KeyError(f"no migration to schema {target} for {dialect.name}")
    return why, dialect.sql(script)
