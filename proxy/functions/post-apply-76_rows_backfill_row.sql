-- convkey._rows_backfill_row() -> SETOF convkey.backfill_row_row
-- and the view convkey.backfill_row over it.
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
CREATE OR REPLACE FUNCTION convkey._rows_backfill_row()
RETURNS SETOF convkey.backfill_row_row
LANGUAGE plproxy
AS $$
    CLUSTER 'convkey';
    RUN ON ALL;
    SELECT business_id, conversation_id, status, kinds, vals, reason, updated_at
      FROM convkey.backfill_row;
$$;

COMMENT ON FUNCTION convkey._rows_backfill_row() IS
    'Every row of convkey.backfill_row on every shard (RUN ON ALL).';

CREATE OR REPLACE VIEW convkey.backfill_row AS
SELECT * FROM convkey._rows_backfill_row();

COMMENT ON VIEW convkey.backfill_row IS
    'Read-only: the rows of convkey.backfill_row of every shard '
    '(convkey._rows_backfill_row(), RUN ON ALL).';
