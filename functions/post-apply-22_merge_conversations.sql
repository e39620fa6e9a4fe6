-- convkey._merge_conversations(p_business_id bigint, p_primary_id bigint, p_duplicate_id bigint,
--     p_reason text, p_triggered_by jsonb DEFAULT '{}') RETURNS bigint
-- The merge primitive under get-or-create, links, lead merges and the backfill:
-- convkey._merge_conversations_many for one pair (one definition of what a merge does). Every
-- message and identity of the duplicate moves to the primary, the duplicate becomes a tombstone,
-- and one audit row in convkey.conversation_merge records what moved and both rows before, so it
-- can be undone. Returns the audit row's id.
-- Locks: the caller holds both conversations' row locks (taken in id order) and has checked
-- that both are live, distinct, of one business and not of two different leads.
-- SQLSTATEs: none of its own.
CREATE OR REPLACE FUNCTION convkey._merge_conversations(
    p_business_id bigint,
    p_primary_id bigint,
    p_duplicate_id bigint,
    p_reason text,
    p_triggered_by jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql
AS $$
BEGIN
    RETURN (convkey._merge_conversations_many(p_business_id, ARRAY[p_primary_id], ARRAY[p_duplicate_id], p_reason,
                                              ARRAY[coalesce(p_triggered_by, '{}')]))[1];
END;
$$;

COMMENT ON FUNCTION convkey._merge_conversations(bigint, bigint, bigint, text, jsonb) IS
    'Internal merge primitive: move messages and identities to the primary, tombstone the duplicate, audit.';
