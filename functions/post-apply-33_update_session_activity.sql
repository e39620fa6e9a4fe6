-- convkey.update_session_activity(p_business_id bigint, p_customer_wa_id text,
--     p_direction text DEFAULT 'in', p_provider text DEFAULT 'baileys', p_lead_id bigint DEFAULT NULL,
--     p_phone_e164 text DEFAULT NULL, p_at timestamptz DEFAULT now()) RETURNS bigint
-- Get-or-create the person's conversation, then record activity at p_at: last_message_at
-- (last_customer_message_at only for 'in') never move backwards; a closed session is re-opened
-- by newer activity in either direction, never by late-delivered older activity.
-- Returns the conversation id.
-- Locks: see convkey._resolve_conversation, plus the conversation's row lock.
-- Raises 22023 (bad direction, identifiers, ids; NULL p_at), 22001 (identifier over 256 chars).
CREATE OR REPLACE FUNCTION convkey.update_session_activity(
    p_business_id bigint,
    p_customer_wa_id text,
    p_direction text DEFAULT 'in',
    p_provider text DEFAULT 'baileys',
    p_lead_id bigint DEFAULT NULL,
    p_phone_e164 text DEFAULT NULL,
    p_at timestamptz DEFAULT now())
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_direction text;
    v_ids       record;
BEGIN
    v_direction := convkey._direction(p_direction);
    p_provider := convkey._check_provider(p_provider);
    p_at := convkey._check_timestamp(p_at, 'p_at');
    v_ids := convkey._call_identities(p_business_id, p_customer_wa_id, p_lead_id, p_phone_e164);
    RETURN convkey._resolve_and_touch(p_business_id, v_ids.o_kinds, v_ids.o_values, p_customer_wa_id,
                                      p_provider, v_direction, p_at, 'update_session_activity');
END;
$$;

COMMENT ON FUNCTION convkey.update_session_activity(bigint, text, text, text, bigint, text, timestamptz) IS
    'Get-or-create, then record activity (monotonic timestamps, re-open on newer activity). Returns the conversation id.';
