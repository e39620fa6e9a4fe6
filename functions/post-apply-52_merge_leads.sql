-- convkey.merge_leads(p_business_id bigint, p_from_lead_id bigint, p_into_lead_id bigint) RETURNS bigint
-- The CRM merged two leads: their conversations become one, keyed by the surviving lead
-- (p_into_lead_id); the other lead stays attached, so a later call naming it finds the same
-- conversation. When both leads have conversations the most recent survives (one audit row);
-- when neither has one yet, the merge is remembered for the first conversation either gets.
-- Returns the surviving conversation id, or NULL when neither lead has a conversation yet.
-- Locks: both lead identities' advisory locks, their pending persons', then the conversations'
-- rows in id order. Raises 22023 (bad ids, the same lead twice).
CREATE OR REPLACE FUNCTION convkey.merge_leads(p_business_id bigint, p_from_lead_id bigint, p_into_lead_id bigint)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_values   text[];
    v_from_c   bigint;
    v_into_c   bigint;
    v_from_p   bigint;
    v_into_p   bigint;
    v_survivor bigint;
    v_other    bigint;
    v_settled  boolean;
BEGIN
    PERFORM convkey._check_business_id(p_business_id);
    PERFORM convkey._check_id(p_from_lead_id, 'p_from_lead_id');
    PERFORM convkey._check_id(p_into_lead_id, 'p_into_lead_id');
    IF p_from_lead_id = p_into_lead_id THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('p_from_lead_id and p_into_lead_id are the same lead (%s)', p_from_lead_id),
            HINT = 'Pass the lead the CRM merged away and the lead it merged into.';
    END IF;
    v_values := ARRAY[p_from_lead_id::text, p_into_lead_id::text];
    PERFORM convkey._lock_identities(p_business_id, ARRAY['lead', 'lead'], v_values);
    LOOP
        SELECT max(i.conversation_id) FILTER (WHERE i.value = v_values[1]),
               max(i.conversation_id) FILTER (WHERE i.value = v_values[2]),
               max(i.pending_person_id) FILTER (WHERE i.value = v_values[1]),
               max(i.pending_person_id) FILTER (WHERE i.value = v_values[2])
          INTO v_from_c, v_into_c, v_from_p, v_into_p
          FROM convkey.identity i
         WHERE i.business_id = p_business_id AND i.kind = 'lead' AND i.value = ANY (v_values);
        PERFORM convkey._lock_pending_persons(p_business_id, ARRAY[v_from_p, v_into_p]);
        PERFORM convkey._lock_conversations(p_business_id, ARRAY[v_from_c, v_into_c]);
        SELECT coalesce(bool_and(
                   CASE i.value WHEN v_values[1] THEN i.conversation_id IS NOT DISTINCT FROM v_from_c
                                                      AND i.pending_person_id IS NOT DISTINCT FROM v_from_p
                                ELSE i.conversation_id IS NOT DISTINCT FROM v_into_c
                                     AND i.pending_person_id IS NOT DISTINCT FROM v_into_p END), true)
          INTO v_settled
          FROM convkey.identity i
         WHERE i.business_id = p_business_id AND i.kind = 'lead' AND i.value = ANY (v_values);
        EXIT WHEN v_settled;
    END LOOP;

    IF v_from_c IS NULL AND v_into_c IS NULL THEN
        -- Remember it: both leads become one pending person; the from-lead is marked as merged away.
        v_into_p := coalesce(v_into_p, v_from_p, nextval('convkey.pending_person_seq'));
        IF v_from_p IS NOT NULL AND v_from_p <> v_into_p THEN
            UPDATE convkey.identity i SET pending_person_id = v_into_p, updated_at = now()
             WHERE i.business_id = p_business_id AND i.pending_person_id = v_from_p;
        END IF;
        INSERT INTO convkey.identity AS i (business_id, kind, value, pending_person_id, source)
        VALUES (p_business_id, 'lead', v_values[2], v_into_p, 'merge_leads_into'),
               (p_business_id, 'lead', v_values[1], v_into_p, 'merge_leads')
        ON CONFLICT (business_id, kind, value) DO UPDATE
           SET pending_person_id = EXCLUDED.pending_person_id,
               source = CASE WHEN i.value = v_values[1] THEN 'merge_leads' ELSE i.source END,
               updated_at = now();
        RETURN NULL;
    END IF;

    IF v_from_c IS NOT NULL AND v_into_c IS NOT NULL AND v_from_c <> v_into_c THEN
        SELECT c.id INTO v_survivor FROM convkey.whatsapp_conversation c
         WHERE c.business_id = p_business_id AND c.id IN (v_from_c, v_into_c)
         ORDER BY c.last_message_at DESC NULLS LAST, c.id LIMIT 1;
        v_other := CASE WHEN v_survivor = v_from_c THEN v_into_c ELSE v_from_c END;
        PERFORM convkey._merge_conversations(p_business_id, v_survivor, v_other, 'merge_leads',
            jsonb_build_object('via', 'merge_leads', 'from_lead_id', p_from_lead_id, 'into_lead_id', p_into_lead_id));
    ELSE
        v_survivor := coalesce(v_into_c, v_from_c);
        -- the lead without a conversation (and leads pending with it) joins the survivor
        UPDATE convkey.identity i SET conversation_id = v_survivor, pending_person_id = NULL, updated_at = now()
         WHERE i.business_id = p_business_id AND i.kind = 'lead'
           AND i.pending_person_id = ANY (ARRAY[v_from_p, v_into_p]);
        INSERT INTO convkey.identity AS i (business_id, kind, value, conversation_id, source)
        SELECT p_business_id, 'lead', x.v, v_survivor, 'merge_leads'
          FROM unnest(v_values) AS x(v)
        ON CONFLICT (business_id, kind, value) DO UPDATE
           SET conversation_id = EXCLUDED.conversation_id, pending_person_id = NULL, updated_at = now()
         WHERE i.conversation_id IS DISTINCT FROM EXCLUDED.conversation_id;
    END IF;
    UPDATE convkey.identity i SET source = 'merge_leads', updated_at = now()
     WHERE i.business_id = p_business_id AND i.kind = 'lead' AND i.value = v_values[1] AND i.source <> 'merge_leads';
    PERFORM convkey._set_lead(p_business_id, v_survivor, p_into_lead_id);
    RETURN v_survivor;
END;
$$;

COMMENT ON FUNCTION convkey.merge_leads(bigint, bigint, bigint) IS
    'The CRM merged two leads: one conversation keyed by the surviving lead (merging when both had one). '
    'Returns the survivor, or NULL when neither lead has a conversation yet.';
