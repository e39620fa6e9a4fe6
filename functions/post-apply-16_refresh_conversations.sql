-- convkey._refresh_conversations(p_business_id bigint, p_ids bigint[],
--     p_prefer_leads bigint[] DEFAULT NULL, p_prefer_phones text[] DEFAULT NULL)
--     RETURNS TABLE (conversation_id bigint, canonical_key text)
-- Recomputes live conversations' derived columns from the identities they own, for many
-- conversations in one statement (convkey._refresh_conversation is this for one): lead_id (kept
-- while still owned, else the oldest owned lead), phone_e164 (the primary phone: kept while
-- owned, else the oldest owned phone) and canonical_key from the strongest identity (a lid/bsuid
-- key is kept while still owned). p_prefer_leads/p_prefer_phones (aligned with p_ids, NULL or
-- shorter: no preference) are used for a conversation that has no lead or phone of its own: a
-- merge passes the duplicate's. A conversation that owns no identity is unresolved: key NULL,
-- and its lead_id and phone_e164 are legacy values, left as they are (an unresolved legacy row
-- the backfill could not join, or a side of an unmerge left with nothing).
-- Writes only the rows where something changed. Returns each conversation's key (ids not found:
-- no row). p_ids must be distinct.
-- Locks: the caller holds the conversations' row locks. SQLSTATEs: none of its own.
CREATE OR REPLACE FUNCTION convkey._refresh_conversations(
    p_business_id bigint,
    p_ids bigint[],
    p_prefer_leads bigint[] DEFAULT NULL,
    p_prefer_phones text[] DEFAULT NULL)
RETURNS TABLE (conversation_id bigint, canonical_key text)
LANGUAGE plpgsql
-- Generic plans: nested loops over the arrays' elements with index lookups suit one pair and a
-- thousand alike, while the default re-planned every call (custom plans looked cheaper for
-- one element), 0.6 ms per call.
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    RETURN QUERY
    WITH final AS (
        SELECT c.id, c.canonical_key AS old_key, c.lead_id AS old_lead, c.phone_e164 AS old_phone, k.key,
               CASE WHEN k.key IS NULL THEN c.lead_id ELSE l.lead END AS lead,
               CASE WHEN k.key IS NULL THEN c.phone_e164 ELSE ph.phone END AS phone
          FROM unnest(p_ids, p_prefer_leads, p_prefer_phones) AS u(id, prefer_lead, prefer_phone)
          JOIN convkey.whatsapp_conversation c ON c.business_id = p_business_id AND c.id = u.id
          LEFT JOIN LATERAL (
                SELECT i.value::bigint AS lead FROM convkey.identity i
                 WHERE i.business_id = p_business_id AND i.conversation_id = c.id AND i.kind = 'lead'
                 ORDER BY (i.value = coalesce(c.lead_id, u.prefer_lead)::text) DESC, i.created_at, i.value
                 LIMIT 1) AS l ON true
          LEFT JOIN LATERAL (
                SELECT i.value AS phone FROM convkey.identity i
                 WHERE i.business_id = p_business_id AND i.conversation_id = c.id AND i.kind = 'phone'
                 ORDER BY (i.value = coalesce(c.phone_e164, u.prefer_phone)) DESC, i.created_at, i.value
                 LIMIT 1) AS ph ON true
         CROSS JOIN LATERAL (
                SELECT CASE WHEN l.lead IS NOT NULL THEN format('lead:%s:%s', p_business_id, l.lead)
                            WHEN ph.phone IS NOT NULL THEN format('phone:%s:%s', p_business_id, ph.phone)
                            ELSE (SELECT format('%s:%s:%s', i.kind, p_business_id, i.value) FROM convkey.identity i
                                   WHERE i.business_id = p_business_id AND i.conversation_id = c.id
                                     AND i.kind IN ('lid', 'bsuid')
                                   ORDER BY i.kind = 'bsuid',
                                            format('%s:%s:%s', i.kind, p_business_id, i.value) = c.canonical_key DESC,
                                            i.created_at, i.value
                                   LIMIT 1)
                       END AS key) AS k
    ), written AS (
        UPDATE convkey.whatsapp_conversation c
           SET canonical_key = f.key, lead_id = f.lead, phone_e164 = f.phone, updated_at = now()
          FROM final f
         WHERE c.business_id = p_business_id AND c.id = f.id
           AND (f.key, f.lead, f.phone) IS DISTINCT FROM (f.old_key, f.old_lead, f.old_phone)
        RETURNING c.id
    )
    SELECT f.id, f.key FROM final f;
END;
$$;

COMMENT ON FUNCTION convkey._refresh_conversations(bigint, bigint[], bigint[], text[]) IS
    'Internal: recompute lead_id, phone_e164 and canonical_key of many conversations from their identities.';
