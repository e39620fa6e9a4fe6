-- convkey._shard_sequences()
--     -> TABLE(shard text, sequence_name text, min_value bigint, max_value bigint, last_value bigint)
-- The position and range of every sequence of schema convkey on every shard (RUN ON ALL), the
-- shard named by its database name. `convkey shards add` gives each shard its own block of ids
-- (MINVALUE/MAXVALUE), so that ids stay unique across shards and rows keep their ids when a
-- partition moves; this shows the blocks. last_value is NULL before the first nextval().
-- Locks: none. Raises: nothing of its own.
CREATE OR REPLACE FUNCTION convkey._shard_sequences()
RETURNS TABLE(shard text, sequence_name text, min_value bigint, max_value bigint, last_value bigint)
LANGUAGE plproxy
AS $$
    CLUSTER 'convkey';
    RUN ON ALL;
    SELECT current_database()::text AS shard, s.sequencename::text AS sequence_name, s.min_value,
           s.max_value, s.last_value
      FROM pg_catalog.pg_sequences s
     WHERE s.schemaname = 'convkey';
$$;

COMMENT ON FUNCTION convkey._shard_sequences() IS
    'Range and position of every convkey sequence on every shard (RUN ON ALL).';
