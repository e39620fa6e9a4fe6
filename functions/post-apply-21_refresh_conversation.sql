-- convkey._refresh_conversation(p_business_id bigint, p_conversation_id bigint,
--     p_prefer_lead bigint DEFAULT NULL, p_prefer_phone text DEFAULT NULL) RETURNS text
-- Recomputes a live conversation's derived columns from the identities it owns: lead_id (kept
-- while still owned, else the oldest owned lead), phone_e164 (the primary phone: kept while
-- owned, else the oldest owned phone) and canonical_key from the strongest identity (a lid/bsuid
-- key is kept while still owned). A merge passes the duplicate's lead and phone as the
-- preference for a primary that has none. A conversation that owns no identity is unresolved:
-- key NULL, and its lead_id and phone_e164 are legacy values, left as they are (an unresolved
-- legacy row the backfill could not join, or a side of an unmerge left with nothing).
-- Writes only when something changed. Returns the key.
-- Locks: the caller holds the conversation's row lock. SQLSTATEs: none of its own.
CREATE OR REPLACE FUNCTION convkey._refresh_conversation(
    p_business_id bigint,
    p_conversation_id bigint,
    p_prefer_lead bigint DEFAULT NULL,
    p_prefer_phone text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    v_conv    convkey.whatsapp_conversation%ROWTYPE;
    v_lead    bigint;
    v_phone   text;
    v_key     text;
BEGIN
    SELECT * INTO v_conv FROM convkey.whatsapp_conversation c
     WHERE c.business_id = p_business_id AND c.id = p_conversation_id;

    SELECT i.value::bigint INTO v_lead FROM convkey.identity i
     WHERE i.business_id = p_business_id AND i.conversation_id = p_conversation_id AND i.kind = 'lead'
     ORDER BY (i.value = coalesce(v_conv.lead_id, p_prefer_lead)::text) DESC, i.created_at, i.value LIMIT 1;
    SELECT i.value INTO v_phone FROM convkey.identity i
     WHERE i.business_id = p_business_id AND i.conversation_id = p_conversation_id AND i.kind = 'phone'
     ORDER BY (i.value = coalesce(v_conv.phone_e164, p_prefer_phone)) DESC, i.created_at, i.value LIMIT 1;

    IF v_lead IS NOT NULL THEN
        v_key := format('lead:%s:%s', p_business_id, v_lead);
    ELSIF v_phone IS NOT NULL THEN
        v_key := format('phone:%s:%s', p_business_id, v_phone);
    ELSE
        SELECT format('%s:%s:%s', i.kind, p_business_id, i.value) INTO v_key FROM convkey.identity i
         WHERE i.business_id = p_business_id AND i.conversation_id = p_conversation_id
           AND i.kind IN ('lid', 'bsuid')
         ORDER BY i.kind = 'bsuid', format('%s:%s:%s', i.kind, p_business_id, i.value) = v_conv.canonical_key DESC,
                  i.created_at, i.value
         LIMIT 1;
    END IF;
    IF v_key IS NULL THEN
        v_lead := v_conv.lead_id;
        v_phone := v_conv.phone_e164;
    END IF;

    IF v_key IS DISTINCT FROM v_conv.canonical_key OR v_lead IS DISTINCT FROM v_conv.lead_id
       OR v_phone IS DISTINCT FROM v_conv.phone_e164 THEN
        UPDATE convkey.whatsapp_conversation c
           SET canonical_key = v_key, lead_id = v_lead, phone_e164 = v_phone, updated_at = now()
         WHERE c.business_id = p_business_id AND c.id = p_conversation_id;
    END IF;
    RETURN v_key;
END;
$$;

COMMENT ON FUNCTION convkey._refresh_conversation(bigint, bigint, bigint, text) IS
    'Internal: recompute lead_id, phone_e164 and canonical_key of a conversation from its identities.';
