-- 1(c) convkey: a retried delivery (the provider message id is already stored)
\set p random(1, :people)
SELECT * FROM convkey.record_message(1, '97250' || lpad(:p::text, 7, '0') || '@s.whatsapp.net', 'in',
                                     'seed-' || :p, 'hello');
