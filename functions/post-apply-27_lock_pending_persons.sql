-- convkey._lock_pending_persons(p_business_id bigint, p_ids bigint[]) RETURNS void
-- Serializes on not-yet-conversing persons (identity.pending_person_id): advisory transaction
-- locks in hash order, taken after identity locks and before conversation row locks.
-- Locks: advisory transaction locks. SQLSTATEs: none of its own.
CREATE OR REPLACE FUNCTION convkey._lock_pending_persons(p_business_id bigint, p_ids bigint[])
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_lock bigint;
BEGIN
    FOR v_lock IN
        SELECT DISTINCT hashtextextended(format('convkey:pending:%s:%s', p_business_id, x), 0)
          FROM unnest(p_ids) AS x WHERE x IS NOT NULL ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(v_lock);
    END LOOP;
END;
$$;

COMMENT ON FUNCTION convkey._lock_pending_persons(bigint, bigint[]) IS
    'Internal: advisory transaction locks on pending persons, in hash order.';
