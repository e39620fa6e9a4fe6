-- Why: convkey scales out by business. A proxy database in front of several convkey databases
-- (the shards) holds, in its own schema convkey, PL/Proxy functions with exactly the public API's
-- names and signatures; each call runs whole on the shard that owns its p_business_id. This is
-- the proxy's own migration source (proxy/), applied by `convkey migrate` when the database is a
-- proxy; the shards are migrated from sql/ and functions/ as before. Migration ids here differ
-- from the shard's (yoyo keys applied migrations by id).
-- The cluster itself (SERVER convkey FOREIGN DATA WRAPPER plproxy, its partitions and the user
-- mapping) is configuration, managed by `convkey shards add|list`, not by migrations.
-- CREATE EXTENSION plproxy needs a superuser (the extension also creates the plproxy FDW).
-- depends:

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE EXTENSION IF NOT EXISTS plproxy;

CREATE SCHEMA IF NOT EXISTS convkey;

COMMENT ON SCHEMA convkey IS
    'convkey proxy: the public API as PL/Proxy functions routed by business_id to the shards, '
    'and read-only views over every shard (see README "Scaling out by business").';
