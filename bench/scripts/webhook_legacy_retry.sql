-- replaced pattern, retried delivery (message id already stored: the insert does nothing)
\set p random(1, :people)
SELECT id FROM bench_legacy.whatsapp_conversation
 WHERE business_id = 1 AND canonical_key = 'phone:1:+' || ('97250' || lpad(:p::text, 7, '0'));
SELECT id FROM bench_legacy.whatsapp_conversation
 WHERE business_id = 1 AND customer_wa_id = ('97250' || lpad(:p::text, 7, '0')) || '@s.whatsapp.net';
INSERT INTO bench_legacy.whatsapp_conversation AS c (business_id, canonical_key, phone_e164, customer_wa_id, provider)
VALUES (1, 'phone:1:+' || ('97250' || lpad(:p::text, 7, '0')), '+' || ('97250' || lpad(:p::text, 7, '0')), ('97250' || lpad(:p::text, 7, '0')) || '@s.whatsapp.net', 'baileys')
ON CONFLICT (business_id, canonical_key) DO UPDATE SET customer_wa_id = excluded.customer_wa_id
RETURNING id AS conv_id \gset
UPDATE bench_legacy.whatsapp_conversation
   SET last_message_at = now(), last_customer_message_at = now(), is_open = true, updated_at = now()
 WHERE business_id = 1 AND id = :conv_id;
INSERT INTO bench_legacy.whatsapp_message
       (business_id, conversation_id, direction, provider, provider_message_id, body, source, wa_id, sent_at)
VALUES (1, :conv_id, 'in', 'baileys', 'seed-' || :p, 'hello', 'customer', ('97250' || lpad(:p::text, 7, '0')) || '@s.whatsapp.net', now())
ON CONFLICT (business_id, provider, provider_message_id) DO NOTHING;
