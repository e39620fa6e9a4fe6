-- 2 reference: the minimal select-first function after convkey's input validation
\set p random(1, :people)
SELECT * FROM bench_min.get_or_create_conversation(1, '97250' || lpad(:p::text, 7, '0') || '@s.whatsapp.net', true);
