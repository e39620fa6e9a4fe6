-- convkey._set_lead(p_business_id bigint, p_conversation_id bigint, p_lead_id bigint) RETURNS void
-- Makes an owned lead identity the conversation's lead (lead_id and key lead:{b}:{lead} in one
-- write, which the identity guard accepts): the surviving lead after merge_leads.
-- Locks: the caller holds the row lock and owns the lead identity. SQLSTATEs: none of its own.
CREATE OR REPLACE FUNCTION convkey._set_lead(p_business_id bigint, p_conversation_id bigint, p_lead_id bigint)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE convkey.whatsapp_conversation c
       SET lead_id = p_lead_id, canonical_key = format('lead:%s:%s', p_business_id, p_lead_id), updated_at = now()
     WHERE c.business_id = p_business_id AND c.id = p_conversation_id
       AND (c.lead_id IS DISTINCT FROM p_lead_id
            OR c.canonical_key IS DISTINCT FROM format('lead:%s:%s', p_business_id, p_lead_id));
END;
$$;

COMMENT ON FUNCTION convkey._set_lead(bigint, bigint, bigint) IS
    'Internal: make an owned lead the conversation''s lead and key.';
