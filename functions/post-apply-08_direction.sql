-- convkey._direction(p_direction text) RETURNS text
-- 'in' or 'out'; the legacy spellings 'inbound'/'outbound' are accepted (any ASCII case: the
-- folding is the "C" collation's, so no locale turns a look-alike such as 'İN' into 'in').
-- Locks: none. Raises 22023 for anything else, NULL included.
CREATE OR REPLACE FUNCTION convkey._direction(p_direction text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    CASE lower(p_direction COLLATE "C")
        WHEN 'in', 'inbound' THEN RETURN 'in';
        WHEN 'out', 'outbound' THEN RETURN 'out';
        ELSE
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('p_direction must be ''in'' or ''out'', got %s',
                                 coalesce(quote_literal(convkey._mask(p_direction)), 'NULL')),
                HINT = '''in'' is the customer writing, ''out'' is the business (bot or human) writing.';
    END CASE;
END;
$$;

COMMENT ON FUNCTION convkey._direction(text) IS 'Internal: in/out from in, out, inbound, outbound; 22023 otherwise.';
