-- convkey._identity_of(p_raw text, p_param text, OUT o_kind text, OUT o_value text)
-- The identity an identifier names for links: a phone JID or E.164 phone -> ('phone', '+E164'),
-- a LID JID -> ('lid', digits), a BSUID -> ('bsuid', id).
-- Locks: none. Raises 22023 naming p_param for NULL, groups, status, broadcasts, newsletters,
-- bots and malformed input; 22001 over 256 characters.
CREATE OR REPLACE FUNCTION convkey._identity_of(p_raw text, p_param text, OUT o_kind text, OUT o_value text)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    v_parts record;
BEGIN
    v_parts := convkey._parse_wa_id(p_raw, p_param);
    o_value := coalesce(v_parts.phone_e164, v_parts.lid, v_parts.jid_user);
    o_kind := CASE v_parts.kind WHEN 'pn' THEN 'phone' WHEN 'lid' THEN 'lid' WHEN 'bsuid' THEN 'bsuid' END;
    IF o_kind IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('%s is a %s identifier, not a person: %s', p_param, v_parts.kind, convkey._mask(p_raw)),
            HINT = 'Links join a LID JID, a phone JID, an E.164 phone or a BSUID of one person.';
    END IF;
END;
$$;

COMMENT ON FUNCTION convkey._identity_of(text, text) IS
    'Internal: (kind, value) of a person identifier (phone, lid, bsuid); 22023 for anything else.';
