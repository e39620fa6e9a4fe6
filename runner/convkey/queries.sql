-- Every SQL statement the runner sends, as named queries (psycopg %(name)s placeholders).
-- The runner calls convkey's functions; it never re-implements them.

-- get_or_create_conversation --
SELECT conversation_id, canonical_key, created
  FROM convkey.get_or_create_conversation(%(business_id)s, %(customer_wa_id)s, %(provider)s,
                                          %(lead_id)s, %(phone_e164)s)

-- record_message --
SELECT message_id, conversation_id, inserted
  FROM convkey.record_message(%(business_id)s, %(customer_wa_id)s, %(direction)s, %(provider_message_id)s,
                              %(body)s, %(provider)s, %(lead_id)s, %(phone_e164)s, %(sent_at)s, %(source)s)

-- record_message_with_push_name --
-- record_message and, when the message is new, set_push_name in one statement: one transaction, so
-- a crash or a lost connection never keeps the message and loses the name it carried
SELECT r.message_id, r.conversation_id, r.inserted,
       CASE WHEN r.inserted THEN convkey.set_push_name(%(business_id)s, r.conversation_id, %(push_name)s) END
           AS push_name_set
  FROM convkey.record_message(%(business_id)s, %(customer_wa_id)s, %(direction)s, %(provider_message_id)s,
                              %(body)s, %(provider)s, %(lead_id)s, %(phone_e164)s, %(sent_at)s, %(source)s) AS r

-- update_session_activity --
SELECT convkey.update_session_activity(%(business_id)s, %(customer_wa_id)s, %(direction)s, %(provider)s,
                                       %(lead_id)s, %(phone_e164)s, %(at)s) AS conversation_id

-- close_session --
SELECT convkey.close_session(%(business_id)s, %(conversation_id)s, %(summary)s)

-- idle_sessions --
SELECT conversation_id FROM convkey.idle_sessions(%(business_id)s, %(idle)s) AS conversation_id

-- resolve_conversation_id --
SELECT convkey.resolve_conversation_id(%(business_id)s, %(conversation_id)s) AS conversation_id

-- canonical_key --
SELECT convkey.canonical_key(%(business_id)s, %(lead_id)s, %(phone_e164)s, %(lid)s, %(bsuid)s) AS canonical_key

-- parse_wa_id --
SELECT kind, jid_user, device, phone_e164, lid FROM convkey.parse_wa_id(%(raw)s)

-- link_identity --
SELECT convkey.link_identity(%(business_id)s, %(wa_id)s, %(other)s, %(source)s) AS conversation_id

-- assign_lead --
SELECT convkey.assign_lead(%(business_id)s, %(conversation_id)s, %(lead_id)s, %(lead_name)s) AS conversation_id

-- merge_leads --
SELECT convkey.merge_leads(%(business_id)s, %(from_lead_id)s, %(into_lead_id)s) AS conversation_id

-- merge_conversations --
SELECT convkey.merge_conversations(%(business_id)s, %(primary_id)s, %(duplicate_id)s, %(reason)s) AS conversation_id

-- unmerge --
SELECT convkey.unmerge(%(business_id)s, %(merge_id)s) AS conversation_id

-- backfill_try_lock --
SELECT pg_try_advisory_lock(hashtextextended('convkey:backfill-run:' || %(scope)s::text, 0)) AS locked

-- backfill_unlock --
SELECT pg_advisory_unlock(hashtextextended('convkey:backfill-run:' || %(scope)s::text, 0)) AS unlocked

-- backfill_lock_table --
-- The slots of the shared lock table (advisory locks included), as the documentation sizes it.
SELECT current_setting('max_locks_per_transaction')::int
       * (current_setting('max_connections')::int + current_setting('max_prepared_transactions')::int) AS slots

-- backfill_wal_compression --
-- Whether this session may compress the full-page images it writes to WAL, and with lz4: the
-- server's setting, the role's right to SET it (a superuser, or GRANT SET ON PARAMETER), and the
-- methods this server was built with.
SELECT current_setting('wal_compression') AS current,
       has_parameter_privilege('wal_compression', 'SET') AS may_set,
       'lz4' = ANY (enumvals) AS has_lz4
  FROM pg_settings WHERE name = 'wal_compression'

