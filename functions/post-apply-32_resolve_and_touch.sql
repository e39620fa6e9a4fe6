-- convkey._resolve_and_touch(p_business_id bigint, p_kinds text[], p_values text[],
--     p_customer_wa_id text, p_provider text, p_direction text, p_at timestamptz, p_via text)
--   RETURNS bigint
-- Get-or-create, then record activity at p_at in the same transaction: last_message_at (and
-- last_customer_message_at for 'in') never move backwards; a closed session is re-opened only by
-- activity newer than the conversation's last_message_at (is_open, session_started_at = p_at,
-- summary_created false). The row lock taken by the UPDATE keeps a concurrent merge out until
-- the caller commits, so a message inserted next lands in a live conversation.
-- Locks: those of convkey._resolve_conversation, then the conversation's row lock.
-- SQLSTATEs: none of its own (arguments are validated by the callers).
CREATE OR REPLACE FUNCTION convkey._resolve_and_touch(
    p_business_id bigint,
    p_kinds text[],
    p_values text[],
    p_customer_wa_id text,
    p_provider text,
    p_direction text,
    p_at timestamptz,
    p_via text)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_res record;
BEGIN
    LOOP
        v_res := convkey._resolve_conversation(p_business_id, p_kinds, p_values, p_customer_wa_id,
                                               p_provider, p_at, p_via);
        UPDATE convkey.whatsapp_conversation c
           SET is_open = c.is_open OR c.last_message_at IS NULL OR p_at > c.last_message_at,
               session_started_at = CASE WHEN NOT c.is_open AND (c.last_message_at IS NULL OR p_at > c.last_message_at)
                                         THEN p_at ELSE c.session_started_at END,
               summary_created = CASE WHEN NOT c.is_open AND (c.last_message_at IS NULL OR p_at > c.last_message_at)
                                      THEN false ELSE c.summary_created END,
               last_message_at = greatest(c.last_message_at, p_at),
               last_customer_message_at = CASE WHEN p_direction = 'in'
                                               THEN greatest(c.last_customer_message_at, p_at)
                                               ELSE c.last_customer_message_at END,
               customer_wa_id = coalesce(p_customer_wa_id, c.customer_wa_id),
               provider = p_provider,
               updated_at = now()
         WHERE c.business_id = p_business_id AND c.id = v_res.o_conversation_id AND c.merged_into_id IS NULL;
        -- Not found: a concurrent merge tombstoned it after we resolved; resolve again.
        IF FOUND THEN
            RETURN v_res.o_conversation_id;
        END IF;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION convkey._resolve_and_touch(bigint, text[], text[], text, text, text, timestamptz, text) IS
    'Internal: get-or-create plus monotonic activity update; re-resolves if a merge raced it.';
