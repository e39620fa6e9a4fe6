-- Baselines the bench compares convkey with, each in its own schema of the throwaway bench
-- database. Tables are built LIKE convkey's (INCLUDING ALL: the same columns, defaults, checks
-- and indexes), so every row write costs what it costs in convkey and only the logic differs.

-- The floor: one row write per call, a bare single-statement upsert on the conversation key.
CREATE SCHEMA bench_floor;
CREATE TABLE bench_floor.whatsapp_conversation (LIKE convkey.whatsapp_conversation INCLUDING ALL);
-- For the write floor of a webhook that also stores the message: upsert + message insert in one
-- statement (one commit); used to show what two row writes cost before any identity logic.
CREATE TABLE bench_floor.whatsapp_message (LIKE convkey.whatsapp_message INCLUDING ALL);
ALTER TABLE bench_floor.whatsapp_message
    ADD FOREIGN KEY (business_id, conversation_id) REFERENCES bench_floor.whatsapp_conversation (business_id, id);

-- The pattern convkey replaces: conversation + message, looked up by key, then by the legacy
-- id (the raw customer_wa_id, indexed), upserted, touched and the message inserted as five
-- separate client statements, each its own transaction (autocommit).
CREATE SCHEMA bench_legacy;
CREATE TABLE bench_legacy.whatsapp_conversation (LIKE convkey.whatsapp_conversation INCLUDING ALL);
CREATE INDEX ON bench_legacy.whatsapp_conversation (business_id, customer_wa_id);
CREATE TABLE bench_legacy.whatsapp_message (LIKE convkey.whatsapp_message INCLUDING ALL);
ALTER TABLE bench_legacy.whatsapp_message
    ADD FOREIGN KEY (business_id, conversation_id) REFERENCES bench_legacy.whatsapp_conversation (business_id, id);

-- A minimal select-first get-or-create on one table: SELECT by key, INSERT ... ON CONFLICT DO
-- NOTHING RETURNING, SELECT again (READ COMMITTED loop). The key comes from the JID's user part
-- with no validation at all: the least work a get-or-create by phone JID can do.
-- With p_validate (a reference, "minimal + convkey's validation"): the identifier goes through
-- convkey._call_identities first (the WhatsApp grammar, the phone check, 22023 on bad input:
-- what convkey does before any lookup) and the key is built from its result.
CREATE SCHEMA bench_min;
CREATE TABLE bench_min.whatsapp_conversation (LIKE convkey.whatsapp_conversation INCLUDING ALL);

CREATE FUNCTION bench_min.get_or_create_conversation(p_business_id bigint, p_customer_wa_id text,
                                                     p_validate boolean DEFAULT false)
RETURNS TABLE(conversation_id bigint, canonical_key text, created boolean)
LANGUAGE plpgsql
AS $$
DECLARE
    v_key text := 'phone:' || p_business_id || ':' || CASE
        WHEN p_validate THEN (convkey._call_identities(p_business_id, p_customer_wa_id, NULL, NULL)).o_phone
        ELSE '+' || split_part(p_customer_wa_id, '@', 1) END;
    v_id  bigint;
BEGIN
    LOOP
        SELECT c.id INTO v_id FROM bench_min.whatsapp_conversation c
         WHERE c.business_id = p_business_id AND c.canonical_key = v_key;
        IF FOUND THEN
            RETURN QUERY SELECT v_id, v_key, false;
            RETURN;
        END IF;
        INSERT INTO bench_min.whatsapp_conversation AS c (business_id, canonical_key, customer_wa_id)
        VALUES (p_business_id, v_key, p_customer_wa_id)
        ON CONFLICT ON CONSTRAINT whatsapp_conversation_business_id_canonical_key_key DO NOTHING
        RETURNING c.id INTO v_id;
        IF FOUND THEN
            RETURN QUERY SELECT v_id, v_key, true;
            RETURN;
        END IF;
    END LOOP;
END;
$$;

-- A lean PL/pgSQL webhook (reference): the least a PL/pgSQL record_message can do for an existing
-- person: key from the JID without validation, touch the conversation by key (insert it when
-- missing), insert the message idempotently; one call, one commit, no identity graph.
CREATE FUNCTION bench_floor.record_message_lean(p_business_id bigint, p_customer_wa_id text,
                                                p_provider_message_id text, p_body text)
RETURNS TABLE(message_id bigint, conversation_id bigint, inserted boolean)
LANGUAGE plpgsql
AS $$
DECLARE
    v_key  text := 'phone:' || p_business_id || ':+' || split_part(p_customer_wa_id, '@', 1);
    v_conv bigint;
BEGIN
    UPDATE bench_floor.whatsapp_conversation c
       SET last_message_at = greatest(c.last_message_at, now()), last_customer_message_at = now(),
           is_open = true, customer_wa_id = p_customer_wa_id, updated_at = now()
     WHERE c.business_id = p_business_id AND c.canonical_key = v_key
    RETURNING c.id INTO v_conv;
    IF NOT FOUND THEN
        INSERT INTO bench_floor.whatsapp_conversation AS c (business_id, canonical_key, customer_wa_id, last_message_at)
        VALUES (p_business_id, v_key, p_customer_wa_id, now())
        ON CONFLICT (business_id, canonical_key) DO UPDATE SET last_message_at = excluded.last_message_at
        RETURNING c.id INTO v_conv;
    END IF;
    RETURN QUERY
        INSERT INTO bench_floor.whatsapp_message AS m
            (business_id, conversation_id, direction, provider, provider_message_id, body, source, wa_id, sent_at)
        VALUES (p_business_id, v_conv, 'in', 'baileys', p_provider_message_id, p_body, 'customer', p_customer_wa_id, now())
        ON CONFLICT (business_id, provider, provider_message_id) DO NOTHING
        RETURNING m.id, m.conversation_id, true;
END;
$$;

