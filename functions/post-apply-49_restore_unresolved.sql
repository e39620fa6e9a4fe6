-- convkey._restore_unresolved(p_business_id bigint, p_conversation_id bigint, p_before jsonb)
--     RETURNS boolean
-- For convkey.unmerge(): a side of the undone merge that owns no identity once the merge's
-- identities went back (a legacy row that owned none, or a conversation whose own LID moved to
-- a newer phone's person since) becomes a live unresolved row, as a legacy row is before the
-- backfill: canonical_key NULL, and lead_id, phone_e164, customer_wa_id, push_name and lead_name
-- as they were in p_before (the merge audit's snapshot of that side). Its messages stay with
-- it. The identity guard lets the key become NULL because the row owns no identity; the
-- separation the unmerge records keeps the backfill from joining it to the other side again.
-- Returns false, writing nothing, when the conversation owns an identity (the caller then
-- refreshes it from its identities); true otherwise. Writes only when something changed.
-- Locks: the caller holds the conversation's row lock. SQLSTATEs: none of its own.
CREATE OR REPLACE FUNCTION convkey._restore_unresolved(
    p_business_id bigint,
    p_conversation_id bigint,
    p_before jsonb)
RETURNS boolean
LANGUAGE plpgsql
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM convkey.identity i
                WHERE i.business_id = p_business_id AND i.conversation_id = p_conversation_id) THEN
        RETURN false;
    END IF;
    UPDATE convkey.whatsapp_conversation c
       SET canonical_key = NULL,
           lead_id = (p_before->>'lead_id')::bigint,
           phone_e164 = p_before->>'phone_e164',
           customer_wa_id = p_before->>'customer_wa_id',
           push_name = p_before->>'push_name',
           lead_name = p_before->>'lead_name',
           updated_at = now()
     WHERE c.business_id = p_business_id AND c.id = p_conversation_id
       AND (c.canonical_key, c.lead_id, c.phone_e164, c.customer_wa_id, c.push_name, c.lead_name)
           IS DISTINCT FROM (NULL::text, (p_before->>'lead_id')::bigint, p_before->>'phone_e164',
                             p_before->>'customer_wa_id', p_before->>'push_name', p_before->>'lead_name');
    RETURN true;
END;
$$;

COMMENT ON FUNCTION convkey._restore_unresolved(bigint, bigint, jsonb) IS
    'Internal (unmerge): a side left owning no identity becomes an unresolved row with its pre-merge legacy columns.';
