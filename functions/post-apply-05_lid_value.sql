-- convkey._lid_value(p_lid text, p_param text) RETURNS text
-- A LID given as bare digits or as a LID JID (device dropped) -> its digits.
-- Locks: none. Raises 22023 naming p_param for anything else (a phone JID is not a LID).
CREATE OR REPLACE FUNCTION convkey._lid_value(p_lid text, p_param text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    v_lid text := btrim(p_lid, E' \t\r\n');
BEGIN
    IF v_lid ~ '^[0-9]+$' AND length(v_lid) <= 32 THEN
        RETURN v_lid;
    END IF;
    IF v_lid ~* '@(hosted\.)?lid$' AND length(v_lid) <= 256 THEN
        RETURN (SELECT p.lid FROM convkey._parse_wa_id(v_lid, p_param) AS p);
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
        MESSAGE = format('%s is not a LID: %s', p_param, convkey._mask(p_lid)),
        HINT = 'Pass the LID digits or the LID JID (82399031480511@lid).';
END;
$$;

COMMENT ON FUNCTION convkey._lid_value(text, text) IS 'Internal: LID digits from digits or a LID JID; 22023 otherwise.';
