-- convkey._normalize_phone(p_phone text, p_param text) RETURNS text
-- The phone rule of the SQL side: accepts only numbers that are already international, an
-- optional '+' then digits, the first not 0; applies the subscriber rules (Mexico 521, Brazil
-- ninth digit) and checks the total length is possible for the country calling code (lengths
-- generated from phonenumbers' metadata). Returns '+' and the canonical digits.
-- National and decorated formats ('050-123-4567') are the runner's job (convkey.phone).
-- Locks: none. Raises 22023 (naming p_param) for anything else.
CREATE OR REPLACE FUNCTION convkey._normalize_phone(p_phone text, p_param text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    v_digits text;
BEGIN
    v_digits := btrim(p_phone, E' \t\r\n');
    -- (no bounded repetition in the pattern: see convkey._parse_wa_id)
    IF v_digits !~ '^\+?[1-9][0-9]*$' OR length(ltrim(v_digits, '+')) > 15 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('%s is not an international phone number: %s', p_param, convkey._mask(p_phone)),
            DETAIL = 'The SQL side accepts E.164 (+ and up to 15 digits, the first not 0) or international digits only.',
            HINT = 'Normalize human formats first, e.g. with convkey.phone.normalize_phone() in the runner.';
    END IF;
    v_digits := convkey._canonical_phone_digits(ltrim(v_digits, '+'));
    IF NOT convkey._phone_digits_possible(v_digits) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('%s cannot be a phone number: %s', p_param, convkey._mask(p_phone)),
            DETAIL = 'Its length is not possible for its country calling code (or the code is unknown).',
            HINT = 'A LID is written with its @lid server; pass it as a LID, not as a phone.';
    END IF;
    RETURN '+' || v_digits;
END;
$$;

COMMENT ON FUNCTION convkey._normalize_phone(text, text) IS
    'Internal: check and canonicalize an international phone number (E.164 or digits); 22023 otherwise.';
