-- Every SQL statement the runner sends, as named queries (psycopg %(name)s placeholders).
-- The runner calls convkey's functions; it never re-implements them.

-- get_or_create_conversation --
SELECT conversation_id, canonical_key, created
  FROM convkey.get_or_create_conversation(%(business_id)s, %(customer_wa_id)s, %(provider)s,
                                          %(lead_id)s, %(phone_e164)s)

-- record_message --
SELECT message_id, conversation_id, inserted
  FROM convkey.record_message(%(business_id)s, %(customer_wa_id)s, %(direction)s, %(provider_message_id)s,
                              %(body)s, %(provider)s, %(lead_id)s, %(phone_e164)s, %(sent_at)s, %(source)s)

-- update_session_activity --
SELECT convkey.update_session_activity(%(business_id)s, %(customer_wa_id)s, %(direction)s, %(provider)s,
                                       %(lead_id)s, %(phone_e164)s, %(at)s) AS conversation_id

-- close_session --
SELECT convkey.close_session(%(business_id)s, %(conversation_id)s, %(summary)s)

-- idle_sessions --
SELECT conversation_id FROM convkey.idle_sessions(%(business_id)s, %(idle)s) AS conversation_id

-- resolve_conversation_id --
SELECT convkey.resolve_conversation_id(%(business_id)s, %(conversation_id)s) AS conversation_id

-- canonical_key --
SELECT convkey.canonical_key(%(business_id)s, %(lead_id)s, %(phone_e164)s, %(lid)s, %(bsuid)s) AS canonical_key

-- parse_wa_id --
SELECT kind, jid_user, device, phone_e164, lid FROM convkey.parse_wa_id(%(raw)s)

-- link_identity --
SELECT convkey.link_identity(%(business_id)s, %(wa_id)s, %(other)s, %(source)s) AS conversation_id

-- assign_lead --
SELECT convkey.assign_lead(%(business_id)s, %(conversation_id)s, %(lead_id)s, %(lead_name)s) AS conversation_id

-- merge_leads --
SELECT convkey.merge_leads(%(business_id)s, %(from_lead_id)s, %(into_lead_id)s) AS conversation_id

-- merge_conversations --
SELECT convkey.merge_conversations(%(business_id)s, %(primary_id)s, %(duplicate_id)s, %(reason)s) AS conversation_id

-- unmerge --
SELECT convkey.unmerge(%(business_id)s, %(merge_id)s) AS conversation_id
