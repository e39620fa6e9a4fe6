-- convkey.dedup_health: one row per business that has any conversation, identity, merge or
-- identity conflict: is the "one conversation per person" rule holding, and what did it cost?
--   live_conversations, tombstones; live_with_key / live_without_key (unresolved rows: legacy rows
--   not backfilled yet, and sides of an unmerge left owning no identity);
--   duplicate_keys: live keys held by more than one conversation (must be 0);
--   with_lead; lid_only_waiting: live conversations keyed 'lid:' without a phone yet;
--   identities_<kind> and identities_pending (owned by a not-yet-conversing person);
--   merges_total, merges_24h, merges_by_reason {reason: {"total": n, "last_24h": n}};
--   identity_conflicts (refused joins: different_lead + moved_to_other_phone),
--   conflicts_different_lead, conflicts_moved; unmerges (merges undone);
--   links_blocked_by_separation: automatic links refused because an unmerge separated the two
--   conversations (the sum of their seen_count).
-- Each table is aggregated once per business; the business ids come from a UNION of the four
-- tables, so `WHERE business_id = $1` is pushed down into every scan.
-- security_invoker: the reader's privileges and row-level security apply, so convkey_readonly sees
-- the business its session names in convkey.business_id only (sql/0006_create_roles.sql).
CREATE OR REPLACE VIEW convkey.dedup_health WITH (security_invoker = true) AS
SELECT b.business_id,
       coalesce(c.live_conversations, 0) AS live_conversations,
       coalesce(c.tombstones, 0) AS tombstones,
       coalesce(c.live_with_key, 0) AS live_with_key,
       coalesce(c.live_without_key, 0) AS live_without_key,
       coalesce(d.duplicate_keys, 0) AS duplicate_keys,
       coalesce(c.with_lead, 0) AS with_lead,
       coalesce(c.lid_only_waiting, 0) AS lid_only_waiting,
       coalesce(i.identities_lead, 0) AS identities_lead,
       coalesce(i.identities_phone, 0) AS identities_phone,
       coalesce(i.identities_lid, 0) AS identities_lid,
       coalesce(i.identities_bsuid, 0) AS identities_bsuid,
       coalesce(i.identities_pending, 0) AS identities_pending,
       coalesce(m.merges_total, 0) AS merges_total,
       coalesce(m.merges_24h, 0) AS merges_24h,
       coalesce(m.merges_by_reason, '{}'::jsonb) AS merges_by_reason,
       coalesce(f.identity_conflicts, 0) AS identity_conflicts,
       coalesce(f.conflicts_different_lead, 0) AS conflicts_different_lead,
       coalesce(f.conflicts_moved, 0) AS conflicts_moved,
       coalesce(m.unmerges, 0) AS unmerges,
       coalesce(f.links_blocked_by_separation, 0) AS links_blocked_by_separation
  FROM (SELECT business_id FROM convkey.whatsapp_conversation
        UNION SELECT business_id FROM convkey.identity
        UNION SELECT business_id FROM convkey.conversation_merge
        UNION SELECT business_id FROM convkey.identity_conflict) b
  LEFT JOIN (
        SELECT business_id,
               count(*) FILTER (WHERE merged_into_id IS NULL) AS live_conversations,
               count(*) FILTER (WHERE merged_into_id IS NOT NULL) AS tombstones,
               count(canonical_key) FILTER (WHERE merged_into_id IS NULL) AS live_with_key,
               count(*) FILTER (WHERE merged_into_id IS NULL AND canonical_key IS NULL) AS live_without_key,
               count(lead_id) FILTER (WHERE merged_into_id IS NULL) AS with_lead,
               count(*) FILTER (WHERE merged_into_id IS NULL AND canonical_key LIKE 'lid:%'
                                  AND phone_e164 IS NULL) AS lid_only_waiting
          FROM convkey.whatsapp_conversation
         GROUP BY business_id) c ON c.business_id = b.business_id
  LEFT JOIN (
        SELECT k.business_id, count(*) AS duplicate_keys
          FROM (SELECT business_id, canonical_key
                  FROM convkey.whatsapp_conversation
                 WHERE merged_into_id IS NULL AND canonical_key IS NOT NULL
                 GROUP BY business_id, canonical_key
                HAVING count(*) > 1) k
         GROUP BY k.business_id) d ON d.business_id = b.business_id
  LEFT JOIN (
        SELECT business_id,
               count(*) FILTER (WHERE kind = 'lead') AS identities_lead,
               count(*) FILTER (WHERE kind = 'phone') AS identities_phone,
               count(*) FILTER (WHERE kind = 'lid') AS identities_lid,
               count(*) FILTER (WHERE kind = 'bsuid') AS identities_bsuid,
               count(pending_person_id) AS identities_pending
          FROM convkey.identity
         GROUP BY business_id) i ON i.business_id = b.business_id
  LEFT JOIN (
        SELECT r.business_id,
               sum(r.total)::bigint AS merges_total,
               sum(r.last_24h)::bigint AS merges_24h,
               jsonb_object_agg(r.reason, jsonb_build_object('total', r.total, 'last_24h', r.last_24h)) AS merges_by_reason,
               sum(r.undone)::bigint AS unmerges
          FROM (SELECT business_id, reason, count(*) AS total,
                       count(*) FILTER (WHERE merged_at > now() - interval '24 hours') AS last_24h,
                       count(undone_at) AS undone
                  FROM convkey.conversation_merge
                 GROUP BY business_id, reason) r
         GROUP BY r.business_id) m ON m.business_id = b.business_id
  LEFT JOIN (
        SELECT business_id,
               count(*) FILTER (WHERE rule <> 'separated') AS identity_conflicts,
               count(*) FILTER (WHERE rule = 'different_lead') AS conflicts_different_lead,
               count(*) FILTER (WHERE rule = 'moved_to_other_phone') AS conflicts_moved,
               coalesce(sum(seen_count) FILTER (WHERE rule = 'separated'), 0)::bigint AS links_blocked_by_separation
          FROM convkey.identity_conflict
         GROUP BY business_id) f ON f.business_id = b.business_id;

COMMENT ON VIEW convkey.dedup_health IS
    'Dedup health per business: live/tombstone/keyed conversations, duplicate live keys (must be 0), '
    'lead links, LID-only threads waiting for a phone, identities by kind, merges (by reason, last 24 h, '
    'undone) and refused links by rule. See README "Health and runbook queries".';
