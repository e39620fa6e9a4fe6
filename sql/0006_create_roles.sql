-- Why: applications should reach convkey through its API only, and a dashboard reading the views
-- should see one business (tenant) at a time, never another's rows.
--   * convkey_app (NOLOGIN; GRANT it to an application's login role): USAGE on the schema and
--     EXECUTE on the public API functions, which run as their owner (SECURITY DEFINER, search_path
--     pinned). No table privilege at all, no internal `_` function. The EXECUTE grants live in
--     functions/post-apply-90_grants.sql, which runs last on every migrate, because functions are
--     (re)created by the post-apply files after this migration.
--   * convkey_readonly (NOLOGIN): the two views, convkey.conversation_thread and
--     convkey.dedup_health. They are security_invoker views (PostgreSQL 15), so the reader's own
--     privileges and row-level security apply: the role gets SELECT on exactly the columns the
--     views read (not identity values, merge audits, summaries or raw message ids), and the
--     policies below show it only the rows of the business named by the session setting
--     convkey.business_id, and nothing when it is not set. (A view owned by a separate role would
--     keep table SELECT away from readers, but row security would then apply to every reader of
--     the view, the table owner and superusers included, and `convkey stats` and the runbook
--     queries would see nothing.)
-- Row-level security is enabled on every table holding business data. The table owner (who runs
-- the migrations and owns the SECURITY DEFINER functions) is not subject to it, so the API and
-- the admin commands are unaffected; the API functions scope every read and write by their
-- p_business_id themselves.
-- Roles are cluster-wide: they may exist already (another database of the cluster, or a DBA who
-- created them because the migrating role lacks CREATEROLE), so they are created only when missing.
-- On a live database each ALTER TABLE ... ENABLE ROW LEVEL SECURITY and CREATE POLICY takes a brief
-- ACCESS EXCLUSIVE lock (a catalog change, no rewrite or scan); lock_timeout makes it fail fast
-- rather than queue webhooks behind a long transaction, and the migration can simply be re-run.
-- A later migration that adds a table with business data must enable row security on it and add
-- the same policy; one that adds a column the views read must grant it to convkey_readonly.
-- depends: 0005_create_backfill_tables

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DO $$
DECLARE
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['convkey_app', 'convkey_readonly'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = v_role) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
                EXECUTE format('COMMENT ON ROLE %I IS %L', v_role, CASE v_role
                    WHEN 'convkey_app' THEN 'convkey: may execute the public API functions of schema convkey '
                                            'and nothing else; grant it to application login roles.'
                    ELSE 'convkey: may read the views convkey.conversation_thread and convkey.dedup_health, '
                         'one business at a time (SET convkey.business_id).' END);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created concurrently by the migration of another database
            END;
        END IF;
    END LOOP;
END;
$$;

GRANT USAGE ON SCHEMA convkey TO convkey_app, convkey_readonly;

-- convkey_readonly reads the columns the views use, and nothing else.
GRANT SELECT (id, business_id, canonical_key, lead_id, phone_e164, customer_wa_id, push_name, lead_name,
              is_open, last_message_at, last_read_at, merged_into_id)
    ON convkey.whatsapp_conversation TO convkey_readonly;
GRANT SELECT (id, business_id, conversation_id, direction, body, sent_at)
    ON convkey.whatsapp_message TO convkey_readonly;
GRANT SELECT (business_id, kind, pending_person_id) ON convkey.identity TO convkey_readonly;
GRANT SELECT (business_id, reason, merged_at, undone_at) ON convkey.conversation_merge TO convkey_readonly;
GRANT SELECT (business_id, rule, seen_count) ON convkey.identity_conflict TO convkey_readonly;

-- One business per session: the rows of convkey.business_id, none when it is not set.
ALTER TABLE convkey.whatsapp_conversation ENABLE ROW LEVEL SECURITY;
CREATE POLICY rls_whatsapp_conversation_business ON convkey.whatsapp_conversation
    FOR ALL TO convkey_readonly, convkey_app
    USING (business_id = nullif(current_setting('convkey.business_id', true), '')::bigint)
    WITH CHECK (business_id = nullif(current_setting('convkey.business_id', true), '')::bigint);

ALTER TABLE convkey.whatsapp_message ENABLE ROW LEVEL SECURITY;
CREATE POLICY rls_whatsapp_message_business ON convkey.whatsapp_message
    FOR ALL TO convkey_readonly, convkey_app
    USING (business_id = nullif(current_setting('convkey.business_id', true), '')::bigint)
    WITH CHECK (business_id = nullif(current_setting('convkey.business_id', true), '')::bigint);

ALTER TABLE convkey.identity ENABLE ROW LEVEL SECURITY;
CREATE POLICY rls_identity_business ON convkey.identity
    FOR ALL TO convkey_readonly, convkey_app
    USING (business_id = nullif(current_setting('convkey.business_id', true), '')::bigint)
    WITH CHECK (business_id = nullif(current_setting('convkey.business_id', true), '')::bigint);

ALTER TABLE convkey.identity_conflict ENABLE ROW LEVEL SECURITY;
CREATE POLICY rls_identity_conflict_business ON convkey.identity_conflict
    FOR ALL TO convkey_readonly, convkey_app
    USING (business_id = nullif(current_setting('convkey.business_id', true), '')::bigint)
    WITH CHECK (business_id = nullif(current_setting('convkey.business_id', true), '')::bigint);

ALTER TABLE convkey.conversation_merge ENABLE ROW LEVEL SECURITY;
CREATE POLICY rls_conversation_merge_business ON convkey.conversation_merge
    FOR ALL TO convkey_readonly, convkey_app
    USING (business_id = nullif(current_setting('convkey.business_id', true), '')::bigint)
    WITH CHECK (business_id = nullif(current_setting('convkey.business_id', true), '')::bigint);

ALTER TABLE convkey.conversation_separation ENABLE ROW LEVEL SECURITY;
CREATE POLICY rls_conversation_separation_business ON convkey.conversation_separation
    FOR ALL TO convkey_readonly, convkey_app
    USING (business_id = nullif(current_setting('convkey.business_id', true), '')::bigint)
    WITH CHECK (business_id = nullif(current_setting('convkey.business_id', true), '')::bigint);

ALTER TABLE convkey.backfill_row ENABLE ROW LEVEL SECURITY;
CREATE POLICY rls_backfill_row_business ON convkey.backfill_row
    FOR ALL TO convkey_readonly, convkey_app
    USING (business_id = nullif(current_setting('convkey.business_id', true), '')::bigint)
    WITH CHECK (business_id = nullif(current_setting('convkey.business_id', true), '')::bigint);

-- backfill_cursor holds positions only (business_id 0 is a run over all businesses): no policy, so
-- row security hides it from every role but its owner.
ALTER TABLE convkey.backfill_cursor ENABLE ROW LEVEL SECURITY;