-- set_wal_compression --
SELECT set_config('wal_compression', %(method)s, false)

-- backfill_cursor --
SELECT last_business_id, last_id, finished_at FROM convkey.backfill_cursor
 WHERE business_id = %(scope)s AND phase = %(phase)s

-- backfill_finish_phase --
INSERT INTO convkey.backfill_cursor AS k (business_id, phase, finished_at) VALUES (%(scope)s, %(phase)s, now())
ON CONFLICT (business_id, phase) DO UPDATE SET finished_at = now(), updated_at = now()

-- backfill_restart_phase --
INSERT INTO convkey.backfill_cursor AS k (business_id, phase) VALUES (%(scope)s, %(phase)s)
ON CONFLICT (business_id, phase) DO UPDATE
   SET last_business_id = 0, last_id = 0, started_at = now(), updated_at = now(), finished_at = NULL

-- backfill_unresolved_batch --
SELECT business_id, id, phone_e164, customer_wa_id, lead_id FROM convkey.whatsapp_conversation
 WHERE canonical_key IS NULL AND merged_into_id IS NULL
   AND (business_id, id) > (%(after_business_id)s, %(after_id)s)
   AND (%(business_id)s::bigint IS NULL OR business_id = %(business_id)s)
 ORDER BY business_id, id LIMIT %(limit)s

-- backfill_unresolved_count --
SELECT count(*) AS n FROM convkey.whatsapp_conversation
 WHERE canonical_key IS NULL AND merged_into_id IS NULL
   AND (business_id, id) > (%(after_business_id)s, %(after_id)s)
   AND (%(business_id)s::bigint IS NULL OR business_id = %(business_id)s)

-- backfill_resolve_batch --
SELECT convkey._backfill_resolve_batch(%(scope)s, %(business_ids)s, %(ids)s, %(phones)s, %(wa_phones)s,
                                       %(errors)s, %(derived)s::text,
                                       %(derived_lead_ids)s::bigint[], %(derived_wa_ids)s::text[],
                                       %(shared)s, %(cursor_business_id)s::bigint, %(cursor_id)s::bigint) AS stats

-- backfill_deferred_batch --
SELECT business_id, conversation_id AS id FROM convkey.backfill_row
 WHERE status = 'deferred' AND (business_id, conversation_id) > (%(after_business_id)s, %(after_id)s)
   AND (%(business_id)s::bigint IS NULL OR business_id = %(business_id)s)
 ORDER BY business_id, conversation_id LIMIT %(limit)s

-- backfill_lane_window --
-- The next deferred rows of a parallel merge phase, each with its lane (0 .. lanes - 1): the
-- lane follows the conversation that owns the row's identities (else their pending person,
-- else the row), so that rows merging into one conversation are usually taken by one worker,
-- in id order. Read once for all lanes; owners change as rows merge, so a row's lane may be
-- stale by the time its worker takes it (its locks then fail, and the serial pass takes it).
SELECT r.business_id, r.conversation_id AS id,
       ((hashint8(coalesce(
           (SELECT coalesce(min(t.conversation_id), min(t.pending_person_id))
              FROM unnest(r.kinds, r.vals) AS x(k, v)
              JOIN convkey.identity t ON t.business_id = r.business_id AND t.kind = x.k AND t.value = x.v),
           r.conversation_id))::bigint + 2147483648) %% %(lanes)s)::int AS lane
  FROM convkey.backfill_row r
 WHERE r.status = 'deferred' AND (r.business_id, r.conversation_id) > (%(after_business_id)s, %(after_id)s)
   AND (%(business_id)s::bigint IS NULL OR r.business_id = %(business_id)s)
 ORDER BY r.business_id, r.conversation_id LIMIT %(limit)s

