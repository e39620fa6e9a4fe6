-- floor: one row write per call, a new key (same phone space as 1(b))
\set d random(0, 4)
\set prefix case when :d = 4 then 58 else 52 + :d end
\set sub random(0, 9999999)
INSERT INTO bench_floor.whatsapp_conversation AS c (business_id, canonical_key, customer_wa_id, last_message_at)
VALUES (1, 'phone:1:+972' || :prefix::text || lpad(:sub::text, 7, '0'),
        '972' || :prefix::text || lpad(:sub::text, 7, '0') || '@s.whatsapp.net', now())
ON CONFLICT (business_id, canonical_key) DO UPDATE SET last_message_at = excluded.last_message_at
RETURNING id;
