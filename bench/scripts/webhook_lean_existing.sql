-- reference: a lean PL/pgSQL webhook (touch by key, insert the message; no validation, no identity graph)
\set p random(1, :people)
\set n :n + 1
SELECT * FROM bench_floor.record_message_lean(1, '97250' || lpad(:p::text, 7, '0') || '@s.whatsapp.net',
                                              'r' || :run || '-' || :client_id || '-' || :n, 'hello');
