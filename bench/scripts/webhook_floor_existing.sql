-- floor: one row write per call, an existing key
\set p random(1, :people)
INSERT INTO bench_floor.whatsapp_conversation AS c (business_id, canonical_key, customer_wa_id, last_message_at)
VALUES (1, 'phone:1:+97250' || lpad(:p::text, 7, '0'), '97250' || lpad(:p::text, 7, '0') || '@s.whatsapp.net', now())
ON CONFLICT (business_id, canonical_key) DO UPDATE SET last_message_at = excluded.last_message_at
RETURNING id;
