-- convkey._backfill_merge_row(p_business_id bigint, p_conversation_id bigint) RETURNS text
-- Phase 2 of the backfill for one staged 'deferred' legacy row: its identities (staged by phase
-- 1) are resolved exactly as get-or-create resolves a call, with the row itself taking part
-- (convkey._resolve_conversation's p_self): conversations sharing an identity merge into the
-- most recent, through the same audited merge primitive (reason 'backfill'), under the same
-- rules (different leads never merge; two phones never merge through a LID; separations hold).
-- Separations hold for the row's lead too (see convkey._resolve_conversation): a row whose lead
-- belongs to a conversation an unmerge separated it from joins nothing; it is staged as
-- unresolvable with that reason.
-- Returns 'merged' (the row became a tombstone of a live conversation), 'resolved' (it survived
-- and got its key), 'conflict' (nothing it may join; staged as unresolvable with the reason) or
-- 'gone' (no longer staged or no longer unresolved). Data errors of the row are staged as
-- unresolvable instead of raised; lock and serialization failures are raised for a retry.
-- Locks: the row, then those of convkey._resolve_conversation. SQLSTATEs: none of its own.
CREATE OR REPLACE FUNCTION convkey._backfill_merge_row(p_business_id bigint, p_conversation_id bigint)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    v_kinds   text[];
    v_vals    text[];
    v_key     text;
    v_merged  bigint;
    v_reason  text;
BEGIN
    SELECT r.kinds, r.vals INTO v_kinds, v_vals FROM convkey.backfill_row r
     WHERE r.business_id = p_business_id AND r.conversation_id = p_conversation_id AND r.status = 'deferred';
    IF NOT FOUND THEN
        RETURN 'gone';
    END IF;
    PERFORM 1 FROM convkey.whatsapp_conversation c
      WHERE c.business_id = p_business_id AND c.id = p_conversation_id
        AND c.canonical_key IS NULL AND c.merged_into_id IS NULL
        FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        DELETE FROM convkey.backfill_row r WHERE r.business_id = p_business_id AND r.conversation_id = p_conversation_id;
        RETURN 'gone';
    END IF;
    BEGIN
        PERFORM convkey._resolve_conversation(p_business_id, v_kinds, v_vals, NULL, 'baileys', NULL, 'backfill',
                                              p_conversation_id);
    EXCEPTION
        WHEN deadlock_detected OR serialization_failure OR lock_not_available OR query_canceled THEN
            RAISE;
        WHEN OTHERS THEN
            UPDATE convkey.backfill_row r
               SET status = 'unresolvable', reason = format('error %s: %s', SQLSTATE, SQLERRM), updated_at = now()
             WHERE r.business_id = p_business_id AND r.conversation_id = p_conversation_id;
            RETURN 'conflict';
    END;
    SELECT c.canonical_key, c.merged_into_id INTO v_key, v_merged FROM convkey.whatsapp_conversation c
     WHERE c.business_id = p_business_id AND c.id = p_conversation_id;
    IF v_merged IS NULL AND v_key IS NULL THEN
        -- the resolver's locks are still held: the lead's owner is the one it saw
        SELECT 'its lead belongs to a conversation an unmerge separated it from' INTO v_reason
          FROM convkey.identity i
          JOIN convkey.conversation_separation s
            ON s.business_id = i.business_id
           AND s.low_id = least(i.conversation_id, p_conversation_id)
           AND s.high_id = greatest(i.conversation_id, p_conversation_id)
         WHERE v_kinds[1] = 'lead' AND i.business_id = p_business_id AND i.kind = 'lead' AND i.value = v_vals[1];
        UPDATE convkey.backfill_row r
           SET status = 'unresolvable', updated_at = now(),
               reason = coalesce(v_reason, 'its identities belong to conversations it may not join '
                                           '(another lead, another phone, or a separation)')
         WHERE r.business_id = p_business_id AND r.conversation_id = p_conversation_id;
        RETURN 'conflict';
    END IF;
    DELETE FROM convkey.backfill_row r WHERE r.business_id = p_business_id AND r.conversation_id = p_conversation_id;
    RETURN CASE WHEN v_merged IS NOT NULL THEN 'merged' ELSE 'resolved' END;
END;
$$;

COMMENT ON FUNCTION convkey._backfill_merge_row(bigint, bigint) IS
    'Internal backfill phase 2: resolve one deferred legacy row through the get-or-create resolver (merges audited).';
