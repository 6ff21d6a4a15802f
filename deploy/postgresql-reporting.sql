-- What the read-only reporting role may read in the gateway's shared database, column by column:
-- when, how long, which route, in which state. Run as a superuser once the first node has
-- created its tables (and again after an upgrade adds columns worth reporting):
--
--   runuser -u postgres -- psql -d consent_gateway -v reporting_role=gateway_reporting \
--       -f deploy/postgresql-reporting.sql
--
-- Left out on purpose: the callers' numbers and SIPREC participants (age-encrypted anyway), the
-- consent receipts (the caller's keys and their times), holds (their reasons), the audit log
-- (staff names and what they did), dashboard accounts and sessions, signatures and keys.
\set ON_ERROR_STOP on
GRANT SELECT (id, started_at, ended_at, route, kind) ON calls TO :"reporting_role";
GRANT SELECT (id, call_id, started_at, finished_at, status, origin, media_type, sample_rate, channels,
              duration_s, bytes, route, retention_days) ON recordings TO :"reporting_role";
GRANT SELECT (name, heartbeat) ON nodes TO :"reporting_role";
