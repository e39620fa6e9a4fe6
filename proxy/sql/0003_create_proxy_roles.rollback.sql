-- Why: undo 0003: the roles lose every privilege they hold in this proxy database (the schema,
-- its functions and views, SERVER convkey), and EXECUTE on the proxy's functions goes back to
-- PUBLIC (the PostgreSQL default that proxy/functions/post-apply-90_grants.sql revokes). The
-- roles stay: they are cluster-wide and shards or other databases may use them (see
-- sql/0006_create_roles.rollback.sql for dropping them by hand).

SET LOCAL lock_timeout = '5s';

REVOKE ALL ON ALL TABLES IN SCHEMA convkey FROM convkey_app, convkey_readonly;
REVOKE ALL ON ALL ROUTINES IN SCHEMA convkey FROM convkey_app, convkey_readonly;
REVOKE ALL ON SCHEMA convkey FROM convkey_app, convkey_readonly;
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA convkey TO PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_foreign_server s WHERE s.srvname = 'convkey') THEN
        REVOKE ALL ON FOREIGN SERVER convkey FROM convkey_app, convkey_readonly;
    END IF;
END;
$$;
