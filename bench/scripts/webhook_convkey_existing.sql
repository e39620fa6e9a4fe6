-- 1(a) convkey: a new message of an existing person (unique provider message id per call)
\set p random(1, :people)
\set n :n + 1
SELECT * FROM convkey.record_message(1, '97250' || lpad(:p::text, 7, '0') || '@s.whatsapp.net', 'in',
                                     'r' || :run || '-' || :client_id || '-' || :n, 'hello');
