-- convkey._check_timestamp(p_at timestamptz, p_param text) RETURNS void
-- Activity times must be real instants: not NULL and not +/-infinity.
-- Locks: none. Raises 22023 naming p_param.
CREATE OR REPLACE FUNCTION convkey._check_timestamp(p_at timestamptz, p_param text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF p_at IS NULL OR NOT isfinite(p_at) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('%s must be a finite timestamp, got %s', p_param, coalesce(p_at::text, 'NULL')),
            HINT = 'Pass when the message was sent (the provider''s timestamp), or omit it for now().';
    END IF;
END;
$$;

COMMENT ON FUNCTION convkey._check_timestamp(timestamptz, text) IS 'Internal: 22023 unless the timestamp is finite.';
