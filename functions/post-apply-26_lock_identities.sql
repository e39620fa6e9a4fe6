-- convkey._backfill_lock_key(p_business_id bigint) RETURNS bigint
-- convkey._identity_lock_key(p_business_id bigint, p_kind text, p_value text) RETURNS bigint
-- The advisory lock keys of the identity protocol, in one place: the per-business backfill lock
-- (convkey._lock_backfill exclusively or shared, convkey._lock_identities shared) and the lock
-- of one identity (convkey._lock_identities, the try-locks of a parallel merge chunk). SQL
-- functions, inlined into the statements that call them.
-- Locks: none. SQLSTATEs: none.
CREATE OR REPLACE FUNCTION convkey._backfill_lock_key(p_business_id bigint)
RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT hashtextextended(format('convkey:backfill:%s', p_business_id), 0) $$;

CREATE OR REPLACE FUNCTION convkey._identity_lock_key(p_business_id bigint, p_kind text, p_value text)
RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT hashtextextended(format('convkey:%s:%s:%s', p_business_id, p_kind, p_value), 0) $$;

COMMENT ON FUNCTION convkey._backfill_lock_key(bigint) IS
    'Internal: the advisory lock key of a business''s backfill lock.';
COMMENT ON FUNCTION convkey._identity_lock_key(bigint, text, text) IS
    'Internal: the advisory lock key of one identity.';

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
    PERFORM pg_advisory_xact_lock_shared(convkey._backfill_lock_key(p_business_id));
    FOR v_lock IN
        SELECT DISTINCT convkey._identity_lock_key(p_business_id, c.k, c.v)
          FROM unnest(p_kinds, p_values) AS c(k, v) ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(v_lock);
    END LOOP;
END;
$$;

COMMENT ON FUNCTION convkey._lock_identities(bigint, text[], text[]) IS
    'Internal: advisory transaction locks on identities, in hash order.';
