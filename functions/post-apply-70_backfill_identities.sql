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

-- convkey._backfill_derive(p_business_ids bigint[], p_ids bigint[], p_phones text[], p_wa_phones text[],
--     p_errors text[], OUT o_rows text, OUT o_lead_ids bigint[], OUT o_wa_ids text[])
-- The identities of a batch of legacy rows (convkey._backfill_identities), for the runner to
-- compute on a second connection while the previous batch is resolved, and hand to
-- convkey._backfill_resolve_batch with the same arguments. One element per input, in input order:
-- o_rows (a convkey.backfill_candidate[] in its text form, which the runner passes on as is;
-- text, so that no function signature depends on the type and 0005's rollback can drop it;
-- NULL elements for rows that are gone), and o_lead_ids / o_wa_ids, the lead_id and
-- customer_wa_id the identities were derived from: the resolve batch uses an element only when
-- its locked row still has them, and derives the row again otherwise. Reads committed rows, takes
-- no row lock, writes nothing.
-- Locks: none. SQLSTATEs: none of its own (convkey._backfill_identities never raises).
CREATE OR REPLACE FUNCTION convkey._backfill_derive(
    p_business_ids bigint[],
    p_ids bigint[],
    p_phones text[],
    p_wa_phones text[],
    p_errors text[],
    OUT o_rows text,
    OUT o_lead_ids bigint[],
    OUT o_wa_ids text[])
LANGUAGE sql STABLE
AS $$
    SELECT coalesce(array_agg(CASE WHEN c.id IS NOT NULL
                                   THEN ROW(c.business_id, c.id, d.o_kinds, d.o_values, d.o_reason)::convkey.backfill_candidate
                              END ORDER BY u.n), '{}')::text,
           coalesce(array_agg(c.lead_id ORDER BY u.n), '{}'),
           coalesce(array_agg(c.customer_wa_id ORDER BY u.n), '{}')
      FROM unnest(p_business_ids, p_ids, p_phones, p_wa_phones, p_errors) WITH ORDINALITY AS u(b, id, phone, wa_phone, err, n)
      LEFT JOIN LATERAL (SELECT c.business_id, c.id, c.lead_id, c.customer_wa_id
                           FROM convkey.whatsapp_conversation c
                          WHERE c.business_id = u.b AND c.id = u.id) AS c ON true
      LEFT JOIN LATERAL convkey._backfill_identities(c.business_id, c.lead_id, u.phone, c.customer_wa_id,
                                                     u.wa_phone, u.err) AS d ON c.id IS NOT NULL
$$;

COMMENT ON FUNCTION convkey._backfill_derive(bigint[], bigint[], text[], text[], text[]) IS
    'Internal backfill phase 1: a batch''s identities, derived ahead on another connection (read-only).';
