-- convkey._lock_backfill(p_business_ids bigint[], p_shared boolean DEFAULT false) RETURNS void
-- The per-business backfill lock for each distinct business of a backfill batch, in id order.
-- Exclusively (the default): a resolve batch or a set-based merge chunk claims identities in
-- bulk while no other writer can (every identity writer takes the same lock shared first,
-- convkey._lock_identities). Shared (p_shared): a set-based merge chunk of a parallel merge
-- phase, which then locks each identity and pending person it claims as any identity writer
-- does (with try-locks, convkey._backfill_merge_simple), so that chunks of several workers and
-- webhooks run side by side.
-- Webhooks on the fast path take no identity lock and never wait for it.
-- Locks: advisory transaction locks. SQLSTATEs: none of its own.
DROP FUNCTION IF EXISTS convkey._lock_backfill(bigint[]);
CREATE OR REPLACE FUNCTION convkey._lock_backfill(p_business_ids bigint[], p_shared boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_business bigint;
BEGIN
    FOR v_business IN SELECT DISTINCT b FROM unnest(p_business_ids) AS b ORDER BY 1 LOOP
        -- the key convkey._lock_identities takes shared
        IF p_shared THEN
            PERFORM pg_advisory_xact_lock_shared(convkey._backfill_lock_key(v_business));
        ELSE
            PERFORM pg_advisory_xact_lock(convkey._backfill_lock_key(v_business));
        END IF;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION convkey._lock_backfill(bigint[], boolean) IS
    'Internal: the per-business backfill lock, exclusively or shared, for a backfill batch''s businesses.';
