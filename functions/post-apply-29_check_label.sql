-- convkey._check_label(p_value text, p_param text) RETURNS void
-- Short machine labels (merge reasons, link sources): 1 to 64 of a-z, 0-9, '_', '-', '.', ':'.
-- Locks: none. Raises 22023 naming p_param.
CREATE OR REPLACE FUNCTION convkey._check_label(p_value text, p_param text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF p_value IS NULL OR p_value !~ '^[a-z0-9_.:-]+$' OR length(p_value) > 64 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('%s must be 1 to 64 characters of a-z, 0-9, _ . : -, got %s', p_param,
                             coalesce(quote_literal(convkey._mask(p_value)), 'NULL')),
            HINT = 'For example ''manual'', ''message'', ''lid-mapping'' or ''history''.';
    END IF;
END;
$$;

COMMENT ON FUNCTION convkey._check_label(text, text) IS 'Internal: 22023 unless the value is a short lower-case label.';
