-- The privileges of the package's roles on the proxy's functions and views (the roles come from
-- proxy/sql/0003_create_proxy_roles.sql). The proxy reaches the shards as their admin user, so
-- these grants are what keeps an application to the API and a reader to one business. Runs last
-- on every migrate (a function created since the last run starts with EXECUTE for PUBLIC):
--   * EXECUTE is revoked from PUBLIC on every function of the schema.
--   * convkey_app may execute the public API: every function without a leading underscore,
--     except convkey.conversation_thread() and convkey.dedup_health(), which feed the views of
--     the same names (on a shard the application role reads no view either).
--   * convkey_readonly may read those two views and execute the two functions behind them; the
--     views filter a reader's rows by convkey.business_id. Internal functions (the cluster's
--     configuration, the row functions behind the DBA views) are for neither role, except
--     convkey._business_hash, which every routed call evaluates as its caller.
-- Locks: catalog updates of the schema's functions and views; runs in the migration's transaction.
DO $$
DECLARE
    v_fn  regprocedure;
    v_app boolean;
BEGIN
    REVOKE ALL ON ALL ROUTINES IN SCHEMA convkey FROM PUBLIC;
    FOR v_fn, v_app IN
        SELECT p.oid::regprocedure, p.proname !~ '^_' AND p.proname NOT IN ('conversation_thread', 'dedup_health')
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'convkey' AND p.prokind = 'f'
         ORDER BY 1
    LOOP
        IF v_app THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO convkey_app', v_fn);
        ELSE
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM convkey_app', v_fn);
        END IF;
    END LOOP;
END;
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA convkey FROM convkey_app, convkey_readonly;
-- RUN ON convkey._business_hash(p_business_id) is evaluated as the caller: the pure hash.
GRANT EXECUTE ON FUNCTION convkey._business_hash(bigint) TO convkey_app;
GRANT EXECUTE ON FUNCTION convkey.conversation_thread(), convkey.dedup_health() TO convkey_readonly;
GRANT SELECT ON convkey.conversation_thread, convkey.dedup_health TO convkey_readonly;

-- A proxy whose cluster was created before these grants existed (`convkey shards add` grants it
-- when it creates SERVER convkey).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_foreign_server s WHERE s.srvname = 'convkey') THEN
        GRANT USAGE ON FOREIGN SERVER convkey TO convkey_app, convkey_readonly;
    END IF;
END;
$$;
