-- convkey.conversation_thread: one row per live conversation (tombstones left out), as an inbox
-- lists them: the name to show (convkey.display_name), the E.164 phone (never a LID), message
-- and unread counts (incoming messages sent after last_read_at, see convkey.mark_read) and the
-- latest message's first 120 characters and direction.
-- Each figure is a LATERAL subquery on ix_whatsapp_message_conversation, evaluated only for the
-- rows the outer query keeps: `WHERE business_id = $1 ORDER BY last_message_at DESC NULLS LAST
-- LIMIT 50` reads the first 50 entries of ix_whatsapp_conversation_recent and nothing else.
-- The unread count scans only the index range after last_read_at.
-- security_invoker: the reader's privileges and row-level security apply, so convkey_readonly sees
-- the business its session names in convkey.business_id only (sql/0006_create_roles.sql).
CREATE OR REPLACE VIEW convkey.conversation_thread WITH (security_invoker = true) AS
SELECT c.id,
       c.business_id,
       c.canonical_key,
       convkey.display_name(c.lead_name, c.push_name, NULL, NULL, coalesce(c.phone_e164, c.customer_wa_id))
           AS display_name,
       c.phone_e164 AS display_phone,
       c.lead_id,
       c.is_open,
       c.last_message_at,
       n.message_count,
       u.unread_count,
       l.last_message_preview,
       l.last_message_direction
  FROM convkey.whatsapp_conversation c
 CROSS JOIN LATERAL (
        SELECT count(*) AS message_count
          FROM convkey.whatsapp_message m
         WHERE m.business_id = c.business_id AND m.conversation_id = c.id) n
 CROSS JOIN LATERAL (
        SELECT count(*) AS unread_count
          FROM convkey.whatsapp_message m
         WHERE m.business_id = c.business_id AND m.conversation_id = c.id
           AND m.sent_at > coalesce(c.last_read_at, '-infinity'::timestamptz)
           AND m.direction = 'in') u
  LEFT JOIN LATERAL (
        SELECT left(m.body, 120) AS last_message_preview, m.direction AS last_message_direction
          FROM convkey.whatsapp_message m
         WHERE m.business_id = c.business_id AND m.conversation_id = c.id
         ORDER BY m.sent_at DESC, m.id DESC
         LIMIT 1) l ON true
 WHERE c.merged_into_id IS NULL;

COMMENT ON VIEW convkey.conversation_thread IS
    'Inbox rows: one per live conversation with display name, E.164 phone, message and unread counts, '
    'and the latest message''s preview. List a business with WHERE business_id = $1 ORDER BY '
    'last_message_at DESC NULLS LAST LIMIT n (index-driven).';
