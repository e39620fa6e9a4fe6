-- convkey._check_business_id(p_business_id bigint) RETURNS void
-- Every API function names one business; it must be a positive integer.
-- Locks: none. Raises 22023 (NULL or not positive).
CREATE OR REPLACE FUNCTION convkey._check_business_id(p_business_id bigint)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF p_business_id IS NULL OR p_business_id <= 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('p_business_id must be a positive integer, got %s', coalesce(p_business_id::text, 'NULL')),
            HINT = 'Every convkey call names the business (tenant) it works for.';
    END IF;
END;
$$;

COMMENT ON FUNCTION convkey._check_business_id(bigint) IS 'Internal: 22023 unless p_business_id is a positive integer.';
