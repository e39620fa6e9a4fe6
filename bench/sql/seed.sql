-- People 1..:people exist everywhere with phone JID 97250<7 digits>@s.whatsapp.net and one
-- stored message 'seed-<p>' (the ids retried deliveries send again). convkey's rows are made
-- through its API; the baselines get the equivalent rows directly.
SELECT count(*) FROM generate_series(%(lo)s::int, %(hi)s::int) AS g,
    LATERAL convkey.record_message(1, '97250' || lpad(g::text, 7, '0') || '@s.whatsapp.net', 'in',
                                   'seed-' || g, 'hello', p_sent_at => now() - interval '1 day') AS r;

INSERT INTO bench_floor.whatsapp_conversation (business_id, canonical_key, phone_e164, customer_wa_id, last_message_at)
SELECT 1, 'phone:1:+97250' || lpad(g::text, 7, '0'), '+97250' || lpad(g::text, 7, '0'),
       '97250' || lpad(g::text, 7, '0') || '@s.whatsapp.net', now() - interval '1 day'
  FROM generate_series(%(lo)s::int, %(hi)s::int) AS g;

INSERT INTO bench_legacy.whatsapp_conversation
       (business_id, canonical_key, phone_e164, customer_wa_id, last_message_at, last_customer_message_at)
SELECT 1, 'phone:1:+97250' || lpad(g::text, 7, '0'), '+97250' || lpad(g::text, 7, '0'),
       '97250' || lpad(g::text, 7, '0') || '@s.whatsapp.net', now() - interval '1 day', now() - interval '1 day'
  FROM generate_series(%(lo)s::int, %(hi)s::int) AS g;

INSERT INTO bench_legacy.whatsapp_message
       (business_id, conversation_id, direction, provider, provider_message_id, body, source, wa_id, sent_at)
SELECT 1, c.id, 'in', 'baileys', 'seed-' || g, 'hello', 'customer', c.customer_wa_id, now() - interval '1 day'
  FROM generate_series(%(lo)s::int, %(hi)s::int) AS g
  JOIN bench_legacy.whatsapp_conversation c
    ON c.business_id = 1 AND c.canonical_key = 'phone:1:+97250' || lpad(g::text, 7, '0');

INSERT INTO bench_min.whatsapp_conversation (business_id, canonical_key, phone_e164, customer_wa_id, last_message_at)
SELECT 1, 'phone:1:+97250' || lpad(g::text, 7, '0'), '+97250' || lpad(g::text, 7, '0'),
       '97250' || lpad(g::text, 7, '0') || '@s.whatsapp.net', now() - interval '1 day'
  FROM generate_series(%(lo)s::int, %(hi)s::int) AS g;
