-- Proxy: a new message of an existing person of one of :businesses businesses. The same script runs
-- against the proxy (PL/Proxy, 2 shards) and against one database; only the DSN differs.
\set b random(1, :businesses)
\set p random(1, :people)
\set n :n + 1
SELECT * FROM convkey.record_message(:b, '97250' || lpad(:p::text, 7, '0') || '@s.whatsapp.net', 'in',
                                     'r' || :run || '-' || :client_id || '-' || :n, 'hello');
