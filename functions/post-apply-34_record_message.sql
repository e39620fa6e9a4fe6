-- convkey.record_message(p_business_id bigint, p_customer_wa_id text, p_direction text,
--     p_provider_message_id text, p_body text DEFAULT NULL, p_provider text DEFAULT 'baileys',
--     p_lead_id bigint DEFAULT NULL, p_phone_e164 text DEFAULT NULL, p_sent_at timestamptz DEFAULT now(),
--     p_source text DEFAULT NULL)
--   RETURNS TABLE(message_id bigint, conversation_id bigint, inserted boolean)
-- The one call a webhook needs, in one transaction: get-or-create the person's conversation,
-- record activity at p_sent_at (never backwards; a late older message is stored in order but
-- does not rewind last_message_at or last_customer_message_at), and insert the message once.
-- A provider message id already stored for the business (a retried delivery) returns the
-- existing message with inserted = false and changes nothing. p_source defaults to 'customer'
-- for incoming messages.
-- Locks: see convkey._resolve_and_touch.
-- Raises 22023 (bad identifiers, direction, source, provider, empty message id, NULL time),
-- 22001 (identifier or message id over 256 characters, body over 64 KB); writes nothing then.
CREATE OR REPLACE FUNCTION convkey.record_message(
    p_business_id bigint,
    p_customer_wa_id text,
    p_direction text,
    p_provider_message_id text,
    p_body text DEFAULT NULL,
    p_provider text DEFAULT 'baileys',
    p_lead_id bigint DEFAULT NULL,
    p_phone_e164 text DEFAULT NULL,
    p_sent_at timestamptz DEFAULT now(),
    p_source text DEFAULT NULL)
RETURNS TABLE(message_id bigint, conversation_id bigint, inserted boolean)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_direction text;
    v_source    text;
    v_ids       record;
    v_conv      bigint;
BEGIN
    v_direction := convkey._direction(p_direction);
    p_provider := convkey._check_provider(p_provider);
    p_sent_at := convkey._check_timestamp(p_sent_at, 'p_sent_at');
    IF p_provider_message_id IS NULL OR btrim(p_provider_message_id) = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'p_provider_message_id must not be NULL or empty',
            HINT = 'Pass the provider''s message id (Baileys key.id); it makes retried deliveries idempotent.';
    END IF;
    IF length(p_provider_message_id) > 256 THEN
        RAISE EXCEPTION USING ERRCODE = 'string_data_right_truncation',
            MESSAGE = format('p_provider_message_id is longer than 256 characters (%s)', length(p_provider_message_id)),
            HINT = 'Provider message ids are at most 256 characters.';
    END IF;
    IF octet_length(p_body) > 65536 THEN
        RAISE EXCEPTION USING ERRCODE = 'string_data_right_truncation',
            MESSAGE = format('p_body is larger than 64 KB (%s bytes)', octet_length(p_body)),
            HINT = 'Store large content (media, documents) elsewhere and keep a reference in the body.';
    END IF;
    v_source := coalesce(p_source, CASE WHEN v_direction = 'in' THEN 'customer' END);
    IF v_source IS NOT NULL AND v_source NOT IN ('customer', 'bot', 'human', 'system', 'automation') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('p_source must be customer, bot, human, system or automation, got %s',
                             quote_literal(convkey._mask(p_source))),
            HINT = 'Pass NULL to let convkey choose (customer for incoming messages).';
    END IF;
    v_ids := convkey._call_identities(p_business_id, p_customer_wa_id, p_lead_id, p_phone_e164);

    -- A retried delivery: the message is already stored (merges keep its conversation live).
    RETURN QUERY
        SELECT m.id, m.conversation_id, false FROM convkey.whatsapp_message m
         WHERE m.business_id = p_business_id AND m.provider = p_provider
           AND m.provider_message_id = p_provider_message_id;
    IF FOUND THEN
        RETURN;
    END IF;

    v_conv := convkey._resolve_and_touch(p_business_id, v_ids.o_kinds, v_ids.o_values, p_customer_wa_id,
                                         p_provider, v_direction, p_sent_at, 'record_message');
    RETURN QUERY
        INSERT INTO convkey.whatsapp_message AS m
            (business_id, conversation_id, direction, provider, provider_message_id, body, source, wa_id, sent_at)
        VALUES (p_business_id, v_conv, v_direction, p_provider, p_provider_message_id, p_body, v_source,
                p_customer_wa_id, p_sent_at)
        ON CONFLICT (business_id, provider, provider_message_id) DO NOTHING
        RETURNING m.id, m.conversation_id, true;
    IF NOT FOUND THEN
        -- The same delivery was stored concurrently by another call.
        RETURN QUERY
            SELECT m.id, m.conversation_id, false FROM convkey.whatsapp_message m
             WHERE m.business_id = p_business_id AND m.provider = p_provider
               AND m.provider_message_id = p_provider_message_id;
    END IF;
END;
$$;

COMMENT ON FUNCTION convkey.record_message(bigint, text, text, text, text, text, bigint, text, timestamptz, text) IS
    'Webhook call: get-or-create, activity and an idempotent message insert in one transaction. Returns '
    '(message_id, conversation_id, inserted); a retried provider message id returns inserted = false.';
