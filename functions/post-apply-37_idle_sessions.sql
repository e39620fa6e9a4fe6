-- convkey.idle_sessions(p_business_id bigint, p_idle interval DEFAULT '5 minutes') RETURNS SETOF bigint
-- Open live conversations whose last customer message (or, without one, the session start) is
-- older than p_idle: the summary job's work list, in id order.
-- Locks: none. Raises 22023 (bad business id; p_idle NULL or negative).
CREATE OR REPLACE FUNCTION convkey.idle_sessions(p_business_id bigint, p_idle interval DEFAULT '5 minutes')
RETURNS SETOF bigint
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM convkey._check_business_id(p_business_id);
    IF p_idle IS NULL OR p_idle < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('p_idle must be a non-negative interval, got %s', coalesce(p_idle::text, 'NULL')),
            HINT = 'For example interval ''5 minutes''.';
    END IF;
    RETURN QUERY
        SELECT c.id FROM convkey.whatsapp_conversation c
         WHERE c.business_id = p_business_id AND c.is_open AND c.merged_into_id IS NULL
           -- an interval longer than the timestamp range (178000000 years) would overflow: nothing is that idle
           AND coalesce(c.last_customer_message_at, c.session_started_at)
               < now() - least(p_idle, now() - '4714-11-24 00:00:00+00 BC'::timestamptz)
         ORDER BY c.id;
END;
$$;

COMMENT ON FUNCTION convkey.idle_sessions(bigint, interval) IS
    'Open conversations idle for longer than p_idle (by last customer message, else session start).';
