-- convkey._backfill_resolve_batch(p_scope bigint, p_business_ids bigint[], p_ids bigint[],
--     p_phones text[], p_wa_phones text[], p_errors text[],
--     p_derived text DEFAULT NULL, p_derived_lead_ids bigint[] DEFAULT NULL,
--     p_derived_wa_ids text[] DEFAULT NULL, p_shared boolean DEFAULT false,
--     p_cursor_business_id bigint DEFAULT NULL, p_cursor_id bigint DEFAULT NULL) RETURNS jsonb
-- Phase 1 of the backfill, one batch of legacy rows (canonical_key NULL, not merged), set-based.
-- The runner passes the rows' keys in (business_id, id) order with what it normalized: p_phones
-- (phone_e164 as E.164), p_wa_phones (customer_wa_id when it is a human phone format) and p_errors
-- (why it could not). Each row's identities are derived (convkey._backfill_identities), or taken
-- from p_derived* (p_derived: a convkey.backfill_candidate[] as text, one element per row, NULL for
-- a row the batch derives itself): what the runner derived with its copy of the grammar
-- (convkey.backfill.derive_identities, which the tests hold equal to convkey._backfill_identities)
-- while the previous batch was resolved. The batch trusts them as it trusts p_phones, and only for
-- a row whose lead_id and customer_wa_id are still those they were derived from
-- (p_derived_lead_ids, p_derived_wa_ids). They are staged in convkey.backfill_row. A row whose
-- identities are all new (owned by no conversation or pending person, shared with no lower-id row
-- of the batch) claims them and gets its key in two statements for the whole batch, exactly as
-- get-or-create would have keyed it; the others stay staged: 'deferred' for the merge phase, or
-- 'unresolvable' with the reason.
-- The phase's cursor (convkey.backfill_cursor) moves in the same transaction: to the batch's last
-- row, or to (p_cursor_business_id, p_cursor_id) when given (a parallel resolve phase, whose
-- batches commit out of order, passes the end of the batches that have all committed).
-- Returns {"read", "resolved": {kind: n}, "deferred", "unresolvable"}.
-- Locks: the per-business backfill lock exclusively (webhooks creating or linking identities in
-- those businesses wait for this short batch; the fast path does not), then the batch's rows.
-- p_shared (a worker of a parallel resolve phase; batches of other workers run at the same
-- time): the backfill lock shared instead, then, as every identity writer, the advisory lock of
-- each identity a row would claim, with try-locks, in a statement of its own, so that the claim
-- that follows sees every identity committed by whoever held one: a row any of whose locks
-- another transaction holds is deferred to the merge phase, which resolves it as get-or-create
-- would. About 1.3 identities per row: a 1,000-row batch holds some 1,300 advisory locks.
-- SQLSTATEs: none of its own.
DROP FUNCTION IF EXISTS convkey._backfill_resolve_batch(bigint, bigint[], bigint[], text[], text[], text[]);
DROP FUNCTION IF EXISTS convkey._backfill_resolve_batch(bigint, bigint[], bigint[], text[], text[], text[], text,
                                                        bigint[], text[]);
