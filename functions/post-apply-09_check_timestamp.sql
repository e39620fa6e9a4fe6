-- convkey._check_timestamp(p_at timestamptz, p_param text) RETURNS timestamptz
-- Activity times must be real instants: not NULL and not +/-infinity. Returns p_at (see
-- convkey._check_business_id: callers assign it).
-- Locks: none. Raises 22023 naming p_param.
CREATE OR REPLACE FUNCTION convkey._check_timestamp(p_at timestamptz, p_param text)
RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF p_at IS NULL OR NOT isfinite(p_at) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('%s must be a finite timestamp, got %s', p_param, coalesce(p_at::text, 'NULL')),
            HINT = 'Pass when the message was sent (the provider''s timestamp), or omit it for now().';
    END IF;
    RETURN p_at;
END;
$$;

COMMENT ON FUNCTION convkey._check_timestamp(timestamptz, text) IS 'Internal: 22023 unless the timestamp is finite.';
