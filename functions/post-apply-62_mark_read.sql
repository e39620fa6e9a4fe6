-- convkey.mark_read(p_business_id bigint, p_conversation_id bigint) RETURNS void
-- The agent has read the thread: last_read_at becomes now(), so convkey.conversation_thread
-- counts as unread only incoming messages sent after this moment. An id merged away marks the
-- live conversation it ended in.
-- Locks: the conversation's row lock. Raises 22023 (bad ids), P0002 (no such conversation in
-- this business).
CREATE OR REPLACE FUNCTION convkey.mark_read(p_business_id bigint, p_conversation_id bigint)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    v_id := convkey._lock_live_conversation(p_business_id, p_conversation_id, 'p_conversation_id');
    UPDATE convkey.whatsapp_conversation c
       SET last_read_at = now(), updated_at = now()
     WHERE c.business_id = p_business_id AND c.id = v_id;
END;
$$;

COMMENT ON FUNCTION convkey.mark_read(bigint, bigint) IS
    'Mark a conversation read (last_read_at = now(); follows merges). 22023 bad ids, P0002 unknown in this business.';
