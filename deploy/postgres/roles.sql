-- Least-privilege PostgreSQL roles for dynzero. Run as a superuser (or a
-- role with CREATEROLE that is a member of the owner role), connected to the
-- hub's database:
--
--   psql -v ON_ERROR_STOP=1 -d dynzero -f deploy/postgres/roles.sql
--   psql -v ON_ERROR_STOP=1 -d dynzero -v prefix=dynzero -f deploy/postgres/roles.sql
--
-- It makes three roles, `<prefix>_owner`, `<prefix>_hub` and `<prefix>_api`
-- (prefix `dynzero` unless given with -v prefix=…), LOGIN without a
-- password (set one with ALTER ROLE … PASSWORD, or use your server's own
-- authentication):
--
--   <prefix>_owner  owns every table: `database.migration_url`. Only it
--                   runs DDL (the migrations of `dynzero migrate` and of
--                   `dynzero run` at start).
--   <prefix>_hub    the runtime role of the consumer, relay, sweeper,
--                   notifier and retention: `database.url`. SELECT, INSERT,
--                   UPDATE, DELETE on the tables and USAGE on the sequences,
--                   nothing else: no CREATE, ALTER, DROP or TRUNCATE.
--   <prefix>_api    the read side: `api.database_url`. SELECT, plus the
--                   writes the API makes: its tokens (`api_token`, revoked
--                   by setting `revoked_at`), its audit (`api_audit`) and a
--                   replay's mark (`rejection.replayed_at`). It cannot read
--                   the notifier's subscriptions (their targets and secrets).
--
-- Tables made by later migrations get the hub's and the API's grants by
-- default privileges. The API's few writes are on particular tables, so
-- run this file again after `dynzero migrate` (it is idempotent; a table
-- that does not exist yet is skipped): roles.sql, migrate, roles.sql.
--
-- The hub's role has DML on every table, the API's included: the API's
-- triggers (the alert stream, the spell statistics) run as the role that
-- inserts the hub's rows.
--
-- A database whose tables were made by another role (an earlier deployment
-- migrating as `postgres`) has them handed to the owner role here.

\if :{?prefix}
\else
\set prefix dynzero
\endif
SELECT :'prefix' || '_owner' AS owner, :'prefix' || '_hub' AS hub, :'prefix' || '_api' AS api \gset

-- The roles, once (a concurrent run that created one first is fine).
SELECT format('CREATE ROLE %I LOGIN', r)
FROM unnest(ARRAY[:'owner', :'hub', :'api']) AS r
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec

-- Nobody but the owner creates in the schema (PostgreSQL before 15 lets
-- every role create in `public`).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"DBNAME" TO :"owner", :"hub", :"api";
GRANT USAGE, CREATE ON SCHEMA public TO :"owner";
GRANT USAGE ON SCHEMA public TO :"hub", :"api";

-- What an earlier deployment made as another role becomes the owner's.
SELECT format('ALTER %s %I.%I OWNER TO %I',
              CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
              n.nspname, c.relname, :'owner')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
  AND pg_get_userbyid(c.relowner) <> :'owner' \gexec
SELECT format('ALTER FUNCTION %s OWNER TO %I', p.oid::regprocedure, :'owner')
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> :'owner' \gexec

-- Tables and sequences that exist now.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"hub";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"hub";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"api";

-- Tables and sequences the owner's later migrations make.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"hub";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"hub";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT ON TABLES TO :"api";

-- The API's own writes, on the tables that exist (after `dynzero migrate`).
SELECT format('GRANT %s ON %I TO %I', g.privileges, g.t, :'api')
FROM (VALUES ('api_token', 'INSERT, UPDATE (revoked_at)'),
             ('api_audit', 'INSERT'),
             ('rejection', 'UPDATE (replayed_at)')) AS g (t, privileges)
WHERE to_regclass(format('public.%I', g.t)) IS NOT NULL \gexec
SELECT format('GRANT USAGE ON SEQUENCE %I TO %I', 'api_audit_seq_seq', :'api')
WHERE to_regclass('public.api_audit_seq_seq') IS NOT NULL \gexec
-- What the read side has no use for: the notifier's targets and secrets.
SELECT format('REVOKE ALL ON %I FROM %I', 'notifier_subscription', :'api')
WHERE to_regclass('public.notifier_subscription') IS NOT NULL \gexec
