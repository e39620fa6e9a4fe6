-- reference: the write floor of a webhook that stores the message too: upsert + message insert,
-- one statement, one commit, two row writes, no identity logic
\set p random(1, :people)
\set n :n + 1
WITH c AS (
    INSERT INTO bench_floor.whatsapp_conversation AS c (business_id, canonical_key, customer_wa_id, last_message_at)
    VALUES (1, 'phone:1:+97250' || lpad(:p::text, 7, '0'), '97250' || lpad(:p::text, 7, '0') || '@s.whatsapp.net', now())
    ON CONFLICT (business_id, canonical_key) DO UPDATE SET last_message_at = excluded.last_message_at
    RETURNING c.id, c.customer_wa_id)
INSERT INTO bench_floor.whatsapp_message AS m
       (business_id, conversation_id, direction, provider, provider_message_id, body, source, wa_id, sent_at)
SELECT 1, c.id, 'in', 'baileys', 'r' || :run || '-' || :client_id || '-' || :n, 'hello', 'customer', c.customer_wa_id, now()
  FROM c
ON CONFLICT (business_id, provider, provider_message_id) DO NOTHING
RETURNING m.id, m.conversation_id;
