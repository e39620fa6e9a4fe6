-- convkey._record_conflict(p_business_id bigint, p_kind text, p_value text,
--     p_other_conversation_id bigint, p_owner_conversation_id bigint, p_rule text) RETURNS void
-- Records that an identity did not join p_other_conversation_id because of a rule
-- ('different_lead': it stays with its owner; 'moved_to_other_phone': it left p_other for the
-- newest phone's person; 'separated': an unmerge keeps the two apart). One row per
-- (identity, other conversation) with first/last seen and a count.
-- Locks: the identity's advisory lock is held by the caller. SQLSTATEs: none of its own.
CREATE OR REPLACE FUNCTION convkey._record_conflict(
    p_business_id bigint,
    p_kind text,
    p_value text,
    p_other_conversation_id bigint,
    p_owner_conversation_id bigint,
    p_rule text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO convkey.identity_conflict AS ic
        (business_id, kind, value, other_conversation_id, owner_conversation_id, rule)
    VALUES (p_business_id, p_kind, p_value, p_other_conversation_id, p_owner_conversation_id, p_rule)
    ON CONFLICT (business_id, kind, value, other_conversation_id) DO UPDATE
       SET last_seen_at = now(), seen_count = ic.seen_count + 1,
           owner_conversation_id = EXCLUDED.owner_conversation_id, rule = EXCLUDED.rule;
END;
$$;

COMMENT ON FUNCTION convkey._record_conflict(bigint, text, text, bigint, bigint, text) IS
    'Internal: count an identity kept out of a conversation by a rule, once per (identity, other conversation).';
