-- convkey._rows_whatsapp_conversation() -> SETOF convkey.whatsapp_conversation_row
-- and the view convkey.whatsapp_conversation over it.
-- Every row of the shard table of that name, from every shard: RUN ON ALL runs the SELECT once
-- per distinct connect string, i.e. once per shard however many partitions it holds, and the
-- results are concatenated. Each business lives on one shard, so no row comes twice (except
-- after a partition moved and before its rows were deleted from the old shard: see README
-- "Scaling out by business"). The view has the table's name, so read-only queries written for
-- one database (runbook queries, test assertions) run unchanged against the proxy. Each query
-- reads the whole table of every shard: for reports and DBAs, not for the request path (which
-- calls the API functions). The columns are listed, so a column a shard gains later is left out
-- until the row type follows (tests/test_proxy.py fails until then).
-- Locks: ACCESS SHARE on the shards' table, for one statement. Raises: nothing of its own.
CREATE OR REPLACE FUNCTION convkey._rows_whatsapp_conversation()
RETURNS SETOF convkey.whatsapp_conversation_row
LANGUAGE plproxy
AS $$
    CLUSTER 'convkey';
    RUN ON ALL;
    SELECT id, business_id, canonical_key, lead_id, phone_e164, customer_wa_id, provider,
           push_name, lead_name, is_open, session_started_at, last_message_at,
           last_customer_message_at, last_read_at, summary_created, summary, merged_into_id,
           created_at, updated_at
      FROM convkey.whatsapp_conversation;
$$;

COMMENT ON FUNCTION convkey._rows_whatsapp_conversation() IS
    'Every row of convkey.whatsapp_conversation on every shard (RUN ON ALL).';

CREATE OR REPLACE VIEW convkey.whatsapp_conversation AS
SELECT * FROM convkey._rows_whatsapp_conversation();

COMMENT ON VIEW convkey.whatsapp_conversation IS
    'Read-only: the rows of convkey.whatsapp_conversation of every shard '
    '(convkey._rows_whatsapp_conversation(), RUN ON ALL).';
