-- convkey.get_or_create_conversation(p_business_id bigint, p_customer_wa_id text,
--     p_provider text DEFAULT 'baileys', p_lead_id bigint DEFAULT NULL, p_phone_e164 text DEFAULT NULL)
--   RETURNS TABLE(conversation_id bigint, canonical_key text, created boolean)
-- The one conversation of the person named by the arguments (lead, phone from p_phone_e164 or a
-- phone JID, LID from a LID JID, BSUID), created when none exists. Conversations already owning
-- any of these identities are returned (identities attach, a stronger identity re-keys the same
-- row) or merged into the most recent one, under the two rules of convkey._resolve_conversation.
-- Safe under any number of concurrent calls: one conversation per person, no error.
-- Locks: see convkey._resolve_conversation. Raises 22023 for bad input (see
-- convkey._call_identities), 22001 for identifiers over 256 characters; writes nothing then.
CREATE OR REPLACE FUNCTION convkey.get_or_create_conversation(
    p_business_id bigint,
    p_customer_wa_id text,
    p_provider text DEFAULT 'baileys',
    p_lead_id bigint DEFAULT NULL,
    p_phone_e164 text DEFAULT NULL)
RETURNS TABLE(conversation_id bigint, canonical_key text, created boolean)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ids record;
    v_res record;
    v_wa  text;
BEGIN
    p_provider := convkey._check_provider(p_provider);
    v_ids := convkey._call_identities(p_business_id, p_customer_wa_id, p_lead_id, p_phone_e164);
    LOOP
        v_res := convkey._resolve_conversation(p_business_id, v_ids.o_kinds, v_ids.o_values,
                                               p_customer_wa_id, p_provider, now(), 'get_or_create');
        SELECT c.id, c.canonical_key, v_res.o_created, c.customer_wa_id
          INTO conversation_id, canonical_key, created, v_wa
          FROM convkey.whatsapp_conversation c
         WHERE c.business_id = p_business_id AND c.id = v_res.o_conversation_id AND c.merged_into_id IS NULL;
        IF FOUND AND p_customer_wa_id IS NOT NULL AND v_wa IS DISTINCT FROM p_customer_wa_id THEN
            -- Remember the identifier form last seen (written only when it changed).
            UPDATE convkey.whatsapp_conversation c
               SET customer_wa_id = p_customer_wa_id, updated_at = now()
             WHERE c.business_id = p_business_id AND c.id = v_res.o_conversation_id AND c.merged_into_id IS NULL;
        END IF;
        -- Not found: a concurrent merge tombstoned it between our read and now; resolve again.
        EXIT WHEN FOUND;
    END LOOP;
    RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION convkey.get_or_create_conversation(bigint, text, text, bigint, text) IS
    'The conversation of the person named by a WhatsApp id, lead and/or phone; created, re-keyed or merged as '
    'needed, race-free. Returns (conversation_id, canonical_key, created). 22023/22001 on bad input.';
