-- convkey._lock_backfill(p_business_ids bigint[]) RETURNS void
-- The per-business backfill lock, exclusively, for each distinct business of a backfill batch, in
-- id order: a resolve batch or a set-based merge chunk claims identities in bulk while no other
-- writer can (every identity writer takes the same lock shared first, convkey._lock_identities).
-- Webhooks on the fast path take no identity lock and never wait for it.
-- Locks: advisory transaction locks. SQLSTATEs: none of its own.
CREATE OR REPLACE FUNCTION convkey._lock_backfill(p_business_ids bigint[])
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_business bigint;
BEGIN
    FOR v_business IN SELECT DISTINCT b FROM unnest(p_business_ids) AS b ORDER BY 1 LOOP
        -- the key convkey._lock_identities takes shared
        PERFORM pg_advisory_xact_lock(hashtextextended(format('convkey:backfill:%s', v_business), 0));
    END LOOP;
END;
$$;

COMMENT ON FUNCTION convkey._lock_backfill(bigint[]) IS
    'Internal: the per-business backfill lock, exclusively, for a backfill batch''s businesses.';
