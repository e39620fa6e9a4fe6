-- reference: floor + message (the two row writes, one statement, one commit) after the input
-- validation convkey.record_message must do: direction, provider, timestamp, and the
-- identifier's grammar and phone check (convkey._call_identities); no identity logic
\set p random(1, :people)
\set n :n + 1
WITH v AS (
    SELECT convkey._direction('in') AS direction, i.o_kinds
      FROM convkey._call_identities(1, '97250' || lpad(:p::text, 7, '0') || '@s.whatsapp.net', NULL, NULL) AS i
     WHERE convkey._check_provider('baileys') IS NOT NULL AND convkey._check_timestamp(now(), 'p_sent_at') IS NOT NULL
), c AS (
    INSERT INTO bench_floor.whatsapp_conversation AS c (business_id, canonical_key, customer_wa_id, last_message_at)
    SELECT 1, 'phone:1:+97250' || lpad(:p::text, 7, '0'), '97250' || lpad(:p::text, 7, '0') || '@s.whatsapp.net', now()
      FROM v
    ON CONFLICT (business_id, canonical_key) DO UPDATE SET last_message_at = excluded.last_message_at
    RETURNING c.id, c.customer_wa_id)
INSERT INTO bench_floor.whatsapp_message AS m
       (business_id, conversation_id, direction, provider, provider_message_id, body, source, wa_id, sent_at)
SELECT 1, c.id, v.direction, 'baileys', 'r' || :run || '-' || :client_id || '-' || :n, 'hello', 'customer',
       c.customer_wa_id, now()
  FROM c, v
ON CONFLICT (business_id, provider, provider_message_id) DO NOTHING
RETURNING m.id, m.conversation_id;
