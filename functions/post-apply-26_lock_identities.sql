-- convkey._lock_identities(p_business_id bigint, p_kinds text[], p_values text[]) RETURNS void
-- Serializes on identities: a shared per-business lock (held exclusively by a backfill batch
-- while it claims identities in bulk), then one advisory transaction lock per (business, kind, value), taken
-- in hash order so that concurrent callers never wait on each other in a cycle. Identity locks
-- are always taken before pending-person locks and before conversation row locks.
-- Locks: advisory transaction locks. SQLSTATEs: none of its own.
CREATE OR REPLACE FUNCTION convkey._lock_identities(p_business_id bigint, p_kinds text[], p_values text[])
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_lock bigint;
BEGIN
    -- Level 0: a shared lock per business; the backfill's bulk claim takes it exclusively for
    -- one short batch (convkey._lock_backfill), so no identity is claimed by two writers at once.
    PERFORM pg_advisory_xact_lock_shared(hashtextextended(format('convkey:backfill:%s', p_business_id), 0));
    FOR v_lock IN
        SELECT DISTINCT hashtextextended(format('convkey:%s:%s:%s', p_business_id, c.k, c.v), 0)
          FROM unnest(p_kinds, p_values) AS c(k, v) ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(v_lock);
    END LOOP;
END;
$$;

COMMENT ON FUNCTION convkey._lock_identities(bigint, text[], text[]) IS
    'Internal: advisory transaction locks on identities, in hash order.';
