-- convkey.set_push_name(p_business_id bigint, p_conversation_id bigint, p_push_name text) RETURNS void
-- Stores the WhatsApp profile name a customer's message carried (Baileys pushName) on the
-- conversation, for display. An id merged away names the live conversation it ended in. The
-- name is stored as given and written only when it differs (the same name again writes
-- nothing); a NULL or blank name stores nothing, so a message without a pushName never erases
-- the name known.
-- Locks: the conversation's row lock when the name changes. Raises 22023 (bad ids), 22001 (name
-- over 256 characters), P0002 (no such conversation in this business).
CREATE OR REPLACE FUNCTION convkey.set_push_name(
    p_business_id bigint,
    p_conversation_id bigint,
    p_push_name text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    IF length(p_push_name) > 256 THEN
        RAISE EXCEPTION USING ERRCODE = 'string_data_right_truncation',
            MESSAGE = format('p_push_name is longer than 256 characters (%s)', length(p_push_name)),
            HINT = 'WhatsApp profile names are short; pass at most 256 characters.';
    END IF;
    IF p_push_name IS NULL OR btrim(p_push_name) = '' THEN
        -- still check the ids (22023/P0002), but a missing name never erases a stored one
        PERFORM convkey._live_conversation(p_business_id, p_conversation_id, 'p_conversation_id');
        RETURN;
    END IF;
    v_id := convkey._lock_live_conversation(p_business_id, p_conversation_id, 'p_conversation_id');
    UPDATE convkey.whatsapp_conversation c SET push_name = p_push_name, updated_at = now()
     WHERE c.business_id = p_business_id AND c.id = v_id AND c.push_name IS DISTINCT FROM p_push_name;
END;
$$;

COMMENT ON FUNCTION convkey.set_push_name(bigint, bigint, text) IS
    'Store the customer''s WhatsApp push name on a conversation (follows merges; writes only a changed, '
    'non-blank name). 22001 over 256 characters; P0002 unknown id.';
