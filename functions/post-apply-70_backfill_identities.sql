-- convkey._backfill_identities(p_business_id bigint, p_lead_id bigint, p_phone text, p_wa_id text,
--     p_wa_phone text, p_error text, OUT o_kinds text[], OUT o_values text[], OUT o_reason text)
-- The identities of one legacy row, strongest first, derived by convkey._call_identities, exactly
-- as get-or-create derives a call's: the lead; the phone (p_phone: the row's phone_e164 normalized by the runner;
-- p_wa_phone: a human phone format in customer_wa_id normalized by the runner; or the phone of a
-- phone JID, read by the SQL grammar); the LID of a LID JID; a BSUID. LID digits never become a
-- phone. Never raises: a row that cannot be resolved gets o_reason (masked) and no identities.
-- p_error is the runner's reason when it could not normalize a human phone.
-- Locks: none. SQLSTATEs: none (grammar errors become o_reason).
CREATE OR REPLACE FUNCTION convkey._backfill_identities(
    p_business_id bigint,
    p_lead_id bigint,
    p_phone text,
    p_wa_id text,
    p_wa_phone text,
    p_error text,
    OUT o_kinds text[],
    OUT o_values text[],
    OUT o_reason text)
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    v_ids record;
BEGIN
    o_kinds := '{}'::text[];
    o_values := '{}'::text[];
    IF p_error IS NOT NULL THEN
        o_reason := p_error;
        RETURN;
    END IF;
    IF p_phone IS NOT NULL AND p_wa_phone IS NOT NULL AND p_phone <> p_wa_phone THEN
        o_reason := format('phone_e164 (%s) and customer_wa_id (%s) name different phones',
                           convkey._mask(p_phone), convkey._mask(p_wa_phone));
        RETURN;
    END IF;
    BEGIN
        -- an assignment, not SELECT ... INTO: PL/pgSQL evaluates it without starting a query
        v_ids := convkey._call_identities(p_business_id,
                                          CASE WHEN p_wa_phone IS NULL THEN nullif(btrim(p_wa_id), '') END,
                                          p_lead_id, coalesce(p_phone, p_wa_phone));
        o_kinds := v_ids.o_kinds;
        o_values := v_ids.o_values;
    EXCEPTION WHEN invalid_parameter_value OR string_data_right_truncation THEN
        o_reason := SQLERRM;
        o_kinds := '{}'::text[];
        o_values := '{}'::text[];
    END;
END;
$$;

COMMENT ON FUNCTION convkey._backfill_identities(bigint, bigint, text, text, text, text) IS
    'Internal: identities of a legacy row, strongest first, or the reason it cannot be resolved (never raises).';

-- convkey._backfill_derive: retired. The runner derives a batch's identities with its own copy of
-- the grammar (convkey.backfill.derive_identities), which the tests hold equal to
-- convkey._backfill_identities; a row it cannot derive, the batch derives with this function.
DROP FUNCTION IF EXISTS convkey._backfill_derive(bigint[], bigint[], text[], text[], text[]);
