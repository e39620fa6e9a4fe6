-- convkey._live_conversation(p_business_id bigint, p_conversation_id bigint, p_param text) RETURNS bigint
-- Follows merged_into_id from a conversation of the business to the live conversation it ended
-- in. Only the given business is read: an id of another business does not exist here.
-- Locks: none. Raises 22023 (bad business id, NULL or non-positive id, naming p_param),
-- P0002 (no such conversation in this business).
CREATE OR REPLACE FUNCTION convkey._live_conversation(p_business_id bigint, p_conversation_id bigint, p_param text)
RETURNS bigint
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    v_id     bigint := p_conversation_id;
    v_next   bigint;
    v_hops   int := 0;
BEGIN
    PERFORM convkey._check_business_id(p_business_id);
    IF p_conversation_id IS NULL OR p_conversation_id <= 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('%s must be a positive integer, got %s', p_param, coalesce(p_conversation_id::text, 'NULL')),
            HINT = 'Pass a conversation id returned by convkey.';
    END IF;
    LOOP
        SELECT c.merged_into_id INTO v_next FROM convkey.whatsapp_conversation c
         WHERE c.business_id = p_business_id AND c.id = v_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'no_data_found',
                MESSAGE = format('conversation %s does not exist in business %s', v_id, p_business_id),
                HINT = 'Conversation ids belong to one business; check p_business_id.';
        END IF;
        IF v_next IS NULL THEN
            RETURN v_id;
        END IF;
        v_id := v_next;
        v_hops := v_hops + 1;
        IF v_hops > 10000 THEN
            RAISE EXCEPTION USING ERRCODE = 'data_corrupted',
                MESSAGE = format('merged_into_id of conversation %s forms a cycle', p_conversation_id),
                HINT = 'Inspect convkey.conversation_merge for this conversation.';
        END IF;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION convkey._live_conversation(bigint, bigint, text) IS
    'Internal: follow tombstones to the live conversation; P0002 when the id is not in the business.';