-- backfill_stale_statistics --
-- The tables the resolve phase has just filled whose statistics this role may refresh with
-- ANALYZE (their owner, the database's owner or a superuser may), schema-qualified and quoted.
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'convkey' AND c.relname IN ('backfill_row', 'identity', 'whatsapp_conversation')
   AND (pg_has_role(c.relowner, 'USAGE')
        OR pg_has_role((SELECT d.datdba FROM pg_database d WHERE d.datname = current_database()), 'USAGE'))
 ORDER BY c.relname

-- backfill_deferred_count --
SELECT count(*) AS n FROM convkey.backfill_row
 WHERE status = 'deferred' AND (%(business_id)s::bigint IS NULL OR business_id = %(business_id)s)

-- backfill_merge_batch --
CALL convkey._backfill_merge_batch(%(scope)s, %(business_ids)s, %(ids)s, %(commit)s, '{}'::jsonb)

-- backfill_merge_simple --
SELECT o_merged AS merged, o_resolved AS resolved, o_rest_business_ids AS rest_business_ids, o_rest_ids AS rest_ids
  FROM convkey._backfill_merge_simple(%(business_ids)s::bigint[], %(ids)s::bigint[], %(shared)s)

-- backfill_max_merge_id --
SELECT coalesce(max(id), 0) AS id FROM convkey.conversation_merge

-- backfill_merge_totals --
SELECT count(DISTINCT (m.business_id, m.primary_id)) AS groups, count(*) AS duplicates,
       coalesce(sum(cardinality(m.moved_message_ids)), 0) AS messages_moved
  FROM convkey.conversation_merge m
 WHERE m.id > %(after_id)s AND m.reason = 'backfill'
   AND (%(business_id)s::bigint IS NULL OR m.business_id = %(business_id)s)

-- backfill_merges_since --
SELECT m.business_id, m.primary_id, array_agg(m.duplicate_id ORDER BY m.duplicate_id) AS duplicates,
       sum(cardinality(m.moved_message_ids)) AS messages_moved
  FROM convkey.conversation_merge m
 WHERE m.id > %(after_id)s AND m.reason = 'backfill'
   AND (%(business_id)s::bigint IS NULL OR m.business_id = %(business_id)s)
 GROUP BY m.business_id, m.primary_id ORDER BY m.business_id, m.primary_id
 LIMIT %(limit)s

-- backfill_unresolvable_count --
SELECT count(*) AS n FROM convkey.backfill_row r
 WHERE r.status = 'unresolvable' AND (%(business_id)s::bigint IS NULL OR r.business_id = %(business_id)s)

-- backfill_unresolvable --
SELECT r.business_id, r.conversation_id, r.reason, c.customer_wa_id, c.phone_e164, c.lead_id
  FROM convkey.backfill_row r
  JOIN convkey.whatsapp_conversation c ON c.business_id = r.business_id AND c.id = r.conversation_id
 WHERE r.status = 'unresolvable' AND (%(business_id)s::bigint IS NULL OR r.business_id = %(business_id)s)
 ORDER BY r.business_id, r.conversation_id
 LIMIT %(limit)s

-- set_push_name --
SELECT convkey.set_push_name(%(business_id)s, %(conversation_id)s, %(push_name)s)

-- demo_next_business_id --
-- the demo's fresh business: one above every business id in use (conversations or identities)
SELECT greatest((SELECT max(business_id) FROM convkey.whatsapp_conversation),
                (SELECT max(business_id) FROM convkey.identity), 0) + 1 AS business_id

-- demo_live_threads --
SELECT count(*) AS threads FROM convkey.whatsapp_conversation
 WHERE business_id = %(business_id)s AND merged_into_id IS NULL

-- display_name --
SELECT convkey.display_name(%(lead_name)s, %(push_name)s, %(name)s, %(peer_name)s, %(phone)s, %(fallback)s)
       AS display_name

-- mark_read --
SELECT convkey.mark_read(%(business_id)s, %(conversation_id)s)

-- conversation_threads --
SELECT id, business_id, canonical_key, display_name, display_phone, lead_id, is_open, last_message_at,
       message_count, unread_count, last_message_preview, last_message_direction
  FROM convkey.conversation_thread
 WHERE business_id = %(business_id)s
 ORDER BY last_message_at DESC NULLS LAST, id
 LIMIT %(limit)s

-- dedup_health --
SELECT * FROM convkey.dedup_health
 WHERE %(business_id)s::bigint IS NULL OR business_id = %(business_id)s::bigint
 ORDER BY business_id

-- import_conversations_stage --
CREATE TEMP TABLE convkey_import_conversation (
    line integer, id bigint, business_id bigint, customer_wa_id text, lead_id bigint, phone_e164 text,
    provider text, push_name text, lead_name text, is_open boolean, session_started_at timestamptz,
    last_message_at timestamptz, last_customer_message_at timestamptz, last_read_at timestamptz,
    summary_created boolean, summary text, created_at timestamptz) ON COMMIT DROP

-- import_conversations_copy --
COPY convkey_import_conversation (line, id, business_id, customer_wa_id, lead_id, phone_e164, provider, push_name,
    lead_name, is_open, session_started_at, last_message_at, last_customer_message_at, last_read_at,
    summary_created, summary, created_at) FROM STDIN

-- import_conversations_taken --
SELECT s.line, s.business_id, s.id FROM convkey_import_conversation s
 WHERE EXISTS (SELECT 1 FROM convkey.whatsapp_conversation c WHERE c.business_id = s.business_id AND c.id = s.id)
    OR EXISTS (SELECT 1 FROM convkey_import_conversation o
                WHERE o.business_id = s.business_id AND o.id = s.id AND o.line < s.line)
 ORDER BY s.line

-- import_conversations_insert --
WITH ins AS (
    INSERT INTO convkey.whatsapp_conversation (id, business_id, customer_wa_id, lead_id, phone_e164, provider,
        push_name, lead_name, is_open, session_started_at, last_message_at, last_customer_message_at, last_read_at,
        summary_created, summary, created_at)
    SELECT coalesce(s.id, nextval(pg_get_serial_sequence('convkey.whatsapp_conversation', 'id'))), s.business_id,
           s.customer_wa_id, s.lead_id, s.phone_e164, coalesce(s.provider, 'baileys'), s.push_name, s.lead_name,
           coalesce(s.is_open, false), s.session_started_at, s.last_message_at, s.last_customer_message_at,
           s.last_read_at, coalesce(s.summary_created, false), s.summary, coalesce(s.created_at, now())
      FROM convkey_import_conversation s
     WHERE s.line <> ALL (%(skip)s::int[])
    RETURNING 1)
SELECT count(*) AS n FROM ins

-- import_messages_stage --
CREATE TEMP TABLE convkey_import_message (
    line integer, id bigint, business_id bigint, conversation_id bigint, direction text, provider text,
    provider_message_id text, body text, source text, wa_id text, sent_at timestamptz, created_at timestamptz)
    ON COMMIT DROP

-- import_messages_copy --
COPY convkey_import_message (line, id, business_id, conversation_id, direction, provider, provider_message_id,
    body, source, wa_id, sent_at, created_at) FROM STDIN

-- import_messages_orphans --
SELECT s.line, s.business_id, s.conversation_id FROM convkey_import_message s
 WHERE NOT EXISTS (SELECT 1 FROM convkey.whatsapp_conversation c
                    WHERE c.business_id = s.business_id AND c.id = s.conversation_id)
 ORDER BY s.line

-- import_messages_taken --
SELECT s.line, s.business_id, s.id FROM convkey_import_message s
 WHERE s.id IS NOT NULL
   AND (EXISTS (SELECT 1 FROM convkey.whatsapp_message m WHERE m.business_id = s.business_id AND m.id = s.id)
        OR EXISTS (SELECT 1 FROM convkey_import_message o
                    WHERE o.business_id = s.business_id AND o.id = s.id AND o.line < s.line))
 ORDER BY s.line

-- import_messages_insert --
WITH ins AS (
    INSERT INTO convkey.whatsapp_message (id, business_id, conversation_id, direction, provider, provider_message_id,
        body, source, wa_id, sent_at, created_at)
    SELECT coalesce(s.id, nextval(pg_get_serial_sequence('convkey.whatsapp_message', 'id'))), s.business_id,
           s.conversation_id, s.direction, coalesce(s.provider, 'baileys'), s.provider_message_id, s.body, s.source,
           s.wa_id, coalesce(s.sent_at, now()), coalesce(s.created_at, now())
      FROM convkey_import_message s
     WHERE s.line <> ALL (%(skip)s::int[])
     ORDER BY s.line
    ON CONFLICT (business_id, provider, provider_message_id) DO NOTHING
    RETURNING 1)
SELECT count(*) AS n FROM ins

-- import_sync_conversation_ids --
SELECT setval(s.seq, greatest((SELECT coalesce(max(c.id), 0) FROM convkey.whatsapp_conversation c),
                              coalesce(pg_sequence_last_value(s.seq), 0), 1)) AS value
  FROM (SELECT pg_get_serial_sequence('convkey.whatsapp_conversation', 'id')::regclass AS seq) AS s

-- import_sync_message_ids --
SELECT setval(s.seq, greatest((SELECT coalesce(max(m.id), 0) FROM convkey.whatsapp_message m),
                              coalesce(pg_sequence_last_value(s.seq), 0), 1)) AS value
  FROM (SELECT pg_get_serial_sequence('convkey.whatsapp_message', 'id')::regclass AS seq) AS s

-- proxy_detect --
-- a convkey proxy (README "Scaling out by business"): the PL/Proxy cluster, or the proxy's schema
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_foreign_server s
                 JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
                WHERE s.srvname = 'convkey' AND w.fdwname = 'plproxy')
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n
                    JOIN pg_catalog.pg_description d ON d.objoid = n.oid
                                                    AND d.classoid = 'pg_catalog.pg_namespace'::regclass
                   WHERE n.nspname = 'convkey' AND left(d.description, 14) = 'convkey proxy:') AS is_proxy

