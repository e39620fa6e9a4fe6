-- The privileges of the package's roles on its functions and views (the roles, the table
-- privileges and row-level security come from sql/0006_create_roles.sql). This file runs last
-- on every migrate: CREATE OR REPLACE keeps a function's or view's grants, but a function created
-- since the last run starts with PostgreSQL's default, EXECUTE for PUBLIC, and no grant to the roles.
--   * EXECUTE is revoked from PUBLIC on every function and procedure of the schema.
--   * convkey_app may execute every public API function: convkey.<name> without a leading
--     underscore that is not a trigger function. They run as their owner (SECURITY DEFINER with
--     search_path pinned), so the role needs no table privilege. Internal functions are revoked
--     from both roles (in case one was public once).
--   * convkey.display_name is pure and stays SECURITY INVOKER so that the planner inlines it into
--     convkey.conversation_thread; inlined, its helper convkey._blank_chars() (a constant string)
--     is called with the caller's privileges, so both roles may execute that one helper too.
--   * convkey_readonly may read the two views and execute convkey.display_name, which
--     conversation_thread calls. The views are security_invoker: the reader's column privileges
--     and row-level security apply (one business per session, see the migration).
-- Locks: catalog updates of the schema's functions and views; runs in the migration's transaction.
DO $$
DECLARE
    v_fn     regprocedure;
    v_public boolean;
BEGIN
    REVOKE ALL ON ALL ROUTINES IN SCHEMA convkey FROM PUBLIC;
    FOR v_fn, v_public IN
        SELECT p.oid::regprocedure,
               p.prokind = 'f' AND p.proname !~ '^_' AND p.prorettype <> 'pg_catalog.trigger'::pg_catalog.regtype
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'convkey'
         ORDER BY 1
    LOOP
        IF v_public THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO convkey_app', v_fn);
        ELSIF v_fn <> 'convkey._blank_chars()'::regprocedure THEN
            EXECUTE format('REVOKE ALL ON ROUTINE %s FROM convkey_app, convkey_readonly', v_fn);
        END IF;
    END LOOP;
END;
$$;

GRANT EXECUTE ON FUNCTION convkey._blank_chars() TO convkey_app, convkey_readonly;
GRANT EXECUTE ON FUNCTION convkey.display_name(text, text, text, text, text, text) TO convkey_readonly;
GRANT SELECT ON convkey.conversation_thread, convkey.dedup_health TO convkey_readonly;
