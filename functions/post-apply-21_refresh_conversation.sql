-- convkey._refresh_conversation(p_business_id bigint, p_conversation_id bigint,
--     p_prefer_lead bigint DEFAULT NULL, p_prefer_phone text DEFAULT NULL) RETURNS text
-- convkey._refresh_conversations for one conversation (one definition of the rules): recomputes
-- its lead_id, phone_e164 and canonical_key from the identities it owns, preferring
-- p_prefer_lead/p_prefer_phone when it has none of its own (a merge passes the duplicate's).
-- Writes only when something changed. Returns the key.
-- Locks: the caller holds the conversation's row lock. SQLSTATEs: none of its own.
CREATE OR REPLACE FUNCTION convkey._refresh_conversation(
    p_business_id bigint,
    p_conversation_id bigint,
    p_prefer_lead bigint DEFAULT NULL,
    p_prefer_phone text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
AS $$
BEGIN
    RETURN (SELECT r.canonical_key
              FROM convkey._refresh_conversations(p_business_id, ARRAY[p_conversation_id], ARRAY[p_prefer_lead],
                                                  ARRAY[p_prefer_phone]) AS r);
END;
$$;

COMMENT ON FUNCTION convkey._refresh_conversation(bigint, bigint, bigint, text) IS
    'Internal: recompute lead_id, phone_e164 and canonical_key of a conversation from its identities.';
