-- convkey._backfill_merge_simple(p_business_ids bigint[], p_ids bigint[],
--     p_shared boolean DEFAULT false, OUT o_merged int, OUT o_resolved int,
--     OUT o_rest_business_ids bigint[], OUT o_rest_ids bigint[])
-- Phase 2 of the backfill, the common case set-based, for a chunk of staged rows (in
-- (business_id, id) order): a 'deferred' legacy row B whose identities are each owned by one
-- and the same live conversation A or by nobody, where the resolver would simply merge the two:
-- no pending person, no separation touching A or B, A has no other lead than B's and no other
-- phone than B's. Exactly what convkey._backfill_merge_row does for such a row, for many rows at
-- once: A and B merge into the more recent (convkey._merge_conversations_many, reason
-- 'backfill', the same audit row and trigger), B's unowned identities attach to it, it is
-- refreshed with the same preferences, and B leaves the staging table. Likewise a row whose
-- identities are new or members of one pending person that has no lead and no phone other than
-- the row's: the row takes them all and every other member, and gets its key.
-- Only rows that come first among the chunk's rows for everything they touch (identities,
-- owners, pending persons) take this path: the merge phase, which takes rows in id order, would
-- have resolved each of them before any row it shares something with, and rows sharing nothing
-- commute. The others, and rows whose conversations are locked by someone else right now, are
-- returned (o_rest_*, in order): the runner calls again with them (a row that came second may
-- come first now) and hands what is left to convkey._backfill_merge_batch, row by row.
-- o_merged: rows that became tombstones; o_resolved: rows that survived with a key.
-- Locks: the per-business backfill lock exclusively (as a resolve batch: identity writers of
-- those businesses wait for this statement group, the fast path does not), then the
-- conversations FOR NO KEY UPDATE SKIP LOCKED, so that it never waits on a row lock.
-- p_shared (a worker of a parallel merge phase; chunks of other workers run at the same time):
-- the backfill lock shared instead, then, as every identity writer, the advisory locks of the
-- candidates' identities and pending persons, with try-locks: a candidate any of whose locks
-- another transaction holds is returned with the rest, so this still never waits. About 1.3
-- identities per row: a 1,000-row chunk holds up to some 1,300 advisory locks until it commits.
-- SQLSTATEs: none of its own.
DROP FUNCTION IF EXISTS convkey._backfill_merge_simple(bigint[], bigint[]);
CREATE OR REPLACE FUNCTION convkey._backfill_merge_simple(
    p_business_ids bigint[],
    p_ids bigint[],
    p_shared boolean DEFAULT false,
    OUT o_merged int,
    OUT o_resolved int,
    OUT o_rest_business_ids bigint[],
    OUT o_rest_ids bigint[])
LANGUAGE plpgsql
AS $$
DECLARE
    v_business  bigint;
    v_cb        bigint[];
    v_crow      bigint[];
    v_cowner    bigint[];
    v_cpend     bigint[];
    v_b         bigint[];
    v_row       bigint[];
    v_survivor  bigint[];
    v_dup       bigint[];
    v_trigger   jsonb[];
    v_lead      bigint[];
    v_phone     text[];
    v_pb        bigint[];
    v_prow      bigint[];
    v_ppend     bigint[];
    v_plead     bigint[];
    v_pphone    text[];
    v_nmerge    int;
    v_attached  bigint[];
    v_rs        bigint[];
    v_rl        bigint[];
    v_rp        text[];
