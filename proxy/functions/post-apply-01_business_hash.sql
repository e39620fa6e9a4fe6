-- convkey._business_hash(p_business_id bigint) -> integer
-- The hash every routed call runs on: the first 32 bits of md5(business id as decimal text), read
-- as a signed integer. PL/Proxy keeps its low bits, hash & (partitions - 1), so a business's
-- partition is fixed by the hash and the partition count alone. md5 and the decimal text are the
-- same on every PostgreSQL version and platform (hashtext/hashint8 are not promised to be), and
-- the runner computes the same in Python (convkey.shards.business_hash); fixed examples live in
-- tests/data/partition_vectors.csv. NULL hashes as 0, so that a call without a business still
-- reaches a shard, which refuses it with 22023 like a single database does.
-- Locks: none. Raises: nothing.
CREATE OR REPLACE FUNCTION convkey._business_hash(p_business_id bigint)
RETURNS integer
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
AS $$
    SELECT ('x' || substr(md5(coalesce(p_business_id, 0)::text), 1, 8))::bit(32)::integer
$$;

COMMENT ON FUNCTION convkey._business_hash(bigint) IS
    'Routing hash of a business: first 32 bits of md5(business_id::text) as a signed integer; '
    'partition = hash & (partitions - 1).';
