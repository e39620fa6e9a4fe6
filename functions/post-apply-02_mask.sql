-- convkey._mask(p_value text) RETURNS text
-- Masks an identifier for error messages and logs: every digit but the last four becomes '*',
-- every character outside printable ASCII becomes '?' (control characters, direction marks, and
-- digits of other scripts such as fullwidth or Arabic-Indic, which would otherwise show a phone
-- unmasked), and the result is cut to 64 characters. Never raises.
-- Locks: none. SQLSTATEs: none.
CREATE OR REPLACE FUNCTION convkey._mask(p_value text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    v_digits int;
    v_seen   int := 0;
    v_out    text := '';
    v_ch     text;
BEGIN
    IF p_value IS NULL THEN
        RETURN '<null>';
    END IF;
    v_digits := length(regexp_replace(p_value, '[^0-9]', '', 'g'));
    FOREACH v_ch IN ARRAY regexp_split_to_array(left(p_value, 64), '') LOOP
        IF v_ch ~ '[0-9]' THEN
            v_seen := v_seen + 1;
            IF v_digits < 5 OR v_seen <= v_digits - 4 THEN
                v_ch := '*';
            END IF;
        ELSIF v_ch !~ '^[ -~]$' THEN
            v_ch := '?';
        END IF;
        v_out := v_out || v_ch;
    END LOOP;
    IF length(p_value) > 64 THEN
        v_out := v_out || '...';
    END IF;
    RETURN v_out;
END;
$$;

COMMENT ON FUNCTION convkey._mask(text) IS
    'Internal: mask an identifier for messages and logs (all digits but the last four become *).';
