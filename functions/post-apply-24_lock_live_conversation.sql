-- convkey._lock_live_conversation(p_business_id bigint, p_conversation_id bigint, p_param text) RETURNS bigint
-- The live conversation an id of the business ended in (following merges), row-locked (FOR NO
-- KEY UPDATE) so that no merge can make it a tombstone before the caller's update; if a
-- concurrent merge wins the race, it follows the tombstone again.
-- Locks: the live conversation's row. Raises 22023 (bad ids, naming p_param), P0002 (no such
-- conversation in this business).
CREATE OR REPLACE FUNCTION convkey._lock_live_conversation(p_business_id bigint, p_conversation_id bigint, p_param text)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_id bigint := p_conversation_id;
BEGIN
    LOOP
        v_id := convkey._live_conversation(p_business_id, v_id, p_param);
        PERFORM 1 FROM convkey.whatsapp_conversation c
          WHERE c.business_id = p_business_id AND c.id = v_id AND c.merged_into_id IS NULL
          FOR NO KEY UPDATE;
        IF FOUND THEN
            RETURN v_id;
        END IF;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION convkey._lock_live_conversation(bigint, bigint, text) IS
    'Internal: the live conversation an id ended in, row-locked against concurrent merges.';
