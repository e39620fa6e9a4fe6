-- convkey._check_id(p_id bigint, p_param text) RETURNS void
-- Ids passed to the API (conversations, leads, merges) are positive integers.
-- Locks: none. Raises 22023 naming p_param.
CREATE OR REPLACE FUNCTION convkey._check_id(p_id bigint, p_param text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF p_id IS NULL OR p_id <= 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('%s must be a positive integer, got %s', p_param, coalesce(p_id::text, 'NULL')),
            HINT = 'Pass an id returned by convkey (or your CRM''s lead id).';
    END IF;
END;
$$;

COMMENT ON FUNCTION convkey._check_id(bigint, text) IS 'Internal: 22023 unless the id is a positive integer.';
