-- convkey.close_session(p_business_id bigint, p_conversation_id bigint, p_summary text DEFAULT NULL)
--   RETURNS void
-- Ends the session for the summary job: is_open false, summary_created true, summary stored when
-- given. An id merged away closes the live conversation it ended in.
-- Locks: the conversation's row lock. Raises 22023 (bad ids), 22001 (summary over 64 KB),
-- P0002 (no such conversation in this business).
CREATE OR REPLACE FUNCTION convkey.close_session(
    p_business_id bigint,
    p_conversation_id bigint,
    p_summary text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    IF octet_length(p_summary) > 65536 THEN
        RAISE EXCEPTION USING ERRCODE = 'string_data_right_truncation',
            MESSAGE = format('p_summary is larger than 64 KB (%s bytes)', octet_length(p_summary)),
            HINT = 'Summaries are at most 64 KB.';
    END IF;
    v_id := convkey._lock_live_conversation(p_business_id, p_conversation_id, 'p_conversation_id');
    UPDATE convkey.whatsapp_conversation c
       SET is_open = false, summary_created = true, summary = coalesce(p_summary, c.summary), updated_at = now()
     WHERE c.business_id = p_business_id AND c.id = v_id;
END;
$$;

COMMENT ON FUNCTION convkey.close_session(bigint, bigint, text) IS
    'End a conversation''s session for the summary job (is_open false, summary_created true, summary kept).';
