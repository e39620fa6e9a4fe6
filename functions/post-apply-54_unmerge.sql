-- convkey.unmerge(p_business_id bigint, p_merge_id bigint) RETURNS bigint
-- Undoes one merge: the duplicate comes back live with the messages and identities that merge
-- moved (messages that arrived after the merge stay with the primary), both keys and the
-- primary's lead and phone are restored from the identities each side owns again, and a
-- separation is recorded so that automatic links and the backfill never join the two again (a
-- manual link or merge does). A side left owning no identity (a legacy row the backfill merged,
-- a conversation whose LID moved to a newer phone's person since) stays live and unresolved:
-- key NULL, its messages, and the legacy columns of the audit's snapshot before the merge
-- (convkey._restore_unresolved). The audit row is kept and marked undone. Returns the restored
-- conversation's id.
-- Locks: the audit row, then both conversations' rows in id order.
-- Raises 22023 (bad ids), P0002 (no such merge in this business), 55000 (already undone, or a
-- later merge took the primary away: the message names the merge to undo first).
CREATE OR REPLACE FUNCTION convkey.unmerge(p_business_id bigint, p_merge_id bigint)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_merge   convkey.conversation_merge%ROWTYPE;
    v_before  jsonb;
    v_pbefore jsonb;
    v_primary convkey.whatsapp_conversation%ROWTYPE;
    v_dup     convkey.whatsapp_conversation%ROWTYPE;
    v_later   bigint;
BEGIN
    PERFORM convkey._check_business_id(p_business_id);
    PERFORM convkey._check_id(p_merge_id, 'p_merge_id');
    SELECT * INTO v_merge FROM convkey.conversation_merge m
     WHERE m.business_id = p_business_id AND m.id = p_merge_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found',
            MESSAGE = format('merge %s does not exist in business %s', p_merge_id, p_business_id),
            HINT = 'Merge ids are the ids of convkey.conversation_merge rows of this business.';
    END IF;
    IF v_merge.undone_at IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('merge %s was already undone at %s', p_merge_id, v_merge.undone_at),
            HINT = 'Nothing to do.';
    END IF;
    PERFORM convkey._lock_conversations(p_business_id, ARRAY[v_merge.primary_id, v_merge.duplicate_id]);
    SELECT * INTO v_primary FROM convkey.whatsapp_conversation c
     WHERE c.business_id = p_business_id AND c.id = v_merge.primary_id;
    SELECT * INTO v_dup FROM convkey.whatsapp_conversation c
     WHERE c.business_id = p_business_id AND c.id = v_merge.duplicate_id;
    IF v_primary.merged_into_id IS NOT NULL THEN
        SELECT m.id INTO v_later FROM convkey.conversation_merge m
         WHERE m.business_id = p_business_id AND m.duplicate_id = v_merge.primary_id AND m.undone_at IS NULL
         ORDER BY m.id DESC LIMIT 1;
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('cannot undo merge %s: conversation %s was merged into %s later (merge %s); undo merge %s first',
                             p_merge_id, v_merge.primary_id, v_primary.merged_into_id, v_later, v_later),
            HINT = 'Undo later merges first, newest first.';
    END IF;
    IF v_dup.merged_into_id IS DISTINCT FROM v_merge.primary_id THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('cannot undo merge %s: conversation %s is no longer merged into %s',
                             p_merge_id, v_merge.duplicate_id, v_merge.primary_id),
            HINT = 'Inspect convkey.conversation_merge for both conversations.';
    END IF;
    v_before := v_merge.duplicate_before;
    v_pbefore := v_merge.primary_before;

    UPDATE convkey.whatsapp_message m SET conversation_id = v_merge.duplicate_id
     WHERE m.business_id = p_business_id AND m.id = ANY (v_merge.moved_message_ids)
       AND m.conversation_id = v_merge.primary_id;
    UPDATE convkey.identity i SET conversation_id = v_merge.duplicate_id, updated_at = now()
      FROM jsonb_to_recordset(v_merge.moved_identities) AS x(kind text, value text)
     WHERE i.business_id = p_business_id AND i.kind = x.kind AND i.value = x.value
       AND i.conversation_id = v_merge.primary_id;

    -- the primary first: its key may be the one the duplicate gets back
    UPDATE convkey.whatsapp_conversation c
       SET push_name = CASE WHEN v_pbefore->>'push_name' IS NULL AND c.push_name IS NOT DISTINCT FROM v_before->>'push_name'
                            THEN NULL ELSE c.push_name END,
           lead_name = CASE WHEN v_pbefore->>'lead_name' IS NULL AND c.lead_name IS NOT DISTINCT FROM v_before->>'lead_name'
                            THEN NULL ELSE c.lead_name END,
           customer_wa_id = CASE WHEN v_pbefore->>'customer_wa_id' IS NULL
                                  AND c.customer_wa_id IS NOT DISTINCT FROM v_before->>'customer_wa_id'
                                 THEN NULL ELSE c.customer_wa_id END,
           session_started_at = (v_pbefore->>'session_started_at')::timestamptz,
           last_message_at = greatest((v_pbefore->>'last_message_at')::timestamptz,
               (SELECT max(m.sent_at) FROM convkey.whatsapp_message m
                 WHERE m.business_id = p_business_id AND m.conversation_id = c.id)),
           last_customer_message_at = greatest((v_pbefore->>'last_customer_message_at')::timestamptz,
               (SELECT max(m.sent_at) FROM convkey.whatsapp_message m
                 WHERE m.business_id = p_business_id AND m.conversation_id = c.id AND m.direction = 'in')),
           updated_at = now()
     WHERE c.business_id = p_business_id AND c.id = v_merge.primary_id;
    IF NOT convkey._restore_unresolved(p_business_id, v_merge.primary_id, v_pbefore) THEN
        PERFORM convkey._refresh_conversation(p_business_id, v_merge.primary_id,
                                              (v_pbefore->>'lead_id')::bigint, v_pbefore->>'phone_e164');
    END IF;

    UPDATE convkey.whatsapp_conversation c
       SET merged_into_id = NULL,
           is_open = (v_before->>'is_open')::boolean,
           summary_created = (v_before->>'summary_created')::boolean,
           summary = v_before->>'summary',
           push_name = v_before->>'push_name',
           lead_name = v_before->>'lead_name',
           customer_wa_id = v_before->>'customer_wa_id',
           provider = v_before->>'provider',
           session_started_at = (v_before->>'session_started_at')::timestamptz,
           last_message_at = (v_before->>'last_message_at')::timestamptz,
           last_customer_message_at = (v_before->>'last_customer_message_at')::timestamptz,
           last_read_at = (v_before->>'last_read_at')::timestamptz,
           updated_at = now()
     WHERE c.business_id = p_business_id AND c.id = v_merge.duplicate_id;
    IF NOT convkey._restore_unresolved(p_business_id, v_merge.duplicate_id, v_before) THEN
        PERFORM convkey._refresh_conversation(p_business_id, v_merge.duplicate_id,
                                              (v_before->>'lead_id')::bigint, v_before->>'phone_e164');
    END IF;

    INSERT INTO convkey.conversation_separation (business_id, low_id, high_id, merge_id)
    VALUES (p_business_id, least(v_merge.primary_id, v_merge.duplicate_id),
            greatest(v_merge.primary_id, v_merge.duplicate_id), p_merge_id)
    ON CONFLICT (business_id, low_id, high_id) DO UPDATE SET merge_id = EXCLUDED.merge_id, created_at = now();
    UPDATE convkey.conversation_merge m SET undone_at = now()
     WHERE m.business_id = p_business_id AND m.id = p_merge_id;
    RETURN v_merge.duplicate_id;
END;
$$;

COMMENT ON FUNCTION convkey.unmerge(bigint, bigint) IS
    'Undo a merge: restore the duplicate with what that merge moved, restore both keys (a side left with no '
    'identity stays live with key NULL and its legacy columns), keep them separated from automatic links. '
    '55000 when later merges must be undone first; P0002 unknown merge.';
