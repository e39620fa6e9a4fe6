-- convkey.assign_lead(p_business_id bigint, p_conversation_id bigint, p_lead_id bigint,
--     p_lead_name text DEFAULT NULL) RETURNS bigint
-- Attaches a CRM lead to a conversation: the same row is re-keyed to lead:{b}:{lead}. If the lead
-- already has another conversation, the two merge (the most recent survives). The same lead
-- again is a no-op (the name is updated when given). An id that was merged away works on the
-- live conversation it ended in. Returns the surviving conversation id.
-- Locks: the lead identity's advisory lock, then both conversations' rows in id order.
-- Raises 22023 (bad ids, a conversation that already has a different lead: use merge_leads),
-- 22001 (name over 256 characters), P0002 (no such conversation in this business).
CREATE OR REPLACE FUNCTION convkey.assign_lead(
    p_business_id bigint,
    p_conversation_id bigint,
    p_lead_id bigint,
    p_lead_name text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_conv     bigint;
    v_owner    bigint;
    v_pending  bigint;
    v_lead     bigint;
    v_survivor bigint;
    v_other    bigint;
BEGIN
    PERFORM convkey._check_business_id(p_business_id);
    PERFORM convkey._check_id(p_lead_id, 'p_lead_id');
    IF length(p_lead_name) > 256 THEN
        RAISE EXCEPTION USING ERRCODE = 'string_data_right_truncation',
            MESSAGE = format('p_lead_name is longer than 256 characters (%s)', length(p_lead_name)),
            HINT = 'Lead names are at most 256 characters.';
    END IF;
    v_conv := convkey._live_conversation(p_business_id, p_conversation_id, 'p_conversation_id');
    PERFORM convkey._lock_identities(p_business_id, ARRAY['lead'], ARRAY[p_lead_id::text]);
    LOOP
        SELECT i.conversation_id, i.pending_person_id INTO v_owner, v_pending FROM convkey.identity i
         WHERE i.business_id = p_business_id AND i.kind = 'lead' AND i.value = p_lead_id::text;
        PERFORM convkey._lock_pending_persons(p_business_id, ARRAY[v_pending]);
        PERFORM convkey._lock_conversations(p_business_id, ARRAY[v_conv, v_owner]);
        -- re-check under the locks: a concurrent merge may have tombstoned either side
        EXIT WHEN NOT EXISTS (SELECT 1 FROM convkey.whatsapp_conversation c
                               WHERE c.business_id = p_business_id AND c.id = v_conv AND c.merged_into_id IS NOT NULL)
              AND NOT EXISTS (SELECT 1 FROM convkey.identity i
                               WHERE i.business_id = p_business_id AND i.kind = 'lead' AND i.value = p_lead_id::text
                                 AND (i.conversation_id IS DISTINCT FROM v_owner OR i.pending_person_id IS DISTINCT FROM v_pending));
        v_conv := convkey._live_conversation(p_business_id, v_conv, 'p_conversation_id');
    END LOOP;

    SELECT c.lead_id INTO v_lead FROM convkey.whatsapp_conversation c
     WHERE c.business_id = p_business_id AND c.id = v_conv;
    IF v_owner = v_conv THEN
        v_survivor := v_conv;  -- the same lead again (or one merged into this conversation's lead)
    ELSIF v_lead IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('conversation %s already has lead %s; it cannot also get lead %s', v_conv, v_lead, p_lead_id),
            HINT = 'When the CRM merged the two leads, call convkey.merge_leads().';
    ELSIF v_owner IS NOT NULL THEN
        SELECT c.id INTO v_survivor FROM convkey.whatsapp_conversation c
         WHERE c.business_id = p_business_id AND c.id IN (v_conv, v_owner)
         ORDER BY c.last_message_at DESC NULLS LAST, c.id LIMIT 1;
        v_other := CASE WHEN v_survivor = v_conv THEN v_owner ELSE v_conv END;
        PERFORM convkey._merge_conversations(p_business_id, v_survivor, v_other, 'assign_lead',
                                             jsonb_build_object('via', 'assign_lead', 'lead_id', p_lead_id));
    ELSE
        -- the lead, and leads merged into it while it had no conversation, join this conversation
        INSERT INTO convkey.identity AS i (business_id, kind, value, conversation_id, source)
        SELECT p_business_id, 'lead', p_lead_id::text, v_conv, 'assign_lead'
        ON CONFLICT (business_id, kind, value) DO UPDATE
           SET conversation_id = EXCLUDED.conversation_id, pending_person_id = NULL, updated_at = now();
        IF v_pending IS NOT NULL THEN
            UPDATE convkey.identity i SET conversation_id = v_conv, pending_person_id = NULL, updated_at = now()
             WHERE i.business_id = p_business_id AND i.pending_person_id = v_pending AND i.kind = 'lead';
        END IF;
        v_survivor := v_conv;
        SELECT i.value::bigint INTO v_lead FROM convkey.identity i
         WHERE i.business_id = p_business_id AND i.conversation_id = v_conv AND i.kind = 'lead'
         ORDER BY i.source = 'merge_leads', i.value = p_lead_id::text DESC LIMIT 1;
        PERFORM convkey._set_lead(p_business_id, v_conv, v_lead);
    END IF;
    IF p_lead_name IS NOT NULL THEN
        UPDATE convkey.whatsapp_conversation c SET lead_name = p_lead_name, updated_at = now()
         WHERE c.business_id = p_business_id AND c.id = v_survivor AND c.lead_name IS DISTINCT FROM p_lead_name;
    END IF;
    RETURN v_survivor;
END;
$$;

COMMENT ON FUNCTION convkey.assign_lead(bigint, bigint, bigint, text) IS
    'Attach a CRM lead to a conversation (re-keyed to lead:..., merged with the lead''s other conversation). '
    '22023 when it already has another lead (use merge_leads); P0002 unknown id.';
