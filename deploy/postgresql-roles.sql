-- The database several gateway nodes share, with least privilege (SECURITY.md, "Nodes sharing
-- PostgreSQL"). Run once as a superuser, before the first node's `gateway init --index-url`:
--
--   runuser -u postgres -- psql -v db=consent_gateway -v gateway_role=consent_gateway \
--       -v reporting_role=gateway_reporting -f deploy/postgresql-roles.sql
--
-- then give the roles passwords (`\password consent_gateway` in psql) or map them in
-- pg_hba.conf. Once the first node has created its tables, postgresql-reporting.sql gives the
-- reporting role what it may read. tests/test_cluster.py runs both files as they are written.
\set ON_ERROR_STOP on

-- The gateway's own role owns its database and everything in it; nothing else is granted to it.
CREATE ROLE :"gateway_role" LOGIN;
-- A read-only role for reports (counts, durations, statuses): no personal data, see below.
CREATE ROLE :"reporting_role" LOGIN;
CREATE DATABASE :"db" OWNER :"gateway_role";
-- PostgreSQL grants CONNECT and TEMP on every new database to PUBLIC, and any role that may
-- connect may LISTEN and NOTIFY on any channel, without a table right. Only these two connect.
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"gateway_role", :"reporting_role";

\connect :"db"
-- The tables live in schema public, created by the gateway's role at its first start.
ALTER SCHEMA public OWNER TO :"gateway_role";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"reporting_role";
