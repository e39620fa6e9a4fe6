-- convkey._call_identities(p_business_id bigint, p_customer_wa_id text, p_lead_id bigint,
--     p_phone_e164 text, OUT o_kinds text[], OUT o_values text[], OUT o_phone text)
-- Validates the identity arguments of get-or-create style calls and returns the identities they
-- name, strongest first (lead, phone, lid, bsuid), plus the person's E.164 phone. The phone comes
-- from p_phone_e164, else from a phone JID; when both are given they must be the same number.
-- Locks: none. Raises 22023: bad business or lead id, a group/status/broadcast/newsletter/bot
-- identifier, a malformed JID, an impossible phone, two different phones, no identity at all;
-- 22001 for identifiers over 256 characters.
CREATE OR REPLACE FUNCTION convkey._call_identities(
    p_business_id bigint,
    p_customer_wa_id text,
    p_lead_id bigint,
    p_phone_e164 text,
    OUT o_kinds text[],
    OUT o_values text[],
    OUT o_phone text)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    v_parts record;
    v_kind  text;
    v_phone text;
    v_lid   text;
    v_bsuid text;
BEGIN
    p_business_id := convkey._check_business_id(p_business_id);
    IF p_lead_id IS NOT NULL AND p_lead_id <= 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('p_lead_id must be a positive integer, got %s', p_lead_id),
            HINT = 'Pass NULL when the conversation has no CRM lead.';
    END IF;
    IF p_customer_wa_id IS NOT NULL THEN
        v_parts := convkey._parse_wa_id(p_customer_wa_id, 'p_customer_wa_id');
        v_kind := v_parts.kind;
        v_phone := v_parts.phone_e164;
        v_lid := v_parts.lid;
        v_bsuid := CASE WHEN v_kind = 'bsuid' THEN v_parts.jid_user END;
        IF v_kind NOT IN ('pn', 'lid', 'bsuid') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('p_customer_wa_id is a %s identifier, not a 1:1 customer chat: %s',
                                 v_kind, convkey._mask(p_customer_wa_id)),
                HINT = 'Groups, status, broadcasts, newsletters and bots have no customer conversation; skip them.';
        END IF;
    END IF;
    IF p_phone_e164 IS NOT NULL THEN
        o_phone := convkey._normalize_phone(p_phone_e164, 'p_phone_e164');
        IF v_phone IS NOT NULL AND v_phone <> o_phone THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('p_phone_e164 (%s) and the phone of p_customer_wa_id (%s) differ',
                                 convkey._mask(o_phone), convkey._mask(v_phone)),
                HINT = 'A call names one person: pass the phone JID or the phone, or the same number in both.';
        END IF;
    ELSE
        o_phone := v_phone;
    END IF;
    o_kinds := '{}'::text[];
    o_values := '{}'::text[];
    IF p_lead_id IS NOT NULL THEN
        o_kinds := o_kinds || 'lead'::text;
        o_values := o_values || p_lead_id::text;
    END IF;
    IF o_phone IS NOT NULL THEN
        o_kinds := o_kinds || 'phone'::text;
        o_values := o_values || o_phone;
    END IF;
    IF v_lid IS NOT NULL THEN
        o_kinds := o_kinds || 'lid'::text;
        o_values := o_values || v_lid;
    END IF;
    IF v_bsuid IS NOT NULL THEN
        o_kinds := o_kinds || 'bsuid'::text;
        o_values := o_values || v_bsuid;
    END IF;
    IF cardinality(o_kinds) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'no identifier given: p_customer_wa_id, p_lead_id and p_phone_e164 are all NULL',
            HINT = 'Pass the WhatsApp JID of the customer (or a lead id or an E.164 phone).';
    END IF;
END;
$$;

COMMENT ON FUNCTION convkey._call_identities(bigint, text, bigint, text) IS
    'Internal: validate get-or-create arguments; identities strongest first and the person''s phone.';