BEGIN
    o_merged := 0;
    o_resolved := 0;
    PERFORM convkey._lock_backfill(p_business_ids, p_shared);
    -- The four selections below run through EXECUTE, so each is planned for the chunk it reads:
    -- their arrays hold one row to a thousand, and a cached generic plan that assumes ten rows
    -- joined them in nested loops (50 ms per chunk instead of 15). The writes keep the plan
    -- cache; forcing custom plans on the whole function instead would also re-plan the
    -- foreign-key checks of every row the writes touch (24 us each).

    -- Candidates: rows with one owner and no pending person, or with no owner and one pending
    -- person, that come first (lowest id) among the chunk's rows for everything they touch:
    -- identities, owners, pending persons.
    EXECUTE $sql$
    WITH rows AS (
        SELECT r.business_id, r.conversation_id AS id, r.kinds, r.vals
          FROM unnest($1, $2) AS u(b, id)
          JOIN convkey.backfill_row r ON r.business_id = u.b AND r.conversation_id = u.id AND r.status = 'deferred'
    ), ids AS (
        SELECT r.business_id, r.id, x.k, x.v, t.conversation_id AS owner, t.pending_person_id AS pending
          FROM rows r CROSS JOIN LATERAL unnest(r.kinds, r.vals) AS x(k, v)
          LEFT JOIN convkey.identity t ON t.business_id = r.business_id AND t.kind = x.k AND t.value = x.v
    ), touched AS (
        SELECT i.business_id, i.id, format('i:%s:%s', i.k, i.v) AS what FROM ids i
        UNION
        SELECT i.business_id, i.id, format('c:%s', i.owner) FROM ids i WHERE i.owner IS NOT NULL
        UNION
        SELECT i.business_id, i.id, format('p:%s', i.pending) FROM ids i WHERE i.pending IS NOT NULL
    ), later AS (
        SELECT DISTINCT t.business_id, t.id
          FROM (SELECT t.business_id, t.id, min(t.id) OVER (PARTITION BY t.business_id, t.what) AS first_id
                  FROM touched t) AS t
         WHERE t.first_id < t.id
    ), single AS (
        SELECT i.business_id, i.id, min(i.owner) AS owner, min(i.pending) AS pending FROM ids i
         GROUP BY i.business_id, i.id
        HAVING (count(DISTINCT i.owner) = 1 AND bool_and(i.pending IS NULL))
            OR (count(i.owner) = 0 AND count(DISTINCT i.pending) = 1)
    )
    SELECT array_agg(s.business_id ORDER BY s.business_id, s.id), array_agg(s.id ORDER BY s.business_id, s.id),
           array_agg(s.owner ORDER BY s.business_id, s.id), array_agg(s.pending ORDER BY s.business_id, s.id)
      FROM single s
     WHERE NOT EXISTS (SELECT 1 FROM later l WHERE l.business_id = s.business_id AND l.id = s.id)
    $sql$
      INTO v_cb, v_crow, v_cowner, v_cpend
     USING p_business_ids, p_ids;

    -- Shared: the candidates whose identities and pending person nobody else holds, locked with
    -- the keys every identity writer takes (try-locks never wait, so their order does not
    -- matter); the conditions below are then read under them.
    IF p_shared THEN
        EXECUTE $sql$
        SELECT array_agg(c.b ORDER BY c.n), array_agg(c.id ORDER BY c.n), array_agg(c.owner ORDER BY c.n),
               array_agg(c.pend ORDER BY c.n)
          FROM unnest($1, $2, $3, $4) WITH ORDINALITY AS c(b, id, owner, pend, n)
         WHERE (SELECT bool_and(pg_try_advisory_xact_lock(l.h))
                  FROM (SELECT convkey._identity_lock_key(c.b, x.k, x.v) AS h
                          FROM convkey.backfill_row r CROSS JOIN LATERAL unnest(r.kinds, r.vals) AS x(k, v)
                         WHERE r.business_id = c.b AND r.conversation_id = c.id
                        UNION ALL
                        SELECT convkey._pending_lock_key(c.b, c.pend)
                         WHERE c.pend IS NOT NULL) AS l)
        $sql$
          INTO v_cb, v_crow, v_cowner, v_cpend
         USING v_cb, v_crow, v_cowner, v_cpend;
    END IF;

    -- The conversations of each candidate, without waiting: a row somebody holds goes row by row.
    -- The candidates left are those whose row (and owner) this locked, so that the selections
    -- below join no list of locked rows: with those semi-joins, planning the owner selection took
    -- 8.5 ms per chunk instead of 2.1, and the two selections took some 5 s more server CPU over
    -- a 1,000,000-row backfill (pg_stat_statements with track_planning).
    EXECUTE $sql$
    WITH locked AS MATERIALIZED (
        SELECT c.business_id, c.id FROM convkey.whatsapp_conversation c
         WHERE (c.business_id, c.id) IN (SELECT x.b, x.id FROM unnest($1 || $1, $2 || $3) AS x(b, id))
         ORDER BY c.business_id, c.id
           FOR NO KEY UPDATE OF c SKIP LOCKED)
    SELECT array_agg(u.b ORDER BY u.n), array_agg(u.id ORDER BY u.n), array_agg(u.owner ORDER BY u.n),
           array_agg(u.pend ORDER BY u.n)
      FROM unnest($1, $2, $3, $4) WITH ORDINALITY AS u(b, id, owner, pend, n)
     WHERE (u.b, u.id) IN (SELECT l.business_id, l.id FROM locked l)
       AND (u.owner IS NULL OR (u.b, u.owner) IN (SELECT l.business_id, l.id FROM locked l))
    $sql$
      INTO v_cb, v_crow, v_cowner, v_cpend
     USING v_cb, v_crow, v_cowner, v_cpend;

    -- Under the locks, the resolver's conditions for a plain merge with the owner, and what it
    -- would decide: the survivor (the most recent, ties to the lowest id), the lead it attaches,
    -- the person's phone.
    EXECUTE $sql$
    SELECT array_agg(d.business_id ORDER BY d.business_id, d.row_id), array_agg(d.row_id ORDER BY d.business_id, d.row_id),
           array_agg(d.survivor ORDER BY d.business_id, d.row_id),
           array_agg(CASE WHEN d.survivor = d.row_id THEN d.owner ELSE d.row_id END ORDER BY d.business_id, d.row_id),
           array_agg(jsonb_build_object('via', 'backfill', 'kinds', to_jsonb(d.kinds), 'values', to_jsonb(d.vals))
                     ORDER BY d.business_id, d.row_id),
           array_agg(d.new_lead ORDER BY d.business_id, d.row_id), array_agg(d.person_phone ORDER BY d.business_id, d.row_id)
      FROM (SELECT p.b AS business_id, p.row_id, p.owner, r.kinds, r.vals,
                   (SELECT v.id FROM (VALUES (bc.id, bc.last_message_at), (ac.id, ac.last_message_at)) AS v(id, at)
                     ORDER BY v.at DESC NULLS LAST, v.id LIMIT 1) AS survivor,
                   CASE WHEN r.kinds[1] = 'lead' AND NOT EXISTS (
                            SELECT 1 FROM convkey.identity t
                             WHERE t.business_id = p.b AND t.kind = 'lead' AND t.value = r.vals[1])
                        THEN r.vals[1]::bigint END AS new_lead,
                   coalesce(r.vals[array_position(r.kinds, 'phone')], ac.phone_e164) AS person_phone
              FROM unnest($1, $2, $3) AS p(b, row_id, owner)
              JOIN convkey.backfill_row r
                ON r.business_id = p.b AND r.conversation_id = p.row_id AND r.status = 'deferred'
              JOIN convkey.whatsapp_conversation bc
                ON bc.business_id = p.b AND bc.id = p.row_id AND bc.canonical_key IS NULL AND bc.merged_into_id IS NULL
              JOIN convkey.whatsapp_conversation ac
                ON ac.business_id = p.b AND ac.id = p.owner AND ac.merged_into_id IS NULL
             WHERE EXISTS (SELECT 1 FROM unnest(r.kinds, r.vals) AS x(k, v)
                             JOIN convkey.identity t ON t.business_id = p.b AND t.kind = x.k AND t.value = x.v
                            WHERE t.conversation_id = p.owner)
               AND NOT EXISTS (SELECT 1 FROM unnest(r.kinds, r.vals) AS x(k, v)
                                 JOIN convkey.identity t ON t.business_id = p.b AND t.kind = x.k AND t.value = x.v
                                WHERE t.conversation_id IS DISTINCT FROM p.owner)
               AND NOT EXISTS (SELECT 1 FROM convkey.conversation_separation s
                                WHERE s.business_id = p.b
                                  AND (s.low_id IN (p.row_id, p.owner) OR s.high_id IN (p.row_id, p.owner)))
               AND (ac.lead_id IS NULL OR r.kinds[1] IS DISTINCT FROM 'lead' OR ac.lead_id::text = r.vals[1])
               AND (ac.phone_e164 IS NULL OR array_position(r.kinds, 'phone') IS NULL
                    OR ac.phone_e164 = r.vals[array_position(r.kinds, 'phone')])) AS d
    $sql$
      INTO v_b, v_row, v_survivor, v_dup, v_trigger, v_lead, v_phone
     USING v_cb, v_crow, v_cowner;

    -- And for a row whose identities are new or members of one pending person (a link recorded
    -- before anybody conversed): the resolver attaches all of them and every other member to the
    -- row, when the pending person has no lead and no phone other than the row's; the person's
    -- phone is the row's, else the pending person's first.
    EXECUTE $sql$
    SELECT array_agg(d.business_id ORDER BY d.business_id, d.row_id), array_agg(d.row_id ORDER BY d.business_id, d.row_id),
           array_agg(d.pend ORDER BY d.business_id, d.row_id), array_agg(d.new_lead ORDER BY d.business_id, d.row_id),
           array_agg(d.person_phone ORDER BY d.business_id, d.row_id)
      FROM (SELECT p.b AS business_id, p.row_id, p.pend,
                   CASE WHEN r.kinds[1] = 'lead' THEN r.vals[1]::bigint END AS new_lead,
                   coalesce(r.vals[array_position(r.kinds, 'phone')],
                            (SELECT m.value FROM convkey.identity m
                              WHERE m.business_id = p.b AND m.pending_person_id = p.pend AND m.kind = 'phone'
                              ORDER BY m.value LIMIT 1)) AS person_phone
              FROM unnest($1, $2, $3) AS p(b, row_id, pend)
              JOIN convkey.backfill_row r
                ON r.business_id = p.b AND r.conversation_id = p.row_id AND r.status = 'deferred'
              JOIN convkey.whatsapp_conversation bc
                ON bc.business_id = p.b AND bc.id = p.row_id AND bc.canonical_key IS NULL AND bc.merged_into_id IS NULL
             WHERE p.pend IS NOT NULL
               AND EXISTS (SELECT 1 FROM unnest(r.kinds, r.vals) AS x(k, v)
                             JOIN convkey.identity t ON t.business_id = p.b AND t.kind = x.k AND t.value = x.v
                            WHERE t.pending_person_id = p.pend)
               AND NOT EXISTS (SELECT 1 FROM unnest(r.kinds, r.vals) AS x(k, v)
                                 JOIN convkey.identity t ON t.business_id = p.b AND t.kind = x.k AND t.value = x.v
                                WHERE t.pending_person_id IS DISTINCT FROM p.pend)
               AND NOT EXISTS (SELECT 1 FROM convkey.identity m
                                WHERE m.business_id = p.b AND m.pending_person_id = p.pend
                                  AND (m.kind = 'lead'
                                       OR (m.kind = 'phone' AND m.value <> r.vals[array_position(r.kinds, 'phone')])))
               AND NOT EXISTS (SELECT 1 FROM convkey.conversation_separation s
                                WHERE s.business_id = p.b AND (s.low_id = p.row_id OR s.high_id = p.row_id))) AS d
    $sql$
      INTO v_pb, v_prow, v_ppend, v_plead, v_pphone
     USING v_cb, v_crow, v_cpend;

    v_nmerge := coalesce(cardinality(v_b), 0);
    FOR v_business IN SELECT DISTINCT b FROM unnest(v_b || v_pb) AS b ORDER BY 1 LOOP
        PERFORM convkey._merge_conversations_many(
            v_business,
            ARRAY(SELECT x.s FROM unnest(v_b, v_survivor) WITH ORDINALITY AS x(b, s, n) WHERE x.b = v_business ORDER BY x.n),
            ARRAY(SELECT x.d FROM unnest(v_b, v_dup) WITH ORDINALITY AS x(b, d, n) WHERE x.b = v_business ORDER BY x.n),
            'backfill',
            ARRAY(SELECT x.t FROM unnest(v_b, v_trigger) WITH ORDINALITY AS x(b, t, n) WHERE x.b = v_business ORDER BY x.n));
        -- the row's identities nobody owned attach to the survivor (the row itself for a pending
        -- person's, whose members all join it), as the resolver attaches them
        WITH attached AS (
            INSERT INTO convkey.identity AS i (business_id, kind, value, conversation_id, source)
            SELECT v_business, a.k, a.v, x.s, 'backfill'
              FROM unnest(v_b || v_pb, v_row || v_prow, v_survivor || v_prow) AS x(b, row_id, s)
              JOIN convkey.backfill_row r ON r.business_id = x.b AND r.conversation_id = x.row_id
             CROSS JOIN LATERAL unnest(r.kinds, r.vals) AS a(k, v)
             WHERE x.b = v_business
               AND NOT EXISTS (SELECT 1 FROM convkey.identity t
                                WHERE t.business_id = x.b AND t.kind = a.k AND t.value = a.v)
            ON CONFLICT (business_id, kind, value) DO UPDATE
               SET conversation_id = EXCLUDED.conversation_id, pending_person_id = NULL, updated_at = now()
            RETURNING i.conversation_id)
        SELECT coalesce(array_agg(DISTINCT a.conversation_id), '{}') INTO v_attached FROM attached AS a;
        UPDATE convkey.identity i
           SET conversation_id = x.row_id, pending_person_id = NULL, updated_at = now()
          FROM unnest(v_pb, v_prow, v_ppend) AS x(b, row_id, pend)
         WHERE x.b = v_business AND i.business_id = x.b AND i.pending_person_id = x.pend;
        -- Refreshed again: the rows that took a pending person, and the survivors that gained an
        -- identity here. A survivor that gained none was refreshed by the merge with the same
        -- identities, and its lead and phone are its own, so that the preferences change nothing.
        SELECT coalesce(array_agg(x.s ORDER BY x.n), '{}'), coalesce(array_agg(x.l ORDER BY x.n), '{}'),
               coalesce(array_agg(x.p ORDER BY x.n), '{}')
          INTO v_rs, v_rl, v_rp
          FROM unnest(v_b || v_pb, v_survivor || v_prow, v_lead || v_plead, v_phone || v_pphone)
               WITH ORDINALITY AS x(b, s, l, p, n)
         WHERE x.b = v_business AND (x.n > v_nmerge OR x.s = ANY(v_attached));
        PERFORM convkey._refresh_conversations(v_business, v_rs, v_rl, v_rp);
    END LOOP;

    DELETE FROM convkey.backfill_row r
     USING unnest(v_b || v_pb, v_row || v_prow) AS x(b, row_id)
     WHERE r.business_id = x.b AND r.conversation_id = x.row_id;
    SELECT count(*) FILTER (WHERE x.s <> x.row_id), count(*) FILTER (WHERE x.s = x.row_id)
      INTO o_merged, o_resolved
      FROM unnest(v_row || v_prow, v_survivor || v_prow) AS x(row_id, s);

    SELECT coalesce(array_agg(u.b ORDER BY u.n), '{}'), coalesce(array_agg(u.id ORDER BY u.n), '{}')
      INTO o_rest_business_ids, o_rest_ids
      FROM unnest(p_business_ids, p_ids) WITH ORDINALITY AS u(b, id, n)
     WHERE (u.b, u.id) NOT IN (SELECT x.b, x.row_id FROM unnest(v_b || v_pb, v_row || v_prow) AS x(b, row_id)
                                WHERE x.row_id IS NOT NULL);
END;
$$;

COMMENT ON FUNCTION convkey._backfill_merge_simple(bigint[], bigint[], boolean) IS
    'Internal backfill phase 2: resolve the chunk''s independent plain rows (one owner or one pending person) set-based.';