CREATE OR REPLACE FUNCTION convkey._backfill_resolve_batch(
    p_scope bigint,
    p_business_ids bigint[],
    p_ids bigint[],
    p_phones text[],
    p_wa_phones text[],
    p_errors text[],
    p_derived text DEFAULT NULL,
    p_derived_lead_ids bigint[] DEFAULT NULL,
    p_derived_wa_ids text[] DEFAULT NULL,
    p_shared boolean DEFAULT false,
    p_cursor_business_id bigint DEFAULT NULL,
    p_cursor_id bigint DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    v_read         int;
    v_resolved     jsonb;
    v_deferred     int;
    v_unresolvable int;
    v_n            int := cardinality(p_ids);
    v_rows         convkey.backfill_candidate[];
    v_writes       bigint;
    v_held_b       bigint[] := '{}'::bigint[];
    v_held_id      bigint[] := '{}'::bigint[];
BEGIN
    IF v_n = 0 THEN
        RETURN jsonb_build_object('read', 0, 'resolved', '{}'::jsonb, 'deferred', 0, 'unresolvable', 0);
    END IF;
    PERFORM convkey._lock_backfill(p_business_ids, p_shared);

    -- The batch's rows still unresolved, locked, with the identities derived from each: those
    -- the runner derived ahead (p_derived*, aligned with p_ids) when the row still
    -- has the lead_id and customer_wa_id they came from, else derived here.
    SELECT coalesce(array_agg(ROW(b.business_id, b.id, d.o_kinds, d.o_values, d.o_reason)::convkey.backfill_candidate),
                    '{}'::convkey.backfill_candidate[])
      INTO v_rows
      FROM unnest(p_business_ids, p_ids, p_phones, p_wa_phones, p_errors,
                  p_derived::convkey.backfill_candidate[], p_derived_lead_ids, p_derived_wa_ids)
           AS u(b, id, phone, wa_phone, err, g_business_id, g_id, g_kinds, g_vals, g_reason, g_lead_id, g_wa_id)
     CROSS JOIN LATERAL (SELECT c.business_id, c.id, c.lead_id, c.customer_wa_id, u.phone, u.wa_phone, u.err,
                                (u.g_business_id = c.business_id AND u.g_id = c.id
                                 AND u.g_lead_id IS NOT DISTINCT FROM c.lead_id
                                 AND u.g_wa_id IS NOT DISTINCT FROM c.customer_wa_id) IS TRUE AS ahead
                           FROM convkey.whatsapp_conversation c
                          WHERE c.business_id = u.b AND c.id = u.id
                            AND c.canonical_key IS NULL AND c.merged_into_id IS NULL
                            FOR NO KEY UPDATE) AS b
     CROSS JOIN LATERAL (SELECT u.g_kinds AS o_kinds, u.g_vals AS o_values, u.g_reason AS o_reason WHERE b.ahead
                         UNION ALL
                         SELECT i.o_kinds, i.o_values, i.o_reason
                           FROM convkey._backfill_identities(b.business_id, b.lead_id, b.phone, b.customer_wa_id,
                                                             b.wa_phone, b.err) AS i
                          WHERE NOT b.ahead) AS d;
    v_read := cardinality(v_rows);

    -- Shared: each row's identities locked with the keys every identity writer takes (try-locks
    -- never wait, so their order does not matter); a row that did not get them all is held back.
    IF p_shared THEN
        SELECT coalesce(array_agg(r.business_id), '{}'), coalesce(array_agg(r.conversation_id), '{}')
          INTO v_held_b, v_held_id
          FROM unnest(v_rows) AS r
         WHERE r.reason IS NULL
           AND NOT (SELECT bool_and(pg_try_advisory_xact_lock(convkey._identity_lock_key(r.business_id, x.k, x.v)))
                      FROM unnest(r.kinds, r.vals) AS x(k, v));
    END IF;

    -- In one statement: rows whose identities are all new (owned by nobody, and shared with no
    -- lower-id row of the batch) claim them and get their key and phone (the identity guard is
    -- told: this statement writes keys whose identities it writes); the others are staged,
    -- deferred (they collide) or unresolvable (with the reason); rows staged by an earlier run
    -- and resolved now leave the staging table. Of rows sharing an identity, the lowest id
    -- claims: what the merge phase, which takes rows in id order, would have done with it first
    -- (resolve it alone); the others then merge with it there.
    -- Planned for each batch: EXECUTE makes a one-shot plan that sees the batch (v_rows). A cached
    -- plan would, from the sixth call on, be a generic one that assumes unnest(v_rows) yields 10
    -- rows and anti-joins winners against blocked in a nested loop; at 10,000 rows a batch that
    -- took 0.5 s then took 6-9 s (auto_explain: 18.9M rows removed by the join filter). Not
    -- plan_cache_mode = force_custom_plan: the foreign-key checks of the rows this statement
    -- inserts run under that setting too, and re-planned each check: 24 us per identity row,
    -- the largest single cost of the statement (pg_stat_statements, track_planning).
    PERFORM set_config('convkey.backfill_claim', 'on', true);
    EXECUTE $claim$
    WITH rows AS (
        SELECT r.* FROM unnest($1::convkey.backfill_candidate[]) AS r
    ), ids AS (
        SELECT r.business_id, r.conversation_id, x.k, x.v
          FROM rows r CROSS JOIN LATERAL unnest(r.kinds, r.vals) AS x(k, v)
         WHERE r.reason IS NULL
    ), blocked AS (
        SELECT i.business_id, i.conversation_id FROM ids i
         CROSS JOIN LATERAL (SELECT 1 FROM convkey.identity t
                              WHERE t.business_id = i.business_id AND t.kind = i.k AND t.value = i.v
                              LIMIT 1) AS t
        UNION
        SELECT s.business_id, s.conversation_id
          FROM (SELECT i.business_id, i.conversation_id,
                       min(i.conversation_id) OVER (PARTITION BY i.business_id, i.k, i.v) AS first_id
                  FROM ids i) AS s
         WHERE s.first_id < s.conversation_id
        UNION
        SELECT h.b, h.id FROM unnest($2::bigint[], $3::bigint[]) AS h(b, id)
    ), winners AS (
        SELECT r.* FROM rows r
         WHERE r.reason IS NULL
           AND NOT EXISTS (SELECT 1 FROM blocked bl
                            WHERE bl.business_id = r.business_id AND bl.conversation_id = r.conversation_id)
    ), claimed AS (
        INSERT INTO convkey.identity (business_id, kind, value, conversation_id, source)
        SELECT w.business_id, x.k, x.v, w.conversation_id, 'backfill'
          FROM winners w CROSS JOIN LATERAL unnest(w.kinds, w.vals) AS x(k, v)
        RETURNING 1
    ), keyed AS (
        UPDATE convkey.whatsapp_conversation c
           SET canonical_key = format('%s:%s:%s', w.kinds[1], w.business_id, w.vals[1]),
               phone_e164 = w.vals[array_position(w.kinds, 'phone')],
               updated_at = now()
          FROM winners w
         WHERE c.business_id = w.business_id AND c.id = w.conversation_id
        RETURNING w.kinds[1] AS kind
    ), staged AS (
        INSERT INTO convkey.backfill_row AS b (business_id, conversation_id, status, kinds, vals, reason)
        SELECT r.business_id, r.conversation_id, CASE WHEN r.reason IS NULL THEN 'deferred' ELSE 'unresolvable' END,
               r.kinds, r.vals, r.reason
          FROM rows r
         WHERE NOT EXISTS (SELECT 1 FROM winners w
                            WHERE w.business_id = r.business_id AND w.conversation_id = r.conversation_id)
        ON CONFLICT (business_id, conversation_id) DO UPDATE
           SET status = EXCLUDED.status, kinds = EXCLUDED.kinds, vals = EXCLUDED.vals, reason = EXCLUDED.reason,
               updated_at = now()
         WHERE (b.status, b.kinds, b.vals, b.reason) IS DISTINCT FROM
               (EXCLUDED.status, EXCLUDED.kinds, EXCLUDED.vals, EXCLUDED.reason)
        RETURNING 1
    ), unstaged AS (
        DELETE FROM convkey.backfill_row b USING winners w
         WHERE b.business_id = w.business_id AND b.conversation_id = w.conversation_id
        RETURNING 1
    )
    SELECT (SELECT coalesce(jsonb_object_agg(s.kind, s.n), '{}'::jsonb)
              FROM (SELECT k.kind, count(*) AS n FROM keyed k GROUP BY k.kind) AS s),
           (SELECT count(*) FROM rows r WHERE r.reason IS NULL) - (SELECT count(*) FROM winners),
           (SELECT count(*) FROM rows r WHERE r.reason IS NOT NULL),
           (SELECT count(*) FROM claimed) + (SELECT count(*) FROM staged) + (SELECT count(*) FROM unstaged)
    $claim$
      INTO v_resolved, v_deferred, v_unresolvable, v_writes
     USING v_rows, v_held_b, v_held_id;
    PERFORM set_config('convkey.backfill_claim', 'off', true);

    INSERT INTO convkey.backfill_cursor AS k (business_id, phase, last_business_id, last_id)
    VALUES (p_scope, 'resolve', coalesce(p_cursor_business_id, p_business_ids[v_n]), coalesce(p_cursor_id, p_ids[v_n]))
    ON CONFLICT (business_id, phase) DO UPDATE
       SET last_business_id = EXCLUDED.last_business_id, last_id = EXCLUDED.last_id, updated_at = now(),
           finished_at = NULL;
    RETURN jsonb_build_object('read', v_read, 'resolved', v_resolved, 'deferred', v_deferred,
                              'unresolvable', v_unresolvable);
END;
$$;

COMMENT ON FUNCTION convkey._backfill_resolve_batch(bigint, bigint[], bigint[], text[], text[], text[], text,
                                                   bigint[], text[], boolean, bigint, bigint) IS
    'Internal backfill phase 1: stage a batch of legacy rows; rows with only new identities claim them and get keys.';
