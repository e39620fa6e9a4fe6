-- convkey.dedup_health() -> SETOF convkey.dedup_health_row
-- and the view convkey.dedup_health over it.
-- The dedup health of every business on every shard: each shard aggregates its own businesses
-- (the shard view convkey.dedup_health, one row per business) and RUN ON ALL concatenates the
-- shards' rows (once per shard however many partitions it holds). A business lives on one shard,
-- so its row is whole and no business comes twice: no second aggregation is needed here. The view
-- keeps the shard view's name and columns, so `convkey stats --dsn <proxy>` and queries written
-- for one database work unchanged.
-- The view shows a member of convkey_readonly (not a superuser) only the rows of the business
-- named by the session setting convkey.business_id, and nothing when it is not set, as row-level
-- security does on a shard: the proxy reaches the shards as their admin user, so it filters here.
-- Locks: ACCESS SHARE on the shards' tables, for one statement. Raises: nothing of its own.
CREATE OR REPLACE FUNCTION convkey.dedup_health()
RETURNS SETOF convkey.dedup_health_row
LANGUAGE plproxy
AS $$
    CLUSTER 'convkey';
    RUN ON ALL;
    SELECT business_id, live_conversations, tombstones, live_with_key, live_without_key, duplicate_keys,
           with_lead, lid_only_waiting, identities_lead, identities_phone, identities_lid, identities_bsuid,
           identities_pending, merges_total, merges_24h, merges_by_reason, identity_conflicts,
           conflicts_different_lead, conflicts_moved, unmerges, links_blocked_by_separation
      FROM convkey.dedup_health;
$$;

COMMENT ON FUNCTION convkey.dedup_health() IS
    'Dedup health per business of every shard (the shard view convkey.dedup_health, RUN ON ALL).';

CREATE OR REPLACE VIEW convkey.dedup_health WITH (security_barrier) AS
SELECT t.* FROM convkey.dedup_health() AS t
 WHERE t.business_id = nullif(pg_catalog.current_setting('convkey.business_id', true), '')::bigint
    OR NOT pg_catalog.pg_has_role('convkey_readonly', 'USAGE')
    OR (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user);

COMMENT ON VIEW convkey.dedup_health IS
    'Dedup health per business of every shard: the shard view''s rows, concatenated (convkey.dedup_health()).';
