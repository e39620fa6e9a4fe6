-- convkey._backfill_merge_row(p_business_id bigint, p_conversation_id bigint) RETURNS text
-- Phase 2 of the backfill for one staged 'deferred' legacy row: its identities (staged by phase
-- 1) are resolved exactly as get-or-create resolves a call, with the row itself taking part
-- (convkey._resolve_conversation's p_self): conversations sharing an identity merge into the
-- most recent, through the same audited merge primitive (reason 'backfill'), under the same
-- rules (different leads never merge; two phones never merge through a LID; separations hold).
-- Separations hold for the row's lead too: the resolver joins the conversation of a call's lead
-- first and without asking (the CRM names the person), but a row an unmerge left unresolved
-- keeps its legacy lead_id, and that must not undo the unmerge. When the row's lead belongs to
-- a conversation separated from it, the row joins nothing (its lead names the person it was
-- split from): it stays unresolved and a 'separated' conflict is counted.
-- Returns 'merged' (the row became a tombstone of a live conversation), 'resolved' (it survived
-- and got its key), 'conflict' (nothing it may join; staged as unresolvable with the reason) or
-- 'gone' (no longer staged or no longer unresolved). Data errors of the row are staged as
-- unresolvable instead of raised; lock and serialization failures are raised for a retry.
-- Locks: the row, then those of convkey._resolve_conversation (for a separated row with a lead,
-- first the identities' advisory locks and the lead owner's row lock, so that the owner cannot
-- change before the resolver runs). SQLSTATEs: 40001 when the lead's owner never settles
-- (raised for a retry, not expected).
CREATE OR REPLACE FUNCTION convkey._backfill_merge_row(p_business_id bigint, p_conversation_id bigint)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    v_kinds   text[];
    v_vals    text[];
    v_key     text;
    v_merged  bigint;
    v_owner   bigint;
    v_attempt int := 0;
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
    IF v_kinds[1] = 'lead' AND EXISTS (
            SELECT 1 FROM convkey.conversation_separation s
             WHERE s.business_id = p_business_id AND (s.low_id = p_conversation_id OR s.high_id = p_conversation_id)) THEN
        PERFORM convkey._lock_identities(p_business_id, v_kinds, v_vals);
        LOOP
            v_attempt := v_attempt + 1;
            SELECT i.conversation_id INTO v_owner FROM convkey.identity i
             WHERE i.business_id = p_business_id AND i.kind = 'lead' AND i.value = v_vals[1];
            PERFORM convkey._lock_conversations(p_business_id, ARRAY[v_owner]);
            EXIT WHEN v_owner IS NOT DISTINCT FROM (
                SELECT i.conversation_id FROM convkey.identity i
                 WHERE i.business_id = p_business_id AND i.kind = 'lead' AND i.value = v_vals[1]);
            IF v_attempt >= 50 THEN
                RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
                    MESSAGE = format('convkey could not settle the owner of the lead of conversation %s',
                                     p_conversation_id),
                    HINT = 'Run the backfill again.';
            END IF;
        END LOOP;
        IF v_owner IS NOT NULL AND EXISTS (
                SELECT 1 FROM convkey.conversation_separation s
                 WHERE s.business_id = p_business_id
                   AND s.low_id = least(v_owner, p_conversation_id) AND s.high_id = greatest(v_owner, p_conversation_id)) THEN
            PERFORM convkey._record_conflict(p_business_id, 'lead', v_vals[1], p_conversation_id, v_owner, 'separated');
            v_reason := 'its lead belongs to a conversation an unmerge separated it from';
        END IF;
    END IF;
    IF v_reason IS NULL THEN
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
    END IF;
    SELECT c.canonical_key, c.merged_into_id INTO v_key, v_merged FROM convkey.whatsapp_conversation c
     WHERE c.business_id = p_business_id AND c.id = p_conversation_id;
    IF v_merged IS NULL AND v_key IS NULL THEN
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
