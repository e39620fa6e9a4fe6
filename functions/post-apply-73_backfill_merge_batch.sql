-- PROCEDURE convkey._backfill_merge_batch(p_scope bigint, p_business_ids bigint[], p_ids bigint[],
--     p_commit boolean, INOUT p_stats jsonb DEFAULT '{}')
-- Phase 2 of the backfill over a batch of staged rows (in (business_id, id) order; the runner
-- passes the rows convkey._backfill_merge_simple did not resolve set-based): one
-- convkey._backfill_merge_row per row, each committed on its own when p_commit (so every merge
-- takes its locks in the fixed order and holds them for one row only; webhooks never wait on a
-- whole batch). The phase's cursor moves with each row. p_commit false (the dry run, inside
-- the runner's transaction that is rolled back) does the same work without committing.
-- p_stats counts outcomes: merged, resolved, conflict, gone.
-- Locks: per row, see convkey._backfill_merge_row. SQLSTATEs: lock and serialization failures
-- are raised for the runner to retry the batch (rows already committed are 'gone' then).
CREATE OR REPLACE PROCEDURE convkey._backfill_merge_batch(
    p_scope bigint,
    p_business_ids bigint[],
    p_ids bigint[],
    p_commit boolean,
    INOUT p_stats jsonb DEFAULT '{}')
LANGUAGE plpgsql
AS $$
DECLARE
    v_out text;
BEGIN
    p_stats := coalesce(p_stats, '{}'::jsonb);
    FOR v_i IN 1 .. coalesce(cardinality(p_ids), 0) LOOP
        v_out := convkey._backfill_merge_row(p_business_ids[v_i], p_ids[v_i]);
        p_stats := jsonb_set(p_stats, ARRAY[v_out], to_jsonb(coalesce((p_stats->>v_out)::int, 0) + 1));
        INSERT INTO convkey.backfill_cursor AS k (business_id, phase, last_business_id, last_id)
        VALUES (p_scope, 'merge', p_business_ids[v_i], p_ids[v_i])
        ON CONFLICT (business_id, phase) DO UPDATE
           SET last_business_id = EXCLUDED.last_business_id, last_id = EXCLUDED.last_id, updated_at = now(),
               finished_at = NULL;
        IF p_commit THEN
            COMMIT;
        END IF;
    END LOOP;
END;
$$;

COMMENT ON PROCEDURE convkey._backfill_merge_batch(bigint, bigint[], bigint[], boolean, jsonb) IS
    'Internal backfill phase 2: merge a batch of deferred legacy rows, one transaction per row.';
