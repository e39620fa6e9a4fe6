-- convkey._lock_conversations(p_business_id bigint, p_ids bigint[]) RETURNS void
-- Locks the given conversations of one business in one statement, in id order (FOR NO KEY
-- UPDATE), so that any two merges, links or lead changes take their row locks in the same
-- order and never deadlock on each other.
-- Locks: row locks on the conversations. SQLSTATEs: none of its own.
CREATE OR REPLACE FUNCTION convkey._lock_conversations(p_business_id bigint, p_ids bigint[])
RETURNS void
LANGUAGE plpgsql
-- Generic plan: the primary-key index scan with id = ANY($2) suits one id and many alike, while
-- the default planned the statement again on every call (about 100 us for a new person).
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    PERFORM 1 FROM convkey.whatsapp_conversation c
      WHERE c.business_id = p_business_id AND c.id = ANY (p_ids)
      ORDER BY c.id FOR NO KEY UPDATE;
END;
$$;

COMMENT ON FUNCTION convkey._lock_conversations(bigint, bigint[]) IS
    'Internal: row-lock conversations in id order (the fixed order every merge uses).';
