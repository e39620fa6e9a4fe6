-- convkey._partition_of(p_business_id bigint) -> integer
-- The partition that owns a business: convkey._business_hash(p_business_id) & (partitions - 1),
-- exactly what PL/Proxy computes for `RUN ON convkey._business_hash(p_business_id)`. For the
-- runner (`convkey shards list`), DBAs moving a partition, and the tests.
-- Locks: none. Raises: 55000 when the cluster has no partitions yet.
CREATE OR REPLACE FUNCTION convkey._partition_of(p_business_id bigint)
RETURNS integer
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_count integer;
BEGIN
    SELECT count(*) INTO v_count FROM convkey._partitions();
    IF v_count = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = 'the PL/Proxy cluster convkey has no partitions',
            HINT = 'Add a shard first: convkey shards add SHARD_DSN --dsn PROXY_DSN.';
    END IF;
    RETURN convkey._business_hash(p_business_id) & (v_count - 1);
END;
$$;

COMMENT ON FUNCTION convkey._partition_of(bigint) IS
    'The partition owning a business: _business_hash(business_id) & (partitions - 1), '
    'as PL/Proxy routes it.';
