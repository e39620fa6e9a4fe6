-- Why: undo 0006: row-level security and its policies go, the roles lose every privilege they
-- hold in this database, and EXECUTE on the package's functions goes back to PUBLIC (the
-- PostgreSQL default that functions/post-apply-90_grants.sql revokes).
-- The roles themselves stay. Roles are cluster-wide: other databases of the cluster may hold
-- convkey too, and applications' login roles are members of them, so DROP ROLE would fail there
-- (or strip those applications of their access). Drop them by hand once no database uses them:
-- in each database `DROP OWNED BY convkey_app, convkey_readonly;`, then
-- `DROP ROLE convkey_app, convkey_readonly;`.
DROP POLICY IF EXISTS rls_whatsapp_conversation_business ON convkey.whatsapp_conversation;
DROP POLICY IF EXISTS rls_whatsapp_message_business ON convkey.whatsapp_message;
DROP POLICY IF EXISTS rls_identity_business ON convkey.identity;
DROP POLICY IF EXISTS rls_identity_conflict_business ON convkey.identity_conflict;
DROP POLICY IF EXISTS rls_conversation_merge_business ON convkey.conversation_merge;
DROP POLICY IF EXISTS rls_conversation_separation_business ON convkey.conversation_separation;
DROP POLICY IF EXISTS rls_backfill_row_business ON convkey.backfill_row;
ALTER TABLE convkey.whatsapp_conversation DISABLE ROW LEVEL SECURITY;
ALTER TABLE convkey.whatsapp_message DISABLE ROW LEVEL SECURITY;
ALTER TABLE convkey.identity DISABLE ROW LEVEL SECURITY;
ALTER TABLE convkey.identity_conflict DISABLE ROW LEVEL SECURITY;
ALTER TABLE convkey.conversation_merge DISABLE ROW LEVEL SECURITY;
ALTER TABLE convkey.conversation_separation DISABLE ROW LEVEL SECURITY;
ALTER TABLE convkey.backfill_row DISABLE ROW LEVEL SECURITY;
ALTER TABLE convkey.backfill_cursor DISABLE ROW LEVEL SECURITY;

DO $$
DECLARE
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['convkey_app', 'convkey_readonly'] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = v_role);
        -- also revokes the column privileges (REVOKE on a table covers its columns)
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA convkey FROM %I', v_role);
        EXECUTE format('REVOKE ALL ON ALL ROUTINES IN SCHEMA convkey FROM %I', v_role);
        EXECUTE format('REVOKE ALL ON SCHEMA convkey FROM %I', v_role);
    END LOOP;
END;
$$;

GRANT EXECUTE ON ALL ROUTINES IN SCHEMA convkey TO PUBLIC;
