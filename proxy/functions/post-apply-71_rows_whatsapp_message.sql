-- convkey._rows_whatsapp_message() -> SETOF convkey.whatsapp_message_row
-- and the view convkey.whatsapp_message over it.
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
CREATE OR REPLACE FUNCTION convkey._rows_whatsapp_message()
RETURNS SETOF convkey.whatsapp_message_row
LANGUAGE plproxy
AS $$
    CLUSTER 'convkey';
    RUN ON ALL;
    SELECT id, business_id, conversation_id, direction, provider, provider_message_id, body,
           source, wa_id, sent_at, created_at
      FROM convkey.whatsapp_message;
$$;

COMMENT ON FUNCTION convkey._rows_whatsapp_message() IS
    'Every row of convkey.whatsapp_message on every shard (RUN ON ALL).';

CREATE OR REPLACE VIEW convkey.whatsapp_message AS
SELECT * FROM convkey._rows_whatsapp_message();

COMMENT ON VIEW convkey.whatsapp_message IS
    'Read-only: the rows of convkey.whatsapp_message of every shard '
    '(convkey._rows_whatsapp_message(), RUN ON ALL).';
