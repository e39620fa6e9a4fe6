-- 2 convkey: get-or-create of an existing person by phone JID
\set p random(1, :people)
SELECT * FROM convkey.get_or_create_conversation(1, '97250' || lpad(:p::text, 7, '0') || '@s.whatsapp.net');
