-- convkey._rows_conversation_merge() -> SETOF convkey.conversation_merge_row
-- and the view convkey.conversation_merge over it.
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
CREATE OR REPLACE FUNCTION convkey._rows_conversation_merge()
RETURNS SETOF convkey.conversation_merge_row
LANGUAGE plproxy
AS $$
    CLUSTER 'convkey';
    RUN ON ALL;
    SELECT id, business_id, primary_id, duplicate_id, reason, triggered_by, merged_at,
           moved_message_ids, moved_identities, primary_before, duplicate_before, primary_after,
           undone_at
      FROM convkey.conversation_merge;
$$;

COMMENT ON FUNCTION convkey._rows_conversation_merge() IS
    'Every row of convkey.conversation_merge on every shard (RUN ON ALL).';

CREATE OR REPLACE VIEW convkey.conversation_merge AS
SELECT * FROM convkey._rows_conversation_merge();

COMMENT ON VIEW convkey.conversation_merge IS
    'Read-only: the rows of convkey.conversation_merge of every shard '
    '(convkey._rows_conversation_merge(), RUN ON ALL).';
