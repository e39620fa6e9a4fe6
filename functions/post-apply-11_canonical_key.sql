-- convkey.canonical_key(p_business_id bigint, p_lead_id bigint DEFAULT NULL,
--     p_phone_e164 text DEFAULT NULL, p_lid text DEFAULT NULL, p_bsuid text DEFAULT NULL) RETURNS text
-- The conversation key of a person from its strongest identifier: lead > phone > lid > bsuid:
-- lead:{b}:{lead}, phone:{b}:{+E164}, lid:{b}:{digits}, bsuid:{b}:{id}. Every given identifier is
-- validated, even when a stronger one decides the key.
-- Locks: none. Raises 22023 naming the parameter: business_id NULL or not positive, lead_id not
-- positive, a phone that is not international or has an impossible length, a LID that is not
-- digits or a LID JID, a malformed BSUID, or no identifier at all.
CREATE OR REPLACE FUNCTION convkey.canonical_key(
    p_business_id bigint,
    p_lead_id bigint DEFAULT NULL,
    p_phone_e164 text DEFAULT NULL,
    p_lid text DEFAULT NULL,
    p_bsuid text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_phone text;
    v_lid   text;
    v_bsuid text;
BEGIN
    PERFORM convkey._check_business_id(p_business_id);
    IF p_lead_id IS NOT NULL AND p_lead_id <= 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('p_lead_id must be a positive integer, got %s', p_lead_id),
            HINT = 'Pass NULL when the conversation has no CRM lead.';
    END IF;
    IF p_phone_e164 IS NOT NULL THEN
        v_phone := convkey._normalize_phone(p_phone_e164, 'p_phone_e164');
    END IF;
    IF p_lid IS NOT NULL THEN
        v_lid := convkey._lid_value(p_lid, 'p_lid');
    END IF;
    IF p_bsuid IS NOT NULL THEN
        v_bsuid := convkey._bsuid_value(p_bsuid, 'p_bsuid');
    END IF;
    IF p_lead_id IS NOT NULL THEN
        RETURN format('lead:%s:%s', p_business_id, p_lead_id);
    ELSIF v_phone IS NOT NULL THEN
        RETURN format('phone:%s:%s', p_business_id, v_phone);
    ELSIF v_lid IS NOT NULL THEN
        RETURN format('lid:%s:%s', p_business_id, v_lid);
    ELSIF v_bsuid IS NOT NULL THEN
        RETURN format('bsuid:%s:%s', p_business_id, v_bsuid);
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
        MESSAGE = 'canonical_key needs at least one identifier: p_lead_id, p_phone_e164, p_lid or p_bsuid',
        HINT = 'Pass the lead, the E.164 phone, the LID or the BSUID of the person.';
END;
$$;

COMMENT ON FUNCTION convkey.canonical_key(bigint, bigint, text, text, text) IS
    'Conversation key from the strongest identifier (lead > phone > lid > bsuid). IMMUTABLE; 22023 on bad input.';
