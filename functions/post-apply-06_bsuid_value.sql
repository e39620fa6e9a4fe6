-- convkey._bsuid_value(p_bsuid text, p_param text) RETURNS text
-- A Cloud API business-scoped user id (two letters, optional .ENT, dot, digits), upper-cased
-- (ASCII only: the "C" collation, so no locale turns a look-alike such as 'ı' into 'I').
-- Locks: none. Raises 22023 naming p_param for anything else.
CREATE OR REPLACE FUNCTION convkey._bsuid_value(p_bsuid text, p_param text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    v_bsuid text := upper(btrim(p_bsuid, E' \t\r\n') COLLATE "C");
BEGIN
    IF v_bsuid ~ '^[A-Z][A-Z](\.ENT)?\.[0-9]+$' AND length(v_bsuid) - length(rtrim(v_bsuid, '0123456789')) <= 64 THEN
        RETURN v_bsuid;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
        MESSAGE = format('%s is not a business-scoped user id: %s', p_param, convkey._mask(p_bsuid)),
        HINT = 'A BSUID looks like US.13491208655302741918.';
END;
$$;

COMMENT ON FUNCTION convkey._bsuid_value(text, text) IS 'Internal: validated, upper-cased BSUID; 22023 otherwise.';
