-- convkey._merge_conversations(p_business_id bigint, p_primary_id bigint, p_duplicate_id bigint,
--     p_reason text, p_triggered_by jsonb DEFAULT '{}') RETURNS bigint
-- The merge primitive under get-or-create, links, lead merges and the backfill. Every message
-- and identity of the duplicate moves to the primary; the primary keeps its primary phone (or
-- takes the duplicate's), takes the lead if it had none, recomputes its key, and its timestamps
-- become the union (earliest session start, latest activity); it is open if either was and
-- keeps its push name and last raw identifier or takes the duplicate's. The duplicate becomes a tombstone
-- (canonical_key NULL, merged_into_id = primary, closed). One audit row in
-- convkey.conversation_merge records exactly what moved and both rows before, so it can be undone.
-- Returns the audit row's id.
-- Locks: the caller holds both conversations' row locks (taken in id order) and has checked
-- that both are live, distinct, of one business and not of two different leads.
-- SQLSTATEs: none of its own.
CREATE OR REPLACE FUNCTION convkey._merge_conversations(
    p_business_id bigint,
    p_primary_id bigint,
    p_duplicate_id bigint,
    p_reason text,
    p_triggered_by jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_primary    convkey.whatsapp_conversation%ROWTYPE;
    v_duplicate  convkey.whatsapp_conversation%ROWTYPE;
    v_messages   bigint[];
    v_identities jsonb;
    v_merge_id   bigint;
BEGIN
    SELECT * INTO v_primary FROM convkey.whatsapp_conversation c
     WHERE c.business_id = p_business_id AND c.id = p_primary_id;
    SELECT * INTO v_duplicate FROM convkey.whatsapp_conversation c
     WHERE c.business_id = p_business_id AND c.id = p_duplicate_id;

    WITH moved AS (
        UPDATE convkey.whatsapp_message m SET conversation_id = p_primary_id
         WHERE m.business_id = p_business_id AND m.conversation_id = p_duplicate_id
        RETURNING m.id)
    SELECT coalesce(array_agg(moved.id ORDER BY moved.id), '{}') INTO v_messages FROM moved;

    WITH moved AS (
        UPDATE convkey.identity i SET conversation_id = p_primary_id, updated_at = now()
         WHERE i.business_id = p_business_id AND i.conversation_id = p_duplicate_id
        RETURNING i.kind, i.value)
    SELECT coalesce(jsonb_agg(jsonb_build_object('kind', moved.kind, 'value', moved.value)
                              ORDER BY moved.kind, moved.value), '[]')
      INTO v_identities FROM moved;

    UPDATE convkey.whatsapp_conversation c
       SET canonical_key = NULL, merged_into_id = p_primary_id, is_open = false,
           summary_created = true, updated_at = now()
     WHERE c.business_id = p_business_id AND c.id = p_duplicate_id;

    UPDATE convkey.whatsapp_conversation c
       SET push_name = coalesce(c.push_name, v_duplicate.push_name),
           customer_wa_id = coalesce(c.customer_wa_id, v_duplicate.customer_wa_id),
           lead_name = coalesce(c.lead_name, v_duplicate.lead_name),
           session_started_at = least(c.session_started_at, v_duplicate.session_started_at),
           last_message_at = greatest(c.last_message_at, v_duplicate.last_message_at),
           last_customer_message_at = greatest(c.last_customer_message_at, v_duplicate.last_customer_message_at),
           last_read_at = greatest(c.last_read_at, v_duplicate.last_read_at),
           is_open = c.is_open OR v_duplicate.is_open,
           summary_created = c.summary_created AND NOT v_duplicate.is_open,
           updated_at = now()
     WHERE c.business_id = p_business_id AND c.id = p_primary_id;

    PERFORM convkey._refresh_conversation(p_business_id, p_primary_id, v_duplicate.lead_id, v_duplicate.phone_e164);

    INSERT INTO convkey.conversation_merge
        (business_id, primary_id, duplicate_id, reason, triggered_by, moved_message_ids,
         moved_identities, primary_before, duplicate_before, primary_after)
    SELECT p_business_id, p_primary_id, p_duplicate_id, p_reason, coalesce(p_triggered_by, '{}'),
           v_messages, v_identities, to_jsonb(v_primary), to_jsonb(v_duplicate), to_jsonb(c)
      FROM convkey.whatsapp_conversation c
     WHERE c.business_id = p_business_id AND c.id = p_primary_id
    RETURNING id INTO v_merge_id;
    RETURN v_merge_id;
END;
$$;

COMMENT ON FUNCTION convkey._merge_conversations(bigint, bigint, bigint, text, jsonb) IS
    'Internal merge primitive: move messages and identities to the primary, tombstone the duplicate, audit.';
