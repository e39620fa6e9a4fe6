-- convkey._pending_lock_key(p_business_id bigint, p_pending_person_id bigint) RETURNS bigint
-- The advisory lock key of a pending person (convkey._lock_pending_persons, the try-locks of a
-- parallel merge chunk). A SQL function, inlined into the statements that call it.
-- Locks: none. SQLSTATEs: none.
CREATE OR REPLACE FUNCTION convkey._pending_lock_key(p_business_id bigint, p_pending_person_id bigint)
RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT hashtextextended(format('convkey:pending:%s:%s', p_business_id, p_pending_person_id), 0) $$;

COMMENT ON FUNCTION convkey._pending_lock_key(bigint, bigint) IS
    'Internal: the advisory lock key of a pending person.';

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
        SELECT DISTINCT convkey._pending_lock_key(p_business_id, x)
          FROM unnest(p_ids) AS x WHERE x IS NOT NULL ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(v_lock);
    END LOOP;
END;
$$;

COMMENT ON FUNCTION convkey._lock_pending_persons(bigint, bigint[]) IS
    'Internal: advisory transaction locks on pending persons, in hash order.';
