-- convkey.merge_conversations(p_business_id bigint, p_primary_id bigint, p_duplicate_id bigint,
--     p_reason text DEFAULT 'manual') RETURNS bigint
-- Merges p_duplicate_id into p_primary_id (the caller chooses the survivor): messages and
-- identities move, the primary keeps its phone (or takes the duplicate's), takes the lead if it
-- had none, recomputes its key and takes the union of the timestamps; the duplicate stays as a
-- tombstone; one audit row in convkey.conversation_merge. An explicit merge removes a
-- separation left by an earlier unmerge of the two. Returns the primary's id.
-- Locks: both rows, in id order. Raises 22023 (bad ids or reason, the same id twice, a
-- tombstone on either side, two different leads: use merge_leads), P0002 (an id not in this
-- business). Nothing is written when it raises.
CREATE OR REPLACE FUNCTION convkey.merge_conversations(
    p_business_id bigint,
    p_primary_id bigint,
    p_duplicate_id bigint,
    p_reason text DEFAULT 'manual')
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_primary   convkey.whatsapp_conversation%ROWTYPE;
    v_duplicate convkey.whatsapp_conversation%ROWTYPE;
BEGIN
    PERFORM convkey._check_business_id(p_business_id);
    PERFORM convkey._check_id(p_primary_id, 'p_primary_id');
    PERFORM convkey._check_id(p_duplicate_id, 'p_duplicate_id');
    PERFORM convkey._check_label(p_reason, 'p_reason');
    IF p_primary_id = p_duplicate_id THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('p_primary_id and p_duplicate_id are the same conversation (%s)', p_primary_id),
            HINT = 'Pass two different conversations.';
    END IF;
    PERFORM convkey._lock_conversations(p_business_id, ARRAY[p_primary_id, p_duplicate_id]);
    SELECT * INTO v_primary FROM convkey.whatsapp_conversation c
     WHERE c.business_id = p_business_id AND c.id = p_primary_id;
    SELECT * INTO v_duplicate FROM convkey.whatsapp_conversation c
     WHERE c.business_id = p_business_id AND c.id = p_duplicate_id;
    IF v_primary.id IS NULL OR v_duplicate.id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found',
            MESSAGE = format('conversation %s does not exist in business %s',
                             CASE WHEN v_primary.id IS NULL THEN p_primary_id ELSE p_duplicate_id END, p_business_id),
            HINT = 'Conversation ids belong to one business; check p_business_id.';
    END IF;
    IF v_primary.merged_into_id IS NOT NULL OR v_duplicate.merged_into_id IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('conversation %s was merged away (a tombstone)',
                             CASE WHEN v_primary.merged_into_id IS NOT NULL THEN p_primary_id ELSE p_duplicate_id END),
            HINT = 'Resolve it first with convkey.resolve_conversation_id().';
    END IF;
    IF v_primary.lead_id IS NOT NULL AND v_duplicate.lead_id IS NOT NULL AND v_primary.lead_id <> v_duplicate.lead_id THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('conversations %s and %s belong to different leads (%s, %s)',
                             p_primary_id, p_duplicate_id, v_primary.lead_id, v_duplicate.lead_id),
            HINT = 'Different leads never merge implicitly: use convkey.merge_leads() when the CRM merged them.';
    END IF;
    DELETE FROM convkey.conversation_separation s
     WHERE s.business_id = p_business_id
       AND s.low_id = least(p_primary_id, p_duplicate_id) AND s.high_id = greatest(p_primary_id, p_duplicate_id);
    PERFORM convkey._merge_conversations(p_business_id, p_primary_id, p_duplicate_id, p_reason,
                                         jsonb_build_object('via', 'merge_conversations'));
    RETURN p_primary_id;
END;
$$;

COMMENT ON FUNCTION convkey.merge_conversations(bigint, bigint, bigint, text) IS
    'Merge a duplicate conversation into a chosen primary (messages, identities, audit). 22023: tombstones, '
    'same id, different leads; P0002: unknown id.';
