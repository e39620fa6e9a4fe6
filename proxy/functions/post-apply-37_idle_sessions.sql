-- convkey.idle_sessions(p_business_id, p_idle)
--     -> SETOF bigint
-- Proxy of the shard function of the same name and signature. It runs whole on the shard that
-- owns p_business_id, in one remote call and the shard's own transaction: the partition is
-- convkey._business_hash(p_business_id) & (partitions - 1).
-- Defaults are evaluated here and sent, so they equal the shard's (tests/test_proxy.py compares
-- every signature, default and result type with the shard's).
-- Locks: none here (the shard function's own). Raises: the shard's SQLSTATEs unchanged (PL/Proxy
-- prefixes the message with the function and shard and the hint with "Remote hint:").
CREATE OR REPLACE FUNCTION convkey.idle_sessions(
    p_business_id bigint,
    p_idle interval DEFAULT '5 minutes')
RETURNS SETOF bigint
LANGUAGE plproxy
AS $$
    CLUSTER 'convkey';
    RUN ON convkey._business_hash(p_business_id);
$$;

COMMENT ON FUNCTION convkey.idle_sessions(bigint,interval) IS
    'Proxy: runs convkey.idle_sessions on the shard that owns p_business_id.';
