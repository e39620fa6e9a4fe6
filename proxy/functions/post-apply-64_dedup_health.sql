-- convkey.dedup_health() -> SETOF convkey.dedup_health_row
-- and the view convkey.dedup_health over it.
-- The dedup health of every business on every shard: each shard aggregates its own businesses
-- (the shard view convkey.dedup_health, one row per business) and RUN ON ALL concatenates the
-- shards' rows (once per shard however many partitions it holds). A business lives on one shard,
-- so its row is whole and no business comes twice: no second aggregation is needed here. The view
-- keeps the shard view's name and columns, so `convkey stats --dsn <proxy>` and queries written
-- for one database work unchanged.
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

CREATE OR REPLACE VIEW convkey.dedup_health AS
SELECT * FROM convkey.dedup_health();

COMMENT ON VIEW convkey.dedup_health IS
    'Dedup health per business of every shard: the shard view''s rows, concatenated (convkey.dedup_health()).';
