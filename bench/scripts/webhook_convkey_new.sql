-- 1(b) convkey: a new person: a random Israeli mobile +972 5[2-5,8] and 7 digits (5e7 numbers)
\set d random(0, 4)
\set prefix case when :d = 4 then 58 else 52 + :d end
\set sub random(0, 9999999)
\set n :n + 1
SELECT * FROM convkey.record_message(1, '972' || :prefix::text || lpad(:sub::text, 7, '0') || '@s.whatsapp.net', 'in',
                                     'r' || :run || '-' || :client_id || '-' || :n, 'hello');