-- proxy_partitions --
SELECT partition, connstr FROM convkey._partitions() ORDER BY partition

-- proxy_set_partitions --
SELECT convkey._set_partitions(%(connstrs)s::text[]) AS partitions

-- proxy_partition_of --
SELECT convkey._partition_of(%(business_id)s) AS partition

-- shard_sequences --
SELECT sequencename AS sequence_name, min_value, max_value, last_value
  FROM pg_catalog.pg_sequences WHERE schemaname = 'convkey' ORDER BY sequencename

-- shard_partition_rows --
-- conversations and identities (pending people have only identities) of one partition's businesses
-- on a shard; the hash is convkey._business_hash of the proxy (proxy/functions/post-apply-01)
SELECT (SELECT count(*) FROM convkey.whatsapp_conversation c
         WHERE ('x' || substr(md5(c.business_id::text), 1, 8))::bit(32)::integer & %(mask)s = %(partition)s)
     + (SELECT count(*) FROM convkey.identity i
         WHERE ('x' || substr(md5(i.business_id::text), 1, 8))::bit(32)::integer & %(mask)s = %(partition)s) AS n

-- shard_id_block_setting --
SELECT set_config('convkey.id_block', %(block)s::text, true) AS block

-- shard_assign_id_block --
-- every sequence of schema convkey into the id block of the transaction's setting convkey.id_block
-- (block b: ids b * 10^12 + 1 .. (b + 1) * 10^12); sequences already there are left alone
DO $$
DECLARE
    v_block bigint := current_setting('convkey.id_block')::bigint;
    v_min   bigint := v_block * 1000000000000 + 1;
    v_max   bigint := (v_block + 1) * 1000000000000;
    v_seq   record;
BEGIN
    FOR v_seq IN SELECT s.sequencename, s.min_value, s.max_value, s.last_value
                   FROM pg_catalog.pg_sequences s WHERE s.schemaname = 'convkey' ORDER BY 1 LOOP
        CONTINUE WHEN v_seq.min_value = v_min AND v_seq.max_value = v_max;
        IF v_seq.last_value > v_max THEN
            RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
                MESSAGE = format('sequence convkey.%%s is at %%s, past id block %%s', v_seq.sequencename,
                                 v_seq.last_value, v_block),
                HINT = 'Give this shard a higher block, or move its sequences back by hand.';
        END IF;
        EXECUTE format('ALTER SEQUENCE convkey.%%I MINVALUE %%s MAXVALUE %%s START %%s%%s', v_seq.sequencename,
                       v_min, v_max, v_min,
                       CASE WHEN v_seq.last_value IS NULL OR v_seq.last_value < v_min THEN ' RESTART' ELSE '' END);
    END LOOP;
END
$$
