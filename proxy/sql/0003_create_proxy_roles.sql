-- Why: the proxy reaches the shards with the connect strings of SERVER convkey, which name the
-- shards' admin user, so the shards' own privileges and row-level security do not see who called
-- the proxy. The proxy must therefore be the gate: the same two roles as on a shard
-- (sql/0006_create_roles.sql), with the same meaning:
--   * convkey_app: EXECUTE on the public API functions, nothing else;
--   * convkey_readonly: the views convkey.conversation_thread and convkey.dedup_health, one
--     business at a time (the session setting convkey.business_id), nothing when it is not set.
-- The grants live in proxy/functions/post-apply-90_grants.sql (functions are re-created by the
-- post-apply files after this migration); USAGE on SERVER convkey is granted when
-- `convkey shards add` creates it (convkey._set_partitions).
-- Roles are cluster-wide and may exist already (a shard or another proxy on the same cluster, or
-- a DBA who created them because the migrating role lacks CREATEROLE): created only when missing.
-- depends: 0002_create_proxy_row_types

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = 'convkey_app') THEN
        CREATE ROLE convkey_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = 'convkey_readonly') THEN
        CREATE ROLE convkey_readonly NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- created concurrently by the migration of another database of the cluster
END;
$$;

GRANT USAGE ON SCHEMA convkey TO convkey_app, convkey_readonly;
