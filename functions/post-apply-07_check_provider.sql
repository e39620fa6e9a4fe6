-- convkey._check_provider(p_provider text) RETURNS text
-- The provider names the WhatsApp gateway (baileys, cloud, ...): 1 to 64 printable characters.
-- Returns it (see convkey._check_business_id: callers assign it).
-- Locks: none. Raises 22023 (NULL, empty, too long or with control characters).
CREATE OR REPLACE FUNCTION convkey._check_provider(p_provider text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF p_provider IS NULL OR p_provider !~ '^[A-Za-z0-9._-]+$' OR length(p_provider) > 64 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('p_provider must be 1 to 64 letters, digits, dots, dashes or underscores, got %s',
                             coalesce(quote_literal(convkey._mask(p_provider)), 'NULL')),
            HINT = 'Use the gateway''s name, e.g. ''baileys'' (the default) or ''cloud''.';
    END IF;
    RETURN p_provider;
END;
$$;

COMMENT ON FUNCTION convkey._check_provider(text) IS 'Internal: 22023 unless p_provider is a short plain name.';
